// Number arithmetic shared by the interpreter's fast paths and the Integer/Double primitives:
// small integers overflow exactly into GMP big integers (stored inline in kBigInt objects),
// and big results that fit shrink back to small integers.
#pragma once

#include "object_p.h"

#include <gmp.h>

#include <string>

namespace som {

class VM;

// A read-only mpz view of an Integer value (small or big), without allocation.
struct IntView {
  mp_limb_t limb;
  mpz_t z;
  explicit IntView(Value v) {
    if (is_int(v)) {
      int64_t i = int_of(v);
      limb = i < 0 ? static_cast<mp_limb_t>(-static_cast<uint64_t>(i)) : static_cast<mp_limb_t>(i);
      mpz_roinit_n(z, &limb, i < 0 ? -1 : (i == 0 ? 0 : 1));
    } else {
      Object* o = obj(v);
      mp_size_t n = static_cast<mp_size_t>(o->length);
      mpz_roinit_n(z, reinterpret_cast<const mp_limb_t*>(o->limbs()), o->aux ? -n : n);
    }
  }
};

bool is_big(Value v);
bool is_double(Value v);
bool is_number(Value v);
double to_double(Value v);  // Integer (small/big) or Double

Value num_add(VM& vm, Value a, Value b);  // a: Integer or Double; b: checked (fatal if not a number)
Value num_sub(VM& vm, Value a, Value b);
Value num_mul(VM& vm, Value a, Value b);
// Three-way numeric comparison; returns false in *ok if b (or a) is not a number.
int num_compare(Value a, Value b, bool* ok);
Value make_int64(VM& vm, int64_t i);
std::string integer_to_string(Value v);
std::string double_to_string(double d);
// to_double, but an Integer beyond the double range is an error (VM::fatal) naming `op`.
double to_finite_double(VM& vm, Value v, const char* op);

}  // namespace som
