// Integer (small + GMP big) and Double arithmetic. See numbers_p.h.
#include "numbers_p.h"

#include "vm_p.h"

#include <gmp.h>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace som {

bool is_big(Value v) { return !is_int(v) && obj(v)->kind == kBigInt; }
bool is_double(Value v) { return !is_int(v) && obj(v)->kind == kDouble; }
bool is_number(Value v) { return is_int(v) || obj(v)->kind == kBigInt || obj(v)->kind == kDouble; }

// Big integer -> nearest double (mpz_get_d truncates): keep the top 64 bits, fold every lower
// bit into a sticky bit, and let the uint64 -> double conversion round to nearest-even.
static double big_to_double(mpz_srcptr z) {
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

double to_double(Value v) {
  if (is_int(v)) return static_cast<double>(int_of(v));
  if (obj(v)->kind == kDouble) return obj(v)->dbl();
  IntView iv(v);
  return big_to_double(iv.z);
}

Value from_mpz(VM& vm, mpz_srcptr z, bool permanent);

Value make_int64(VM& vm, int64_t i) {
  if (fits_small(i)) return from_int(i);
  mpz_t t;
  mpz_init_set_si(t, i);
  Value r = from_mpz(vm, t, false);
  mpz_clear(t);
  return r;
}

std::string integer_to_string(Value v) {
  if (is_int(v)) return std::to_string(int_of(v));
  IntView iv(v);
  std::string s(mpz_sizeinbase(iv.z, 10) + 2, '\0');
  mpz_get_str(s.data(), 10, iv.z);
  s.resize(std::strlen(s.c_str()));
  return s;
}

// The shortest decimal that reads back as the same double, written like most SOM VMs print
// Doubles: plain notation for magnitudes in [1e-4, 1e16) (with at least one digit after the
// point: 2.0), scientific otherwise, without a '+' or leading zeros in the exponent
// (1.152921504606847e18, 6.223015277861142e-61).
std::string double_to_string(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  std::string out;
  if (sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits += c;
  int exponent = std::atoi(std::string(sci.substr(e + 1)).c_str());
  if (exponent >= -4 && exponent < 16) {
    if (exponent >= 0) {
      size_t int_len = static_cast<size_t>(exponent) + 1;
      if (digits.size() < int_len) digits.append(int_len - digits.size(), '0');
      std::string frac = digits.substr(int_len);
      out += digits.substr(0, int_len) + "." + (frac.empty() ? "0" : frac);
    } else {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    }
    return out;
  }
  out += digits.substr(0, 1) + "." + (digits.size() > 1 ? digits.substr(1) : "0");
  out += "e" + std::to_string(exponent);
  return out;
}

// Mixed Integer/Double arithmetic converts the Integer; one too large for a double cannot take
// part (the result would be meaningless), which is an error, not an infinity.
double to_finite_double(VM& vm, Value v, const char* op) {
  double d = to_double(v);
  if (std::isinf(d) && !is_double(v))
    vm.fatal(std::string(op) + ": the Integer " + integer_to_string(v) +
             " is too large to convert to a Double");
  return d;
}

namespace {
[[noreturn]] void not_number(VM& vm, const char* op, Value b) {
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

Value num_add(VM& vm, Value a, Value b) {
  if (!is_number(b)) not_number(vm, "+", b);
  if (is_double(a) || is_double(b))
    return vm.new_double(to_finite_double(vm, a, "+") + to_finite_double(vm, b, "+"));
  if (is_int(a) && is_int(b)) return make_int64(vm, int_of(a) + int_of(b));
  IntView x(a), y(b);
  mpz_add(scratch(), x.z, y.z);
  return from_mpz(vm, scratch(), false);
}

Value num_sub(VM& vm, Value a, Value b) {
  if (!is_number(b)) not_number(vm, "-", b);
  if (is_double(a) || is_double(b))
    return vm.new_double(to_finite_double(vm, a, "-") - to_finite_double(vm, b, "-"));
  if (is_int(a) && is_int(b)) return make_int64(vm, int_of(a) - int_of(b));
  IntView x(a), y(b);
  mpz_sub(scratch(), x.z, y.z);
  return from_mpz(vm, scratch(), false);
}

Value num_mul(VM& vm, Value a, Value b) {
  if (!is_number(b)) not_number(vm, "*", b);
  if (is_double(a) || is_double(b))
    return vm.new_double(to_finite_double(vm, a, "*") * to_finite_double(vm, b, "*"));
  if (is_int(a) && is_int(b)) {
    int64_t r;
    if (!__builtin_mul_overflow(int_of(a), int_of(b), &r)) return make_int64(vm, r);
  }
  IntView x(a), y(b);
  mpz_mul(scratch(), x.z, y.z);
  return from_mpz(vm, scratch(), false);
}

int num_compare(Value a, Value b, bool* ok) {
  if (!is_number(a) || !is_number(b)) {
    *ok = false;
    return 0;
  }
  *ok = true;
  if (is_int(a) && is_int(b)) return int_of(a) < int_of(b) ? -1 : (int_of(a) > int_of(b) ? 1 : 0);
  if (is_double(a) || is_double(b)) {
    double x = to_double(a), y = to_double(b);
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

Value from_mpz(VM& vm, mpz_srcptr z, bool permanent) {
  if (mpz_fits_slong_p(z)) {
    long i = mpz_get_si(z);
    if (fits_small(i)) return from_int(i);
  }
  size_t n = mpz_size(z);
  Object* o;
  if (permanent) {
    o = vm.perm_alloc(kBigInt, vm.integer_tag_, static_cast<uint32_t>(n));
  } else {
    o = vm.heap_.alloc(kBigInt, vm.integer_tag_, static_cast<uint32_t>(n));
  }
  o->aux = mpz_sgn(z) < 0 ? 1 : 0;
  std::memcpy(o->limbs(), mpz_limbs_read(z), n * sizeof(mp_limb_t));
  return val(o);
}

Value VM::big_from_decimal(const std::string& digits, bool permanent) {
  mpz_t t;
  if (mpz_init_set_str(t, digits.c_str(), 10) != 0) {
    mpz_clear(t);
    return nil_value_;
  }
  Value r = from_mpz(*this, t, permanent);
  mpz_clear(t);
  return r;
}

Value VM::int_value(int64_t i) { return make_int64(*this, i); }

}  // namespace som
