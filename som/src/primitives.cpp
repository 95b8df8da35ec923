// The primitives of LANGUAGE.md §4, bound by "Class>>selector" / "Class class>>selector" when
// a class is loaded. A primitive gets the receiver and arguments in args[0..n] and returns the
// result; it never triggers a GC (except System>>fullGC, which runs when every live value is on
// the frame stack) and reports failures through VM::fatal (diagnostic + SOM stack trace, exit 1).
#include "numbers_p.h"
#include "vm_p.h"

#include <gmp.h>
#include <locale.h>
#include <wctype.h>
#include <cctype>
#include <clocale>
#include <cmath>
#include <cstring>
#include <cwctype>
#include <fstream>
#include <sstream>

namespace som {

Value from_mpz(VM& vm, mpz_srcptr z, bool permanent);

namespace {

#define SOM_PRIM(name) Value name([[maybe_unused]] VM& vm, [[maybe_unused]] Value* a)

Value bool_value(VM& vm, bool b) { return b ? vm.true_value_ : vm.false_value_; }

struct Mpz {
  mpz_t z;
  Mpz() { mpz_init(z); }
  ~Mpz() { mpz_clear(z); }
};

bool is_integer(Value v) { return is_int(v) || obj(v)->kind == kBigInt; }

void need_integer(VM& vm, Value v, const char* op) {
  if (!is_integer(v))
    vm.fatal(std::string("argument of Integer>>") + op + " must be an Integer, got " + vm.describe(v));
}
void need_string(VM& vm, Value v, const char* op) {
  if (!vm.is_string(v))
    vm.fatal(std::string("argument of ") + op + " must be a String or Symbol, got " + vm.describe(v));
}
int64_t need_small(VM& vm, Value v, const char* op) {
  if (!is_int(v))
    vm.fatal(std::string("argument of ") + op + " must be a small Integer, got " + vm.describe(v));
  return int_of(v);
}

Value integer_from_double(VM& vm, double d, const char* op) {
  if (std::isnan(d) || std::isinf(d))
    vm.fatal(std::string(op) + ": cannot convert " + double_to_string(d) + " to an Integer");
  if (d >= -4.0e18 && d <= 4.0e18) return make_int64(vm, static_cast<int64_t>(d));
  Mpz t;
  mpz_set_d(t.z, d);
  return from_mpz(vm, t.z, false);
}

// ---- Object --------------------------------------------------------------------------------
SOM_PRIM(obj_class) { return val(vm.class_of(a[0])); }
SOM_PRIM(obj_size) {
  if (is_int(a[0])) return from_int(8);
  Object* o = obj(a[0]);
  if (o->kind == kSymbol || o->kind == kClass || o->kind == kMethod)
    return from_int(static_cast<int64_t>(sizeof(Object) + o->length));
  return from_int(static_cast<int64_t>(object_bytes(o->kind, o->length)));
}
// Numbers are values: == compares them by value (1 == 1.0, two equal big integers), and
// their hashcode depends only on the value, like `=`.
SOM_PRIM(obj_identical) {
  if (a[0] == a[1]) return vm.true_value_;
  if (is_number(a[0]) && is_number(a[1])) {
    bool ok;
    return bool_value(vm, num_compare(a[0], a[1], &ok) == 0);
  }
  return vm.false_value_;
}
uint32_t bytes_hash(const void* p, size_t n, uint32_t h = 2166136261u) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
  return h;
}
SOM_PRIM(obj_hash) {
  if (is_int(a[0])) return a[0];
  Object* o = obj(a[0]);
  if (o->kind == kBigInt)
    return from_int(bytes_hash(o->limbs(), o->length * sizeof(uint64_t), o->aux ? 7u : 3u));
  if (o->kind == kDouble) {
    double d = o->dbl();
    if (d == 0) d = 0;  // -0.0 = 0.0
    return from_int(bytes_hash(&d, sizeof d));
  }
  return from_int(o->hash);
}
SOM_PRIM(obj_self) { return a[0]; }

Value* field_slots(VM& vm, Value v, uint32_t* n) {
  if (is_int(v)) {
    *n = 0;
    return nullptr;
  }
  Object* o = obj(v);
  if (o->kind == kClass) {
    auto* c = static_cast<Class*>(o);
    *n = static_cast<uint32_t>(c->class_fields.size());
    return c->class_fields.data();
  }
  if (o->kind == kInstance) {
    *n = o->length;
    return o->slots();
  }
  (void)vm;
  *n = 0;
  return nullptr;
}
SOM_PRIM(obj_inst_var_at) {
  uint32_t n;
  Value* s = field_slots(vm, a[0], &n);
  int64_t i = need_small(vm, a[1], "instVarAt:");
  if (i < 1 || i > n)
    vm.fatal("instVarAt: index " + std::to_string(i) + " out of bounds (" + std::to_string(n) +
             " fields) for " + vm.describe(a[0]));
  return s[i - 1];
}
SOM_PRIM(obj_inst_var_at_put) {
  uint32_t n;
  Value* s = field_slots(vm, a[0], &n);
  int64_t i = need_small(vm, a[1], "instVarAt:put:");
  if (i < 1 || i > n)
    vm.fatal("instVarAt:put: index " + std::to_string(i) + " out of bounds for " + vm.describe(a[0]));
  s[i - 1] = a[2];
  return a[0];  // the receiver, as in other SOM VMs
}
int field_named(VM& vm, Value rcv, Value name) {
  need_string(vm, name, "instVarNamed:");
  Class* c = vm.class_of(rcv);
  std::string_view n = vm.string_of(name);
  for (size_t i = c->fields.size(); i-- > 0;)
    if (c->fields[i]->text == n) return static_cast<int>(i);
  vm.fatal("no field named " + std::string(n) + " in " + vm.describe(rcv));
}
SOM_PRIM(obj_inst_var_named) {
  uint32_t n;
  Value* s = field_slots(vm, a[0], &n);
  int i = field_named(vm, a[0], a[1]);
  if (static_cast<uint32_t>(i) >= n) vm.fatal("instVarNamed: field out of bounds");
  return s[i];
}
SOM_PRIM(obj_inst_var_named_put) {
  uint32_t n;
  Value* s = field_slots(vm, a[0], &n);
  int i = field_named(vm, a[0], a[1]);
  if (static_cast<uint32_t>(i) >= n) vm.fatal("instVarNamed:put: field out of bounds");
  s[i] = a[2];
  return a[2];
}

// ---- Class ---------------------------------------------------------------------------------
Class* as_class(VM& vm, Value v) {
  if (is_int(v) || obj(v)->kind != kClass) vm.fatal("expected a class, got " + vm.describe(v));
  return static_cast<Class*>(obj(v));
}
SOM_PRIM(cls_name) { return val(as_class(vm, a[0])->name); }
SOM_PRIM(cls_superclass) {
  Class* c = as_class(vm, a[0]);
  return c->superclass ? val(c->superclass) : vm.nil_value_;
}
SOM_PRIM(cls_new) {
  Class* c = as_class(vm, a[0]);
  if (c->is_meta) vm.fatal("cannot instantiate metaclass " + c->name->text);
  switch (c->inst_kind) {
    case kArray: {
      Value r = vm.new_array(0);
      obj(r)->cls = c->tag;
      return r;
    }
    case kString: {
      Value r = vm.new_string("");
      obj(r)->cls = c->tag;
      return r;
    }
    default:
      // Instances of these classes have VM-defined layouts (or are unique); their primitives
      // rely on that, so neither they nor their subclasses are instantiated with new.
      for (Class* k = c; k; k = k->superclass)
        if (k == vm.integer_class_ || k == vm.double_class_ || k == vm.block_class_ ||
            k == vm.method_class_ || k == vm.primitive_class_ || k == vm.class_class_ || k == vm.nil_class_ ||
            k == vm.boolean_class_ || k == vm.system_class_)
          vm.fatal("cannot create instances of " + c->name->text + " with new");
      return vm.new_instance(c);
  }
}
SOM_PRIM(cls_fields) {
  Class* c = as_class(vm, a[0]);
  Value r = vm.new_array(static_cast<uint32_t>(c->fields.size()));
  for (size_t i = 0; i < c->fields.size(); i++) obj(r)->slots()[i] = val(c->fields[i]);
  return r;
}
SOM_PRIM(cls_methods) { return vm.methods_array(as_class(vm, a[0])); }

// ---- Array ---------------------------------------------------------------------------------
Object* as_array(VM& vm, Value v) {
  if (is_int(v) || obj(v)->kind != kArray) vm.fatal("expected an Array, got " + vm.describe(v));
  return obj(v);
}
uint32_t array_index(VM& vm, Object* arr, Value idx, const char* op) {
  if (!is_int(idx))
    vm.fatal(std::string("Array>>") + op + " index must be an Integer, got " + vm.describe(idx));
  int64_t i = int_of(idx);
  if (i < 1 || i > arr->length)
    vm.fatal(std::string("Array>>") + op + " index " + std::to_string(i) + " out of bounds (length " +
             std::to_string(arr->length) + ")");
  return static_cast<uint32_t>(i - 1);
}
SOM_PRIM(arr_at) {
  Object* o = as_array(vm, a[0]);
  return o->slots()[array_index(vm, o, a[1], "at:")];
}
SOM_PRIM(arr_at_put) {
  Object* o = as_array(vm, a[0]);
  uint32_t i = array_index(vm, o, a[1], "at:put:");
  if (o->flags & kMethodTable)
    vm.replace_method(o, i, a[2]);
  else
    o->slots()[i] = a[2];
  return a[0];
}
SOM_PRIM(arr_length) { return from_int(as_array(vm, a[0])->length); }
SOM_PRIM(arr_new) {
  Class* c = as_class(vm, a[0]);
  if (!is_int(a[1]) || int_of(a[1]) < 0)
    vm.fatal("Array new: needs a non-negative Integer, got " + vm.describe(a[1]));
  if (int_of(a[1]) > (int64_t(1) << 28)) vm.fatal("Array new: size too large (limit 2^28 elements)");
  Value r = vm.new_array(static_cast<uint32_t>(int_of(a[1])));
  obj(r)->cls = c->tag;
  return r;
}

// ---- Integer -------------------------------------------------------------------------------
SOM_PRIM(int_add) { return num_add(vm, a[0], a[1]); }
SOM_PRIM(int_sub) { return num_sub(vm, a[0], a[1]); }
SOM_PRIM(int_mul) { return num_mul(vm, a[0], a[1]); }
SOM_PRIM(int_div) {
  Value b = a[1];
  if (is_double(b)) {
    double d = obj(b)->dbl();
    if (d == 0) vm.fatal("division by zero");
    return integer_from_double(vm, std::trunc(to_double(a[0]) / d), "/");
  }
  need_integer(vm, b, "/");
  if (is_int(a[0]) && is_int(b)) {
    int64_t y = int_of(b);
    if (y == 0) vm.fatal("division by zero");
    return make_int64(vm, int_of(a[0]) / y);
  }
  IntView x(a[0]), y(b);
  if (mpz_sgn(y.z) == 0) vm.fatal("division by zero");
  Mpz r;
  mpz_tdiv_q(r.z, x.z, y.z);
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_mod) {
  Value b = a[1];
  if (is_double(b)) {
    double x = to_double(a[0]), y = obj(b)->dbl();
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return vm.new_double(r);
  }
  need_integer(vm, b, "%");
  if (is_int(a[0]) && is_int(b)) {
    int64_t x = int_of(a[0]), y = int_of(b);
    if (y == 0) vm.fatal("division by zero (modulo)");
    int64_t r = x % y;
    if (r != 0 && ((r ^ y) < 0)) r += y;
    return from_int(r);
  }
  IntView x(a[0]), y(b);
  if (mpz_sgn(y.z) == 0) vm.fatal("division by zero (modulo)");
  Mpz r;
  mpz_fdiv_r(r.z, x.z, y.z);
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_rem) {
  Value b = a[1];
  if (is_double(b)) return vm.new_double(std::fmod(to_double(a[0]), obj(b)->dbl()));
  need_integer(vm, b, "rem:");
  if (is_int(a[0]) && is_int(b)) {
    int64_t y = int_of(b);
    if (y == 0) vm.fatal("division by zero (rem:)");
    return from_int(int_of(a[0]) % y);
  }
  IntView x(a[0]), y(b);
  if (mpz_sgn(y.z) == 0) vm.fatal("division by zero (rem:)");
  Mpz r;
  mpz_tdiv_r(r.z, x.z, y.z);
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_float_div) {
  if (!is_number(a[1])) vm.fatal("argument of // is not a number: " + vm.describe(a[1]));
  double y = to_finite_double(vm, a[1], "//");
  if (y == 0) vm.fatal("division by zero (//)");
  return vm.new_double(to_finite_double(vm, a[0], "//") / y);
}
SOM_PRIM(int_and) {
  need_integer(vm, a[1], "&");
  if (is_int(a[0]) && is_int(a[1])) return a[0] & a[1];
  IntView x(a[0]), y(a[1]);
  Mpz r;
  mpz_and(r.z, x.z, y.z);
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_xor) {
  need_integer(vm, a[1], "bitXor:");
  if (is_int(a[0]) && is_int(a[1])) return from_int(int_of(a[0]) ^ int_of(a[1]));
  IntView x(a[0]), y(a[1]);
  Mpz r;
  mpz_xor(r.z, x.z, y.z);
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_or) {
  need_integer(vm, a[1], "bitOr:");
  if (is_int(a[0]) && is_int(a[1])) return a[0] | a[1];
  IntView x(a[0]), y(a[1]);
  Mpz r;
  mpz_ior(r.z, x.z, y.z);
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_shl) {
  need_integer(vm, a[1], "<<");
  int64_t n = need_small(vm, a[1], "<<");
  if (n < 0) vm.fatal("<< with a negative shift count (" + std::to_string(n) + ")");
  IntView x(a[0]);
  Mpz r;
  {
    if (n > (int64_t(1) << 24)) vm.fatal("<< shift count too large");
    if (is_int(a[0]) && n < 62) {
      int64_t v = int_of(a[0]), out;
      if (!__builtin_mul_overflow(v, int64_t(1) << n, &out)) return make_int64(vm, out);
    }
    mpz_mul_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(n));
  }
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_shr_logical) {
  int64_t n = need_small(vm, a[1], ">>>");
  if (n < 0) vm.fatal(">>> with a negative shift count");
  if (n == 0) return a[0];
  // Logical shift of the 64-bit two's-complement value; receivers beyond 64 bits (unspecified)
  // shift arithmetically.
  bool fits64 = is_int(a[0]);
  int64_t v = is_int(a[0]) ? int_of(a[0]) : 0;
  if (!fits64) {
    IntView x(a[0]);
    if (mpz_fits_slong_p(x.z)) {
      fits64 = true;
      v = mpz_get_si(x.z);
    }
  }
  if (fits64) {
    uint64_t r = n >= 64 ? 0 : static_cast<uint64_t>(v) >> n;
    if (r <= static_cast<uint64_t>(kSmallMax)) return from_int(static_cast<int64_t>(r));
    Mpz t;
    mpz_set_ui(t.z, r);
    return from_mpz(vm, t.z, false);
  }
  IntView x(a[0]);
  Mpz r;
  mpz_fdiv_q_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(n));
  return from_mpz(vm, r.z, false);
}
SOM_PRIM(int_shr) {
  int64_t n = need_small(vm, a[1], ">>");
  IntView x(a[0]);
  Mpz r;
  if (n >= 0)
    mpz_fdiv_q_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(n));
  else
    mpz_mul_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(-n));
  return from_mpz(vm, r.z, false);
}
// Integer when exact; otherwise a Double for a small receiver and the Integer part of the root
// for a big one (whose root a Double could not represent exactly anyway). No real root of a
// negative number: an error.
SOM_PRIM(int_sqrt) {
  if (is_int(a[0])) {
    int64_t v = int_of(a[0]);
    if (v < 0) vm.fatal("sqrt of a negative Integer (" + std::to_string(v) + ")");
    int64_t s = static_cast<int64_t>(std::sqrt(static_cast<double>(v)));
    while (s > 0 && s * s > v) s--;
    while ((s + 1) * (s + 1) <= v) s++;
    if (s * s == v) return from_int(s);
    return vm.new_double(std::sqrt(static_cast<double>(v)));
  }
  IntView x(a[0]);
  if (mpz_sgn(x.z) < 0) vm.fatal("sqrt of a negative Integer (" + integer_to_string(a[0]) + ")");
  Mpz r;
  mpz_sqrt(r.z, x.z);
  return from_mpz(vm, r.z, false);
}
uint64_t g_random = 0x2545F4914F6CDD1DULL;
SOM_PRIM(int_at_random) {
  g_random ^= g_random << 13;
  g_random ^= g_random >> 7;
  g_random ^= g_random << 17;
  if (!is_int(a[0]) || int_of(a[0]) <= 0) return from_int(0);
  return from_int(static_cast<int64_t>(g_random % static_cast<uint64_t>(int_of(a[0]))));
}
SOM_PRIM(int_eq) {
  if (!is_number(a[1])) return vm.false_value_;
  bool ok;
  return bool_value(vm, num_compare(a[0], a[1], &ok) == 0);
}
SOM_PRIM(int_lt) {
  bool ok;
  int c = num_compare(a[0], a[1], &ok);
  if (!ok) vm.fatal("argument of < is not a number: " + vm.describe(a[1]));
  return bool_value(vm, c == -1);
}
SOM_PRIM(int_as_string) { return vm.new_string(integer_to_string(a[0])); }
SOM_PRIM(int_as_double) { return vm.new_double(to_double(a[0])); }
uint64_t low64(Value v) {
  if (is_int(v)) return static_cast<uint64_t>(int_of(v));
  IntView x(v);
  Mpz r;
  mpz_fdiv_r_2exp(r.z, x.z, 64);
  return mpz_size(r.z) ? mpz_getlimbn(r.z, 0) : 0;
}
SOM_PRIM(int_as_32_signed) { return from_int(static_cast<int32_t>(static_cast<uint32_t>(low64(a[0])))); }
SOM_PRIM(int_as_32_unsigned) { return from_int(static_cast<uint32_t>(low64(a[0]))); }
SOM_PRIM(int_from_string) {
  need_string(vm, a[1], "Integer fromString:");
  std::string s(vm.string_of(a[1]));
  size_t digits_from = !s.empty() && s[0] == '-' ? 1 : 0;
  bool ok = s.size() > digits_from;
  for (size_t i = digits_from; i < s.size(); i++) ok &= s[i] >= '0' && s[i] <= '9';
  if (!ok) vm.fatal("Integer fromString: '" + s + "' is not a decimal integer");
  return vm.big_from_decimal(s, false);
}

// ---- Double --------------------------------------------------------------------------------
double need_num(VM& vm, Value v, const char* op) {
  if (!is_number(v))
    vm.fatal(std::string("argument of Double>>") + op + " is not a number: " + vm.describe(v));
  return to_finite_double(vm, v, op);
}
SOM_PRIM(dbl_add) { return vm.new_double(obj(a[0])->dbl() + need_num(vm, a[1], "+")); }
SOM_PRIM(dbl_sub) { return vm.new_double(obj(a[0])->dbl() - need_num(vm, a[1], "-")); }
SOM_PRIM(dbl_mul) { return vm.new_double(obj(a[0])->dbl() * need_num(vm, a[1], "*")); }
SOM_PRIM(dbl_div) {
  double y = need_num(vm, a[1], "//");
  if (y == 0) vm.fatal("division by zero (//)");
  return vm.new_double(obj(a[0])->dbl() / y);
}
SOM_PRIM(dbl_mod) { return vm.new_double(std::fmod(obj(a[0])->dbl(), need_num(vm, a[1], "%"))); }
SOM_PRIM(dbl_sqrt) { return vm.new_double(std::sqrt(obj(a[0])->dbl())); }
SOM_PRIM(dbl_sin) { return vm.new_double(std::sin(obj(a[0])->dbl())); }
SOM_PRIM(dbl_cos) { return vm.new_double(std::cos(obj(a[0])->dbl())); }
SOM_PRIM(dbl_round) { return integer_from_double(vm, std::round(obj(a[0])->dbl()), "round"); }
SOM_PRIM(dbl_as_integer) { return integer_from_double(vm, std::trunc(obj(a[0])->dbl()), "asInteger"); }
SOM_PRIM(dbl_eq) {
  if (!is_number(a[1])) return vm.false_value_;
  return bool_value(vm, obj(a[0])->dbl() == to_double(a[1]));
}
SOM_PRIM(dbl_lt) { return bool_value(vm, obj(a[0])->dbl() < need_num(vm, a[1], "<")); }
SOM_PRIM(dbl_as_string) { return vm.new_string(double_to_string(obj(a[0])->dbl())); }
SOM_PRIM(dbl_infinity) { return vm.new_double(HUGE_VAL); }
SOM_PRIM(dbl_from_string) {
  need_string(vm, a[1], "Double fromString:");
  std::string s(vm.string_of(a[1]));
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) vm.fatal("Double fromString: '" + s + "' is not a number");
  return vm.new_double(d);
}

// ---- String / Symbol -------------------------------------------------------------------------
// A String's header `aux` caches whether all its bytes are ASCII (then characters are bytes
// and length/substrings need no scan): kTextUnknown until first asked. Strings are immutable.
constexpr uint16_t kTextUnknown = 0, kTextAscii = 1, kTextUtf8 = 2;
bool ascii_only(VM& vm, Value v) {
  Object* o = obj(v);
  if (o->kind == kString && o->aux != kTextUnknown) return o->aux == kTextAscii;
  std::string_view s = vm.string_of(v);
  uint64_t high = 0;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    high |= w;
  }
  for (; i < s.size(); i++) high |= static_cast<uint8_t>(s[i]);
  bool ascii = (high & 0x8080808080808080ULL) == 0;
  if (o->kind == kString) o->aux = ascii ? kTextAscii : kTextUtf8;
  return ascii;
}
uint32_t content_hash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h;
}
SOM_PRIM(str_concat) {
  need_string(vm, a[1], "concatenate:");
  std::string r(vm.string_of(a[0]));
  r += vm.string_of(a[1]);
  Value result = vm.new_string(r);
  if (ascii_only(vm, a[0]) && ascii_only(vm, a[1])) obj(result)->aux = kTextAscii;
  return result;
}
SOM_PRIM(sym_concat) {
  need_string(vm, a[1], "concatenate:");
  std::string r(vm.string_of(a[0]));
  r += vm.string_of(a[1]);
  return val(vm.intern(r));
}
SOM_PRIM(str_as_symbol) { return val(vm.intern(vm.string_of(a[0]))); }
SOM_PRIM(str_hash) { return from_int(content_hash(vm.string_of(a[0]))); }
// Strings hold UTF-8 bytes; length, indexes and substrings count characters (code points),
// as in other SOM VMs. A byte that is not a UTF-8 continuation byte starts a character, so
// malformed text still has a well-defined length.
bool starts_char(char c) { return (static_cast<uint8_t>(c) & 0xC0) != 0x80; }
size_t char_count(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += starts_char(c);
  return n;
}
// Byte offset of the character with 0-based index `k` (s.size() when k == char_count(s)).
size_t byte_offset(std::string_view s, size_t k) {
  size_t i = 0;
  for (; i < s.size(); i++)
    if (starts_char(s[i]) && k-- == 0) return i;
  return i;
}
// Decodes the character at byte offset i (advancing i); U+FFFD for malformed bytes.
char32_t decode_char(std::string_view s, size_t& i) {
  auto b = static_cast<uint8_t>(s[i++]);
  int more = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
  if (b >= 0x80 && more == 0) return 0xFFFD;
  char32_t c = more == 0 ? b : b & (0x3F >> more);
  for (; more > 0; more--) {
    if (i >= s.size() || starts_char(s[i])) return 0xFFFD;
    c = (c << 6) | (static_cast<uint8_t>(s[i++]) & 0x3F);
  }
  return c;
}
SOM_PRIM(str_length) {
  std::string_view s = vm.string_of(a[0]);
  return from_int(static_cast<int64_t>(ascii_only(vm, a[0]) ? s.size() : char_count(s)));
}
// isLetters / isDigits / isWhiteSpace: every character (Unicode classification through the
// C.UTF-8 locale) has the property; false for ''.
template <int (*Pred)(wint_t, locale_t)>
Value str_all(VM& vm, Value* a) {
  static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  std::string_view s = vm.string_of(a[0]);
  if (s.empty()) return vm.false_value_;
  for (size_t i = 0; i < s.size();) {
    char32_t c = decode_char(s, i);
    bool ok = utf8 ? Pred(static_cast<wint_t>(c), utf8) != 0
                   : c < 0x80 && Pred(static_cast<wint_t>(c), LC_GLOBAL_LOCALE) != 0;
    if (!ok) return vm.false_value_;
  }
  return vm.true_value_;
}
SOM_PRIM(str_eq) {
  if (is_int(a[1]) || !vm.is_string(a[1])) return vm.false_value_;
  return bool_value(vm, vm.string_of(a[0]) == vm.string_of(a[1]));
}
SOM_PRIM(str_substring) {
  std::string_view s = vm.string_of(a[0]);
  int64_t from = need_small(vm, a[1], "primSubstringFrom:to:");
  int64_t to = need_small(vm, a[2], "primSubstringFrom:to:");
  if (to < from) return vm.new_string("");
  bool ascii = ascii_only(vm, a[0]);
  auto n = static_cast<int64_t>(ascii ? s.size() : char_count(s));
  if (from < 1 || to > n)
    vm.fatal("primSubstringFrom: " + std::to_string(from) + " to: " + std::to_string(to) +
             " out of range for a string of length " + std::to_string(n));
  size_t begin = ascii ? static_cast<size_t>(from - 1) : byte_offset(s, static_cast<size_t>(from - 1));
  size_t end = ascii ? static_cast<size_t>(to) : byte_offset(s, static_cast<size_t>(to));
  Value result = vm.new_string(s.substr(begin, end - begin));
  if (ascii) obj(result)->aux = kTextAscii;
  return result;
}
SOM_PRIM(sym_as_string) { return vm.new_string(vm.string_of(a[0])); }
SOM_PRIM(str_char_at) {
  std::string_view s = vm.string_of(a[0]);
  int64_t i = need_small(vm, a[1], "charAt:");
  bool ascii = ascii_only(vm, a[0]);
  if (i < 1 || i > static_cast<int64_t>(ascii ? s.size() : char_count(s)))
    vm.fatal("charAt: index " + std::to_string(i) + " out of bounds");
  if (ascii) return vm.new_string(s.substr(static_cast<size_t>(i - 1), 1));
  size_t begin = byte_offset(s, static_cast<size_t>(i - 1));
  return vm.new_string(s.substr(begin, byte_offset(s, static_cast<size_t>(i)) - begin));
}

// ---- Method / Primitive ----------------------------------------------------------------------
Method* as_method(VM& vm, Value v) {
  if (is_int(v) || obj(v)->kind != kMethod) vm.fatal("expected a method, got " + vm.describe(v));
  return static_cast<Method*>(obj(v));
}
SOM_PRIM(mth_signature) { return val(as_method(vm, a[0])->signature); }
SOM_PRIM(mth_holder) {
  Method* m = as_method(vm, a[0]);
  return m->holder ? val(m->holder) : vm.nil_value_;
}

// ---- System --------------------------------------------------------------------------------
Symbol* as_symbol(VM& vm, Value v, const char* op) {
  if (is_int(v) || obj(v)->kind != kSymbol)
    vm.fatal(std::string(op) + " needs a Symbol, got " + vm.describe(v));
  return static_cast<Symbol*>(obj(v));
}
SOM_PRIM(sys_global) {
  Symbol* s = as_symbol(vm, a[1], "global:");
  return s->has_global ? s->global : vm.nil_value_;
}
SOM_PRIM(sys_has_global) { return bool_value(vm, as_symbol(vm, a[1], "hasGlobal:")->has_global); }
SOM_PRIM(sys_global_put) {
  vm.set_global(as_symbol(vm, a[1], "global:put:"), a[2]);
  return a[0];  // the receiver (system), as in other SOM VMs
}
SOM_PRIM(sys_load_file) {
  need_string(vm, a[1], "loadFile:");
  std::ifstream in(std::string(vm.string_of(a[1])), std::ios::binary);
  if (!in) return vm.nil_value_;
  std::ostringstream ss;
  ss << in.rdbuf();
  return vm.new_string(ss.str());
}
SOM_PRIM(sys_load) {
  Symbol* s = as_symbol(vm, a[1], "load:");
  Class* c = vm.load_class(s);
  return c ? val(c) : vm.nil_value_;
}
SOM_PRIM(sys_exit) {
  int64_t code = need_small(vm, a[1], "exit:");
  vm.raise_exit(static_cast<int>(code));
}
SOM_PRIM(sys_load_native) {
  // Binds the native methods of a shared library (jitkit/som/native.h); errors are SOM errors.
  need_string(vm, a[1], "loadNative:");
  std::string error = vm.load_native(std::string(vm.string_of(a[1])));
  if (!error.empty()) vm.fatal(error);
  return a[0];
}
SOM_PRIM(sys_print_string) {
  need_string(vm, a[1], "printString:");
  std::string_view s = vm.string_of(a[1]);
  std::fwrite(s.data(), 1, s.size(), stdout);
  return a[0];
}
SOM_PRIM(sys_print_newline) {
  std::fputc('\n', stdout);
  return a[0];
}
SOM_PRIM(sys_error_print) {
  need_string(vm, a[1], "errorPrint:");
  std::string_view s = vm.string_of(a[1]);
  std::fflush(stdout);
  std::fwrite(s.data(), 1, s.size(), stderr);
  return a[0];
}
SOM_PRIM(sys_error_println) {
  need_string(vm, a[1], "errorPrintln:");
  std::string_view s = vm.string_of(a[1]);
  std::fflush(stdout);
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fputc('\n', stderr);
  return a[0];
}
SOM_PRIM(sys_print_stack_trace) {
  std::fflush(stdout);
  vm.print_stack_trace(stderr);
  return a[0];
}
SOM_PRIM(sys_time) { return from_int(static_cast<int64_t>((now_micros() - vm.start_micros_) / 1000)); }
SOM_PRIM(sys_ticks) { return from_int(static_cast<int64_t>(now_micros() - vm.start_micros_ + 1)); }
SOM_PRIM(sys_full_gc) {
  vm.collect_garbage();
  return vm.true_value_;
}

#undef SOM_PRIM

}  // namespace

void VM::register_primitives() {
  auto reg = [&](const char* key, PrimFn fn) { primitives_[key] = PrimEntry{fn, SpecialPrim::kNone}; };
  auto special = [&](const char* key, SpecialPrim which) { primitives_[key] = PrimEntry{nullptr, which}; };
  reg("Object>>class", obj_class);
  reg("Object>>objectSize", obj_size);
  reg("Object>>==", obj_identical);
  reg("Object>>hashcode", obj_hash);
  reg("Object>>identityHash", obj_hash);
  reg("Object>>inspect", obj_self);
  reg("Object>>halt", obj_self);
  special("Object>>perform:", SpecialPrim::kPerform);
  special("Object>>perform:withArguments:", SpecialPrim::kPerformArgs);
  special("Object>>perform:inSuperclass:", SpecialPrim::kPerformSuper);
  special("Object>>perform:withArguments:inSuperclass:", SpecialPrim::kPerformArgsSuper);
  reg("Object>>instVarAt:", obj_inst_var_at);
  reg("Object>>instVarAt:put:", obj_inst_var_at_put);
  reg("Object>>instVarNamed:", obj_inst_var_named);
  reg("Object>>instVarNamed:put:", obj_inst_var_named_put);

  reg("Class>>name", cls_name);
  reg("Class>>superclass", cls_superclass);
  reg("Class>>new", cls_new);
  reg("Class>>fields", cls_fields);
  reg("Class>>methods", cls_methods);

  primitives_["Array>>at:"] = PrimEntry{arr_at, SpecialPrim::kArrayAt};
  primitives_["Array>>at:put:"] = PrimEntry{arr_at_put, SpecialPrim::kArrayAtPut};
  primitives_["Array>>length"] = PrimEntry{arr_length, SpecialPrim::kArrayLength};
  reg("Array class>>new:", arr_new);

  special("Block>>value", SpecialPrim::kValue);
  special("Block1>>value", SpecialPrim::kValue);
  special("Block>>value:", SpecialPrim::kValue);
  special("Block2>>value:", SpecialPrim::kValue);
  special("Block>>value:with:", SpecialPrim::kValue);
  special("Block3>>value:with:", SpecialPrim::kValue);
  special("Block>>restart", SpecialPrim::kRestart);

  reg("Integer>>+", int_add);
  reg("Integer>>-", int_sub);
  reg("Integer>>*", int_mul);
  reg("Integer>>/", int_div);
  reg("Integer>>%", int_mod);
  reg("Integer>>rem:", int_rem);
  reg("Integer>>//", int_float_div);
  reg("Integer>>&", int_and);
  reg("Integer>>bitXor:", int_xor);
  reg("Integer>>bitOr:", int_or);
  reg("Integer>><<", int_shl);
  reg("Integer>>>>>", int_shr_logical);
  reg("Integer>>>>", int_shr);
  reg("Integer>>sqrt", int_sqrt);
  reg("Integer>>atRandom", int_at_random);
  reg("Integer>>=", int_eq);
  reg("Integer>><", int_lt);
  reg("Integer>>asString", int_as_string);
  reg("Integer>>asDouble", int_as_double);
  reg("Integer>>as32BitSignedValue", int_as_32_signed);
  reg("Integer>>as32BitUnsignedValue", int_as_32_unsigned);
  reg("Integer class>>fromString:", int_from_string);

  reg("Double>>+", dbl_add);
  reg("Double>>-", dbl_sub);
  reg("Double>>*", dbl_mul);
  reg("Double>>//", dbl_div);
  reg("Double>>%", dbl_mod);
  reg("Double>>sqrt", dbl_sqrt);
  reg("Double>>sin", dbl_sin);
  reg("Double>>cos", dbl_cos);
  reg("Double>>round", dbl_round);
  reg("Double>>asInteger", dbl_as_integer);
  reg("Double>>=", dbl_eq);
  reg("Double>><", dbl_lt);
  reg("Double>>asString", dbl_as_string);
  reg("Double class>>PositiveInfinity", dbl_infinity);
  reg("Double class>>fromString:", dbl_from_string);

  reg("String>>concatenate:", str_concat);
  reg("Symbol>>concatenate:", sym_concat);
  reg("String>>asSymbol", str_as_symbol);
  reg("Symbol>>asSymbol", str_as_symbol);
  reg("String>>hashcode", str_hash);
  reg("Symbol>>hashcode", str_hash);
  reg("String>>length", str_length);
  reg("Symbol>>length", str_length);
  reg("String>>isWhiteSpace", str_all<iswspace_l>);
  reg("String>>isLetters", str_all<iswalpha_l>);
  reg("String>>isDigits", str_all<iswdigit_l>);
  reg("String>>=", str_eq);
  reg("Symbol>>=", str_eq);
  reg("String>>primSubstringFrom:to:", str_substring);
  reg("String>>charAt:", str_char_at);
  reg("Symbol>>asString", sym_as_string);

  for (const char* holder : {"Method", "Primitive"}) {
    std::string h(holder);
    reg((h + ">>signature").c_str(), mth_signature);
    reg((h + ">>holder").c_str(), mth_holder);
    special((h + ">>invokeOn:with:").c_str(), SpecialPrim::kInvoke);
  }

  reg("System>>global:", sys_global);
  reg("System>>hasGlobal:", sys_has_global);
  reg("System>>global:put:", sys_global_put);
  reg("System>>loadFile:", sys_load_file);
  reg("System>>load:", sys_load);
  reg("System>>exit:", sys_exit);
  reg("System>>loadNative:", sys_load_native);
  reg("System>>printString:", sys_print_string);
  reg("System>>printNewline", sys_print_newline);
  reg("System>>errorPrint:", sys_error_print);
  reg("System>>errorPrintln:", sys_error_println);
  reg("System>>printStackTrace", sys_print_stack_trace);
  reg("System>>time", sys_time);
  reg("System>>ticks", sys_ticks);
  reg("System>>fullGC", sys_full_gc);
}

}  // namespace som
