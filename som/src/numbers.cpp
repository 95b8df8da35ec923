// Integer (small + GMP big) and Double arithmetic. See numbers_p.h.
#include "numbers_p.h"

#include "vm_p.h"

#include <gmp.h>
#include <charconv>
#include <cmath>

namespace som {

bool isBig(Value v) { return !isInt(v) && obj(v)->kind == kBigInt; }
bool isDouble(Value v) { return !isInt(v) && obj(v)->kind == kDouble; }
bool isNumber(Value v) { return isInt(v) || obj(v)->kind == kBigInt || obj(v)->kind == kDouble; }

// Big integer -> nearest double (mpz_get_d truncates): keep the top 64 bits, fold every lower
// bit into a sticky bit, and let the uint64 -> double conversion round to nearest-even.
static double bigToDouble(mpz_srcptr z) {
  size_t bits = mpz_sizeinbase(z, 2);
  const mp_limb_t* limbs = mpz_limbs_read(z);
  size_t n = mpz_size(z);
  double mag;
  if (bits <= 64) {
    mag = static_cast<double>(static_cast<uint64_t>(n ? limbs[0] : 0));
  } else {
    size_t shift = bits - 64;
    mpz_t t;
    mpz_init(t);
    mpz_abs(t, z);
    bool sticky = mpz_scan1(t, 0) < shift;
    mpz_tdiv_q_2exp(t, t, shift);
    uint64_t top = mpz_getlimbn(t, 0) | (sticky ? 1 : 0);
    mpz_clear(t);
    mag = std::ldexp(static_cast<double>(top), static_cast<int>(shift));
  }
  return mpz_sgn(z) < 0 ? -mag : mag;
}

double toDouble(Value v) {
  if (isInt(v)) return static_cast<double>(intOf(v));
  if (obj(v)->kind == kDouble) return obj(v)->dbl();
  IntView iv(v);
  return bigToDouble(iv.z);
}

Value fromMpz(VM& vm, mpz_srcptr z, bool permanent);

Value makeInt64(VM& vm, int64_t i) {
  if (fitsSmall(i)) return fromInt(i);
  mpz_t t;
  mpz_init_set_si(t, i);
  Value r = fromMpz(vm, t, false);
  mpz_clear(t);
  return r;
}

std::string integerToString(Value v) {
  if (isInt(v)) return std::to_string(intOf(v));
  IntView iv(v);
  std::string s(mpz_sizeinbase(iv.z, 10) + 2, '\0');
  mpz_get_str(s.data(), 10, iv.z);
  s.resize(std::strlen(s.c_str()));
  return s;
}

std::string doubleToString(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  bool plain = true;
  for (char c : s)
    if (c == '.' || c == 'e' || c == 'E') plain = false;
  if (plain) s += ".0";
  return s;
}

namespace {
[[noreturn]] void notNumber(VM& vm, const char* op, Value b) {
  vm.fatal(std::string("argument of ") + op + " is not a number: " + vm.describe(b));
}
mpz_t& scratch() {
  static mpz_t t;
  static bool init = false;
  if (!init) {
    mpz_init(t);
    init = true;
  }
  return t;
}
}  // namespace

Value numAdd(VM& vm, Value a, Value b) {
  if (!isNumber(b)) notNumber(vm, "+", b);
  if (isDouble(a) || isDouble(b)) return vm.newDouble(toDouble(a) + toDouble(b));
  if (isInt(a) && isInt(b)) return makeInt64(vm, intOf(a) + intOf(b));
  IntView x(a), y(b);
  mpz_add(scratch(), x.z, y.z);
  return fromMpz(vm, scratch(), false);
}

Value numSub(VM& vm, Value a, Value b) {
  if (!isNumber(b)) notNumber(vm, "-", b);
  if (isDouble(a) || isDouble(b)) return vm.newDouble(toDouble(a) - toDouble(b));
  if (isInt(a) && isInt(b)) return makeInt64(vm, intOf(a) - intOf(b));
  IntView x(a), y(b);
  mpz_sub(scratch(), x.z, y.z);
  return fromMpz(vm, scratch(), false);
}

Value numMul(VM& vm, Value a, Value b) {
  if (!isNumber(b)) notNumber(vm, "*", b);
  if (isDouble(a) || isDouble(b)) return vm.newDouble(toDouble(a) * toDouble(b));
  if (isInt(a) && isInt(b)) {
    int64_t r;
    if (!__builtin_mul_overflow(intOf(a), intOf(b), &r)) return makeInt64(vm, r);
  }
  IntView x(a), y(b);
  mpz_mul(scratch(), x.z, y.z);
  return fromMpz(vm, scratch(), false);
}

int numCompare(Value a, Value b, bool* ok) {
  if (!isNumber(a) || !isNumber(b)) {
    *ok = false;
    return 0;
  }
  *ok = true;
  if (isInt(a) && isInt(b)) return intOf(a) < intOf(b) ? -1 : (intOf(a) > intOf(b) ? 1 : 0);
  if (isDouble(a) || isDouble(b)) {
    double x = toDouble(a), y = toDouble(b);
    if (std::isnan(x) || std::isnan(y)) {
      *ok = true;
      return 2;  // unordered: neither <, = nor >
    }
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  IntView x(a), y(b);
  int c = mpz_cmp(x.z, y.z);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

Value fromMpz(VM& vm, mpz_srcptr z, bool permanent) {
  if (mpz_fits_slong_p(z)) {
    long i = mpz_get_si(z);
    if (fitsSmall(i)) return fromInt(i);
  }
  size_t n = mpz_size(z);
  Object* o;
  if (permanent) {
    o = vm.permAlloc(kBigInt, vm.integerTag, static_cast<uint32_t>(n));
  } else {
    o = vm.heap.alloc(kBigInt, vm.integerTag, static_cast<uint32_t>(n));
  }
  o->aux = mpz_sgn(z) < 0 ? 1 : 0;
  std::memcpy(o->limbs(), mpz_limbs_read(z), n * sizeof(mp_limb_t));
  return val(o);
}

Value VM::bigFromDecimal(const std::string& digits, bool permanent) {
  mpz_t t;
  if (mpz_init_set_str(t, digits.c_str(), 10) != 0) {
    mpz_clear(t);
    return nilV;
  }
  Value r = fromMpz(*this, t, permanent);
  mpz_clear(t);
  return r;
}

Value VM::intValue(int64_t i) { return makeInt64(*this, i); }

}  // namespace som
