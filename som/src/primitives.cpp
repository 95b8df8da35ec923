// The primitives of LANGUAGE.md §4, bound by "Class>>selector" / "Class class>>selector" when
// a class is loaded. A primitive gets the receiver and arguments in args[0..n] and returns the
// result; it never triggers a GC (except System>>fullGC, which runs when every live value is on
// the frame stack) and reports failures through VM::fatal (diagnostic + SOM stack trace, exit 1).
#include "numbers_p.h"
#include "vm_p.h"

#include <gmp.h>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

namespace som {

Value fromMpz(VM& vm, mpz_srcptr z, bool permanent);

namespace {

#define PRIM(name) Value name([[maybe_unused]] VM& vm, [[maybe_unused]] Value* a)

Value boolV(VM& vm, bool b) { return b ? vm.trueV : vm.falseV; }

struct Mpz {
  mpz_t z;
  Mpz() { mpz_init(z); }
  ~Mpz() { mpz_clear(z); }
};

bool isInteger(Value v) { return isInt(v) || obj(v)->kind == kBigInt; }

void needInteger(VM& vm, Value v, const char* op) {
  if (!isInteger(v))
    vm.fatal(std::string("argument of Integer>>") + op + " must be an Integer, got " + vm.describe(v));
}
void needString(VM& vm, Value v, const char* op) {
  if (!vm.isString(v))
    vm.fatal(std::string("argument of ") + op + " must be a String or Symbol, got " + vm.describe(v));
}
int64_t needSmall(VM& vm, Value v, const char* op) {
  if (!isInt(v))
    vm.fatal(std::string("argument of ") + op + " must be a small Integer, got " + vm.describe(v));
  return intOf(v);
}

Value integerFromDouble(VM& vm, double d, const char* op) {
  if (std::isnan(d) || std::isinf(d))
    vm.fatal(std::string(op) + ": cannot convert " + doubleToString(d) + " to an Integer");
  if (d >= -4.0e18 && d <= 4.0e18) return makeInt64(vm, static_cast<int64_t>(d));
  Mpz t;
  mpz_set_d(t.z, d);
  return fromMpz(vm, t.z, false);
}

// ---- Object --------------------------------------------------------------------------------
PRIM(objClass) { return val(vm.classOf(a[0])); }
PRIM(objSize) {
  if (isInt(a[0])) return fromInt(8);
  Object* o = obj(a[0]);
  if (o->kind == kSymbol || o->kind == kClass || o->kind == kMethod)
    return fromInt(static_cast<int64_t>(sizeof(Object) + o->length));
  return fromInt(static_cast<int64_t>(objectBytes(o->kind, o->length)));
}
PRIM(objIdentical) { return boolV(vm, a[0] == a[1]); }
PRIM(objHash) {
  if (isInt(a[0])) return a[0];
  return fromInt(obj(a[0])->hash);
}
PRIM(objSelf) { return a[0]; }

Value* fieldSlots(VM& vm, Value v, uint32_t* n) {
  if (isInt(v)) {
    *n = 0;
    return nullptr;
  }
  Object* o = obj(v);
  if (o->kind == kClass) {
    auto* c = static_cast<Class*>(o);
    *n = static_cast<uint32_t>(c->classFields.size());
    return c->classFields.data();
  }
  if (o->kind == kInstance) {
    *n = o->length;
    return o->slots();
  }
  (void)vm;
  *n = 0;
  return nullptr;
}
PRIM(objInstVarAt) {
  uint32_t n;
  Value* s = fieldSlots(vm, a[0], &n);
  int64_t i = needSmall(vm, a[1], "instVarAt:");
  if (i < 1 || i > n)
    vm.fatal("instVarAt: index " + std::to_string(i) + " out of bounds (" + std::to_string(n) +
             " fields) for " + vm.describe(a[0]));
  return s[i - 1];
}
PRIM(objInstVarAtPut) {
  uint32_t n;
  Value* s = fieldSlots(vm, a[0], &n);
  int64_t i = needSmall(vm, a[1], "instVarAt:put:");
  if (i < 1 || i > n)
    vm.fatal("instVarAt:put: index " + std::to_string(i) + " out of bounds for " + vm.describe(a[0]));
  s[i - 1] = a[2];
  return a[2];
}
int fieldNamed(VM& vm, Value rcv, Value name) {
  needString(vm, name, "instVarNamed:");
  Class* c = vm.classOf(rcv);
  std::string_view n = vm.stringOf(name);
  for (size_t i = c->fields.size(); i-- > 0;)
    if (c->fields[i]->text == n) return static_cast<int>(i);
  vm.fatal("no field named " + std::string(n) + " in " + vm.describe(rcv));
}
PRIM(objInstVarNamed) {
  uint32_t n;
  Value* s = fieldSlots(vm, a[0], &n);
  int i = fieldNamed(vm, a[0], a[1]);
  if (static_cast<uint32_t>(i) >= n) vm.fatal("instVarNamed: field out of bounds");
  return s[i];
}
PRIM(objInstVarNamedPut) {
  uint32_t n;
  Value* s = fieldSlots(vm, a[0], &n);
  int i = fieldNamed(vm, a[0], a[1]);
  if (static_cast<uint32_t>(i) >= n) vm.fatal("instVarNamed:put: field out of bounds");
  s[i] = a[2];
  return a[2];
}

// ---- Class ---------------------------------------------------------------------------------
Class* asClass(VM& vm, Value v) {
  if (isInt(v) || obj(v)->kind != kClass) vm.fatal("expected a class, got " + vm.describe(v));
  return static_cast<Class*>(obj(v));
}
PRIM(clsName) { return val(asClass(vm, a[0])->name); }
PRIM(clsSuperclass) {
  Class* c = asClass(vm, a[0]);
  return c->superclass ? val(c->superclass) : vm.nilV;
}
PRIM(clsNew) {
  Class* c = asClass(vm, a[0]);
  if (c->isMeta) vm.fatal("cannot instantiate metaclass " + c->name->text);
  switch (c->instKind) {
    case kArray: {
      Value r = vm.newArray(0);
      obj(r)->cls = c->tag;
      return r;
    }
    case kString: {
      Value r = vm.newString("");
      obj(r)->cls = c->tag;
      return r;
    }
    default:
      // Instances of these classes have VM-defined layouts (or are unique); their primitives
      // rely on that, so neither they nor their subclasses are instantiated with new.
      for (Class* k = c; k; k = k->superclass)
        if (k == vm.integerClass || k == vm.doubleClass || k == vm.blockClass || k == vm.methodClass ||
            k == vm.primitiveClass || k == vm.classClass || k == vm.nilClass || k == vm.booleanClass ||
            k == vm.systemClass)
          vm.fatal("cannot create instances of " + c->name->text + " with new");
      return vm.newInstance(c);
  }
}
PRIM(clsFields) {
  Class* c = asClass(vm, a[0]);
  Value r = vm.newArray(static_cast<uint32_t>(c->fields.size()));
  for (size_t i = 0; i < c->fields.size(); i++) obj(r)->slots()[i] = val(c->fields[i]);
  return r;
}
PRIM(clsMethods) {
  Class* c = asClass(vm, a[0]);
  Value r = vm.newArray(static_cast<uint32_t>(c->methods.size()));
  for (size_t i = 0; i < c->methods.size(); i++) obj(r)->slots()[i] = val(c->methods[i]);
  return r;
}

// ---- Array ---------------------------------------------------------------------------------
Object* asArray(VM& vm, Value v) {
  if (isInt(v) || obj(v)->kind != kArray) vm.fatal("expected an Array, got " + vm.describe(v));
  return obj(v);
}
uint32_t arrayIndex(VM& vm, Object* arr, Value idx, const char* op) {
  if (!isInt(idx))
    vm.fatal(std::string("Array>>") + op + " index must be an Integer, got " + vm.describe(idx));
  int64_t i = intOf(idx);
  if (i < 1 || i > arr->length)
    vm.fatal(std::string("Array>>") + op + " index " + std::to_string(i) + " out of bounds (length " +
             std::to_string(arr->length) + ")");
  return static_cast<uint32_t>(i - 1);
}
PRIM(arrAt) {
  Object* o = asArray(vm, a[0]);
  return o->slots()[arrayIndex(vm, o, a[1], "at:")];
}
PRIM(arrAtPut) {
  Object* o = asArray(vm, a[0]);
  o->slots()[arrayIndex(vm, o, a[1], "at:put:")] = a[2];
  return a[0];
}
PRIM(arrLength) { return fromInt(asArray(vm, a[0])->length); }
PRIM(arrNew) {
  Class* c = asClass(vm, a[0]);
  if (!isInt(a[1]) || intOf(a[1]) < 0)
    vm.fatal("Array new: needs a non-negative Integer, got " + vm.describe(a[1]));
  if (intOf(a[1]) > (int64_t(1) << 28)) vm.fatal("Array new: size too large (limit 2^28 elements)");
  Value r = vm.newArray(static_cast<uint32_t>(intOf(a[1])));
  obj(r)->cls = c->tag;
  return r;
}

// ---- Integer -------------------------------------------------------------------------------
PRIM(intAdd) { return numAdd(vm, a[0], a[1]); }
PRIM(intSub) { return numSub(vm, a[0], a[1]); }
PRIM(intMul) { return numMul(vm, a[0], a[1]); }
PRIM(intDiv) {
  Value b = a[1];
  if (isDouble(b)) {
    double d = obj(b)->dbl();
    if (d == 0) vm.fatal("division by zero");
    return integerFromDouble(vm, std::trunc(toDouble(a[0]) / d), "/");
  }
  needInteger(vm, b, "/");
  if (isInt(a[0]) && isInt(b)) {
    int64_t y = intOf(b);
    if (y == 0) vm.fatal("division by zero");
    return makeInt64(vm, intOf(a[0]) / y);
  }
  IntView x(a[0]), y(b);
  if (mpz_sgn(y.z) == 0) vm.fatal("division by zero");
  Mpz r;
  mpz_tdiv_q(r.z, x.z, y.z);
  return fromMpz(vm, r.z, false);
}
PRIM(intMod) {
  Value b = a[1];
  if (isDouble(b)) {
    double x = toDouble(a[0]), y = obj(b)->dbl();
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return vm.newDouble(r);
  }
  needInteger(vm, b, "%");
  if (isInt(a[0]) && isInt(b)) {
    int64_t x = intOf(a[0]), y = intOf(b);
    if (y == 0) vm.fatal("division by zero (modulo)");
    int64_t r = x % y;
    if (r != 0 && ((r ^ y) < 0)) r += y;
    return fromInt(r);
  }
  IntView x(a[0]), y(b);
  if (mpz_sgn(y.z) == 0) vm.fatal("division by zero (modulo)");
  Mpz r;
  mpz_fdiv_r(r.z, x.z, y.z);
  return fromMpz(vm, r.z, false);
}
PRIM(intRem) {
  Value b = a[1];
  if (isDouble(b)) return vm.newDouble(std::fmod(toDouble(a[0]), obj(b)->dbl()));
  needInteger(vm, b, "rem:");
  if (isInt(a[0]) && isInt(b)) {
    int64_t y = intOf(b);
    if (y == 0) vm.fatal("division by zero (rem:)");
    return fromInt(intOf(a[0]) % y);
  }
  IntView x(a[0]), y(b);
  if (mpz_sgn(y.z) == 0) vm.fatal("division by zero (rem:)");
  Mpz r;
  mpz_tdiv_r(r.z, x.z, y.z);
  return fromMpz(vm, r.z, false);
}
PRIM(intFloatDiv) {
  if (!isNumber(a[1])) vm.fatal("argument of // is not a number: " + vm.describe(a[1]));
  return vm.newDouble(toDouble(a[0]) / toDouble(a[1]));
}
PRIM(intAnd) {
  needInteger(vm, a[1], "&");
  if (isInt(a[0]) && isInt(a[1])) return a[0] & a[1];
  IntView x(a[0]), y(a[1]);
  Mpz r;
  mpz_and(r.z, x.z, y.z);
  return fromMpz(vm, r.z, false);
}
PRIM(intXor) {
  needInteger(vm, a[1], "bitXor:");
  if (isInt(a[0]) && isInt(a[1])) return fromInt(intOf(a[0]) ^ intOf(a[1]));
  IntView x(a[0]), y(a[1]);
  Mpz r;
  mpz_xor(r.z, x.z, y.z);
  return fromMpz(vm, r.z, false);
}
PRIM(intOr) {
  needInteger(vm, a[1], "bitOr:");
  if (isInt(a[0]) && isInt(a[1])) return a[0] | a[1];
  IntView x(a[0]), y(a[1]);
  Mpz r;
  mpz_ior(r.z, x.z, y.z);
  return fromMpz(vm, r.z, false);
}
PRIM(intShl) {
  needInteger(vm, a[1], "<<");
  int64_t n = needSmall(vm, a[1], "<<");
  IntView x(a[0]);
  Mpz r;
  if (n >= 0) {
    if (n > (int64_t(1) << 24)) vm.fatal("<< shift count too large");
    if (isInt(a[0]) && n < 62) {
      int64_t v = intOf(a[0]), out;
      if (!__builtin_mul_overflow(v, int64_t(1) << n, &out)) return makeInt64(vm, out);
    }
    mpz_mul_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(n));
  } else {
    mpz_fdiv_q_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(-n));
  }
  return fromMpz(vm, r.z, false);
}
PRIM(intShrLogical) {
  int64_t n = needSmall(vm, a[1], ">>>");
  if (n < 0) vm.fatal(">>> with a negative shift count");
  // Logical shift of the 64-bit two's-complement value; receivers beyond 64 bits (unspecified)
  // shift arithmetically.
  bool fits64 = isInt(a[0]);
  int64_t v = isInt(a[0]) ? intOf(a[0]) : 0;
  if (!fits64) {
    IntView x(a[0]);
    if (mpz_fits_slong_p(x.z)) {
      fits64 = true;
      v = mpz_get_si(x.z);
    }
  }
  if (fits64) {
    uint64_t r = n >= 64 ? 0 : static_cast<uint64_t>(v) >> n;
    if (r <= static_cast<uint64_t>(kSmallMax)) return fromInt(static_cast<int64_t>(r));
    Mpz t;
    mpz_set_ui(t.z, r);
    return fromMpz(vm, t.z, false);
  }
  IntView x(a[0]);
  Mpz r;
  mpz_fdiv_q_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(n));
  return fromMpz(vm, r.z, false);
}
PRIM(intShr) {
  int64_t n = needSmall(vm, a[1], ">>");
  IntView x(a[0]);
  Mpz r;
  if (n >= 0)
    mpz_fdiv_q_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(n));
  else
    mpz_mul_2exp(r.z, x.z, static_cast<mp_bitcnt_t>(-n));
  return fromMpz(vm, r.z, false);
}
PRIM(intSqrt) {
  if (isInt(a[0])) {
    int64_t v = intOf(a[0]);
    if (v < 0) return vm.newDouble(std::sqrt(static_cast<double>(v)));
    int64_t s = static_cast<int64_t>(std::sqrt(static_cast<double>(v)));
    while (s > 0 && s * s > v) s--;
    while ((s + 1) * (s + 1) <= v) s++;
    if (s * s == v) return fromInt(s);
    return vm.newDouble(std::sqrt(static_cast<double>(v)));
  }
  IntView x(a[0]);
  if (mpz_sgn(x.z) > 0 && mpz_perfect_square_p(x.z)) {
    Mpz r;
    mpz_sqrt(r.z, x.z);
    return fromMpz(vm, r.z, false);
  }
  return vm.newDouble(std::sqrt(toDouble(a[0])));
}
uint64_t gRandom = 0x2545F4914F6CDD1DULL;
PRIM(intAtRandom) {
  gRandom ^= gRandom << 13;
  gRandom ^= gRandom >> 7;
  gRandom ^= gRandom << 17;
  if (!isInt(a[0]) || intOf(a[0]) <= 0) return fromInt(0);
  return fromInt(static_cast<int64_t>(gRandom % static_cast<uint64_t>(intOf(a[0]))));
}
PRIM(intEq) {
  if (!isNumber(a[1])) return vm.falseV;
  bool ok;
  return boolV(vm, numCompare(a[0], a[1], &ok) == 0);
}
PRIM(intLt) {
  bool ok;
  int c = numCompare(a[0], a[1], &ok);
  if (!ok) vm.fatal("argument of < is not a number: " + vm.describe(a[1]));
  return boolV(vm, c == -1);
}
PRIM(intAsString) { return vm.newString(integerToString(a[0])); }
PRIM(intAsDouble) { return vm.newDouble(toDouble(a[0])); }
uint64_t low64(Value v) {
  if (isInt(v)) return static_cast<uint64_t>(intOf(v));
  IntView x(v);
  Mpz r;
  mpz_fdiv_r_2exp(r.z, x.z, 64);
  return mpz_size(r.z) ? mpz_getlimbn(r.z, 0) : 0;
}
PRIM(intAs32Signed) { return fromInt(static_cast<int32_t>(static_cast<uint32_t>(low64(a[0])))); }
PRIM(intAs32Unsigned) { return fromInt(static_cast<uint32_t>(low64(a[0]))); }
PRIM(intFromString) {
  needString(vm, a[1], "Integer fromString:");
  std::string s(vm.stringOf(a[1]));
  if (s.empty()) return vm.nilV;
  return vm.bigFromDecimal(s, false);
}

// ---- Double --------------------------------------------------------------------------------
double needNum(VM& vm, Value v, const char* op) {
  if (!isNumber(v))
    vm.fatal(std::string("argument of Double>>") + op + " is not a number: " + vm.describe(v));
  return toDouble(v);
}
PRIM(dblAdd) { return vm.newDouble(obj(a[0])->dbl() + needNum(vm, a[1], "+")); }
PRIM(dblSub) { return vm.newDouble(obj(a[0])->dbl() - needNum(vm, a[1], "-")); }
PRIM(dblMul) { return vm.newDouble(obj(a[0])->dbl() * needNum(vm, a[1], "*")); }
PRIM(dblDiv) { return vm.newDouble(obj(a[0])->dbl() / needNum(vm, a[1], "//")); }
PRIM(dblMod) { return vm.newDouble(std::fmod(obj(a[0])->dbl(), needNum(vm, a[1], "%"))); }
PRIM(dblSqrt) { return vm.newDouble(std::sqrt(obj(a[0])->dbl())); }
PRIM(dblSin) { return vm.newDouble(std::sin(obj(a[0])->dbl())); }
PRIM(dblCos) { return vm.newDouble(std::cos(obj(a[0])->dbl())); }
PRIM(dblRound) { return integerFromDouble(vm, std::round(obj(a[0])->dbl()), "round"); }
PRIM(dblAsInteger) { return integerFromDouble(vm, std::trunc(obj(a[0])->dbl()), "asInteger"); }
PRIM(dblEq) {
  if (!isNumber(a[1])) return vm.falseV;
  return boolV(vm, obj(a[0])->dbl() == toDouble(a[1]));
}
PRIM(dblLt) { return boolV(vm, obj(a[0])->dbl() < needNum(vm, a[1], "<")); }
PRIM(dblAsString) { return vm.newString(doubleToString(obj(a[0])->dbl())); }
PRIM(dblInfinity) { return vm.newDouble(HUGE_VAL); }
PRIM(dblFromString) {
  needString(vm, a[1], "Double fromString:");
  std::string s(vm.stringOf(a[1]));
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) d = std::nan("");
  return vm.newDouble(d);
}

// ---- String / Symbol -------------------------------------------------------------------------
uint32_t contentHash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h;
}
PRIM(strConcat) {
  needString(vm, a[1], "concatenate:");
  std::string r(vm.stringOf(a[0]));
  r += vm.stringOf(a[1]);
  return vm.newString(r);
}
PRIM(symConcat) {
  needString(vm, a[1], "concatenate:");
  std::string r(vm.stringOf(a[0]));
  r += vm.stringOf(a[1]);
  return val(vm.intern(r));
}
PRIM(strAsSymbol) { return val(vm.intern(vm.stringOf(a[0]))); }
PRIM(strHash) { return fromInt(contentHash(vm.stringOf(a[0]))); }
PRIM(strLength) { return fromInt(static_cast<int64_t>(vm.stringOf(a[0]).size())); }
template <int (*Pred)(int)>
Value strAll(VM& vm, Value* a) {
  std::string_view s = vm.stringOf(a[0]);
  if (s.empty()) return vm.falseV;
  for (char c : s)
    if (!Pred(static_cast<unsigned char>(c))) return vm.falseV;
  return vm.trueV;
}
PRIM(strEq) {
  if (isInt(a[1]) || !vm.isString(a[1])) return vm.falseV;
  return boolV(vm, vm.stringOf(a[0]) == vm.stringOf(a[1]));
}
PRIM(strSubstring) {
  std::string_view s = vm.stringOf(a[0]);
  int64_t from = needSmall(vm, a[1], "primSubstringFrom:to:");
  int64_t to = needSmall(vm, a[2], "primSubstringFrom:to:");
  if (to < from) return vm.newString("");
  if (from < 1 || to > static_cast<int64_t>(s.size()))
    vm.fatal("primSubstringFrom: " + std::to_string(from) + " to: " + std::to_string(to) +
             " out of range for a string of length " + std::to_string(s.size()));
  return vm.newString(s.substr(static_cast<size_t>(from - 1), static_cast<size_t>(to - from + 1)));
}
PRIM(symAsString) { return vm.newString(vm.stringOf(a[0])); }
PRIM(strCharAt) {
  std::string_view s = vm.stringOf(a[0]);
  int64_t i = needSmall(vm, a[1], "charAt:");
  if (i < 1 || i > static_cast<int64_t>(s.size()))
    vm.fatal("charAt: index " + std::to_string(i) + " out of bounds");
  return vm.newString(s.substr(static_cast<size_t>(i - 1), 1));
}

// ---- Method / Primitive ----------------------------------------------------------------------
Method* asMethod(VM& vm, Value v) {
  if (isInt(v) || obj(v)->kind != kMethod) vm.fatal("expected a method, got " + vm.describe(v));
  return static_cast<Method*>(obj(v));
}
PRIM(mthSignature) { return val(asMethod(vm, a[0])->signature); }
PRIM(mthHolder) {
  Method* m = asMethod(vm, a[0]);
  return m->holder ? val(m->holder) : vm.nilV;
}

// ---- System --------------------------------------------------------------------------------
Symbol* asSymbol(VM& vm, Value v, const char* op) {
  if (isInt(v) || obj(v)->kind != kSymbol)
    vm.fatal(std::string(op) + " needs a Symbol, got " + vm.describe(v));
  return static_cast<Symbol*>(obj(v));
}
PRIM(sysGlobal) {
  Symbol* s = asSymbol(vm, a[1], "global:");
  return s->hasGlobal ? s->global : vm.nilV;
}
PRIM(sysHasGlobal) { return boolV(vm, asSymbol(vm, a[1], "hasGlobal:")->hasGlobal); }
PRIM(sysGlobalPut) {
  Symbol* s = asSymbol(vm, a[1], "global:put:");
  s->global = a[2];
  s->hasGlobal = true;
  return a[2];
}
PRIM(sysLoadFile) {
  needString(vm, a[1], "loadFile:");
  std::ifstream in(std::string(vm.stringOf(a[1])), std::ios::binary);
  if (!in) return vm.nilV;
  std::ostringstream ss;
  ss << in.rdbuf();
  return vm.newString(ss.str());
}
PRIM(sysLoad) {
  Symbol* s = asSymbol(vm, a[1], "load:");
  Class* c = vm.loadClass(s);
  return c ? val(c) : vm.nilV;
}
PRIM(sysExit) {
  int64_t code = needSmall(vm, a[1], "exit:");
  vm.exitVM(static_cast<int>(code));
}
PRIM(sysPrintString) {
  needString(vm, a[1], "printString:");
  std::string_view s = vm.stringOf(a[1]);
  std::fwrite(s.data(), 1, s.size(), stdout);
  return a[0];
}
PRIM(sysPrintNewline) {
  std::fputc('\n', stdout);
  return a[0];
}
PRIM(sysErrorPrint) {
  needString(vm, a[1], "errorPrint:");
  std::string_view s = vm.stringOf(a[1]);
  std::fflush(stdout);
  std::fwrite(s.data(), 1, s.size(), stderr);
  return a[0];
}
PRIM(sysErrorPrintln) {
  needString(vm, a[1], "errorPrintln:");
  std::string_view s = vm.stringOf(a[1]);
  std::fflush(stdout);
  std::fwrite(s.data(), 1, s.size(), stderr);
  std::fputc('\n', stderr);
  return a[0];
}
PRIM(sysPrintStackTrace) {
  std::fflush(stdout);
  vm.printStackTrace(stderr);
  return a[0];
}
PRIM(sysTime) { return fromInt(static_cast<int64_t>((nowMicros() - vm.startMicros) / 1000)); }
PRIM(sysTicks) { return fromInt(static_cast<int64_t>(nowMicros() - vm.startMicros + 1)); }
PRIM(sysFullGC) {
  vm.collectGarbage();
  return vm.trueV;
}

#undef PRIM

}  // namespace

void VM::registerPrimitives() {
  auto reg = [&](const char* key, PrimFn fn) { primitives[key] = PrimEntry{fn, SpecialPrim::kNone}; };
  auto special = [&](const char* key, SpecialPrim which) { primitives[key] = PrimEntry{nullptr, which}; };
  reg("Object>>class", objClass);
  reg("Object>>objectSize", objSize);
  reg("Object>>==", objIdentical);
  reg("Object>>hashcode", objHash);
  reg("Object>>identityHash", objHash);
  reg("Object>>inspect", objSelf);
  reg("Object>>halt", objSelf);
  special("Object>>perform:", SpecialPrim::kPerform);
  special("Object>>perform:withArguments:", SpecialPrim::kPerformArgs);
  special("Object>>perform:inSuperclass:", SpecialPrim::kPerformSuper);
  special("Object>>perform:withArguments:inSuperclass:", SpecialPrim::kPerformArgsSuper);
  reg("Object>>instVarAt:", objInstVarAt);
  reg("Object>>instVarAt:put:", objInstVarAtPut);
  reg("Object>>instVarNamed:", objInstVarNamed);
  reg("Object>>instVarNamed:put:", objInstVarNamedPut);

  reg("Class>>name", clsName);
  reg("Class>>superclass", clsSuperclass);
  reg("Class>>new", clsNew);
  reg("Class>>fields", clsFields);
  reg("Class>>methods", clsMethods);

  primitives["Array>>at:"] = PrimEntry{arrAt, SpecialPrim::kArrayAt};
  primitives["Array>>at:put:"] = PrimEntry{arrAtPut, SpecialPrim::kArrayAtPut};
  primitives["Array>>length"] = PrimEntry{arrLength, SpecialPrim::kArrayLength};
  reg("Array class>>new:", arrNew);

  special("Block>>value", SpecialPrim::kValue);
  special("Block1>>value", SpecialPrim::kValue);
  special("Block>>value:", SpecialPrim::kValue);
  special("Block2>>value:", SpecialPrim::kValue);
  special("Block>>value:with:", SpecialPrim::kValue);
  special("Block3>>value:with:", SpecialPrim::kValue);
  special("Block>>restart", SpecialPrim::kRestart);

  reg("Integer>>+", intAdd);
  reg("Integer>>-", intSub);
  reg("Integer>>*", intMul);
  reg("Integer>>/", intDiv);
  reg("Integer>>%", intMod);
  reg("Integer>>rem:", intRem);
  reg("Integer>>//", intFloatDiv);
  reg("Integer>>&", intAnd);
  reg("Integer>>bitXor:", intXor);
  reg("Integer>>bitOr:", intOr);
  reg("Integer>><<", intShl);
  reg("Integer>>>>>", intShrLogical);
  reg("Integer>>>>", intShr);
  reg("Integer>>sqrt", intSqrt);
  reg("Integer>>atRandom", intAtRandom);
  reg("Integer>>=", intEq);
  reg("Integer>><", intLt);
  reg("Integer>>asString", intAsString);
  reg("Integer>>asDouble", intAsDouble);
  reg("Integer>>as32BitSignedValue", intAs32Signed);
  reg("Integer>>as32BitUnsignedValue", intAs32Unsigned);
  reg("Integer class>>fromString:", intFromString);

  reg("Double>>+", dblAdd);
  reg("Double>>-", dblSub);
  reg("Double>>*", dblMul);
  reg("Double>>//", dblDiv);
  reg("Double>>%", dblMod);
  reg("Double>>sqrt", dblSqrt);
  reg("Double>>sin", dblSin);
  reg("Double>>cos", dblCos);
  reg("Double>>round", dblRound);
  reg("Double>>asInteger", dblAsInteger);
  reg("Double>>=", dblEq);
  reg("Double>><", dblLt);
  reg("Double>>asString", dblAsString);
  reg("Double class>>PositiveInfinity", dblInfinity);
  reg("Double class>>fromString:", dblFromString);

  reg("String>>concatenate:", strConcat);
  reg("Symbol>>concatenate:", symConcat);
  reg("String>>asSymbol", strAsSymbol);
  reg("Symbol>>asSymbol", strAsSymbol);
  reg("String>>hashcode", strHash);
  reg("Symbol>>hashcode", strHash);
  reg("String>>length", strLength);
  reg("Symbol>>length", strLength);
  reg("String>>isWhiteSpace", strAll<std::isspace>);
  reg("String>>isLetters", strAll<std::isalpha>);
  reg("String>>isDigits", strAll<std::isdigit>);
  reg("String>>=", strEq);
  reg("Symbol>>=", strEq);
  reg("String>>primSubstringFrom:to:", strSubstring);
  reg("String>>charAt:", strCharAt);
  reg("Symbol>>asString", symAsString);

  for (const char* holder : {"Method", "Primitive"}) {
    std::string h(holder);
    reg((h + ">>signature").c_str(), mthSignature);
    reg((h + ">>holder").c_str(), mthHolder);
    special((h + ">>invokeOn:with:").c_str(), SpecialPrim::kInvoke);
  }

  reg("System>>global:", sysGlobal);
  reg("System>>hasGlobal:", sysHasGlobal);
  reg("System>>global:put:", sysGlobalPut);
  reg("System>>loadFile:", sysLoadFile);
  reg("System>>load:", sysLoad);
  reg("System>>exit:", sysExit);
  reg("System>>printString:", sysPrintString);
  reg("System>>printNewline", sysPrintNewline);
  reg("System>>errorPrint:", sysErrorPrint);
  reg("System>>errorPrintln:", sysErrorPrintln);
  reg("System>>printStackTrace", sysPrintStackTrace);
  reg("System>>time", sysTime);
  reg("System>>ticks", sysTicks);
  reg("System>>fullGC", sysFullGC);
}

}  // namespace som
