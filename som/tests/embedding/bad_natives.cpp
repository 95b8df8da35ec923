// Native libraries that bind wrongly, one mistake each (SOM_BAD_BINDING selects it), for the
// tests of binding errors: each must be refused with a clear message and bind nothing.
#include "jitkit/som/native.h"

namespace js = jitkit::som;

namespace {
js::Value answer_nil(js::Vm& vm, const js::Value*) noexcept { return vm.nil(); }
}  // namespace

#ifndef SOM_NO_REGISTRATION
extern "C" void jitkit_som_register_natives(js::NativeRegistry& natives) {
  // A correct binding first: a refused library must not leave it bound.
  natives.bind("NativeTest class>>notBound", 0, answer_nil);
#if SOM_BAD_BINDING == 1
  natives.bind("NoSuchClass class>>foo", 0, answer_nil);
#elif SOM_BAD_BINDING == 2
  natives.bind("NativeTest class>>noSuchMethod", 0, answer_nil);
#elif SOM_BAD_BINDING == 3
  natives.bind("Sandwich>>answerTwice", 0, answer_nil);  // a SOM method, not `primitive`
#elif SOM_BAD_BINDING == 4
  natives.bind("Integer>>+", 1, answer_nil);  // a primitive the VM implements itself
#elif SOM_BAD_BINDING == 5
  natives.bind("NativeTest class>>fail:", 2, answer_nil);  // fail: takes one argument
#endif
}
#else
// The registration function under another name: the VM must say which symbol it looks for.
extern "C" void register_natives(js::NativeRegistry& natives) { natives.bind("NativeTest class>>notBound", 0, answer_nil); }
#endif
