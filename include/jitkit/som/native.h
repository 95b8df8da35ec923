// jitkit/som/native.h — native methods: SOM methods implemented by C++ functions in a shared
// library that the VM loads.
//
// In SOM, declare the method `primitive`:
//
//   Sorter = ( ... ) ( "class side"
//     sort: array with: block = primitive
//   )
//
// In the library, export one registration function that binds `Class>>selector` names (class
// side: `Class class>>selector`) to functions:
//
//   #include "jitkit/som/native.h"
//   namespace js = jitkit::som;
//   js::Value sort_with(js::Vm& vm, const js::Value* args) noexcept {
//     // args[0] is the receiver, args[1] the array, args[2] the block ...
//     auto r = vm.send(args[2], "value:with:", {x, y});   // calls back into SOM
//     if (!r) return js::Value();  // kUnwinding: return; the VM goes on unwinding
//     ...
//   }
//   extern "C" void jitkit_som_register_natives(js::NativeRegistry& natives) {
//     natives.bind("Sorter class>>sort:with:", 2, sort_with);
//   }
//
// and load it with `som --native path/lib.so ...`, `system loadNative: 'path/lib.so'` from SOM,
// Options::natives or Vm::load_native.
//
// The ABI. A native gets the Vm and `args`: the receiver, then the arguments, in the VM's frame
// stack. The collector updates that stack, so args[i] stays current across calls back into SOM
// (re-read it after one); any other Value must be held in a Handle. The native answers a
// Value, or calls vm.fail("message") and answers what it returns. Compiled code calls a native
// directly (one call, no trampoline), the interpreter likewise.
//
// Unwinding. A send a native makes answers ErrorKind::kUnwinding when an error or a non-local
// return (`^` in a block) whose target lies below the native's frame passes through it. The
// native then returns (its C++ destructors run, as on any return) and the VM continues to
// unwind; there is no longjmp over a native frame. Until it returns, every further call it
// makes into the VM answers kUnwinding again. A native must not let a C++ exception escape
// (NativeFn is noexcept: std::terminate would end the process).
//
// Binding errors (ErrorKind::kNativeLibrary from Vm::load_native; a SOM runtime error from
// `system loadNative:`): the library or jitkit_som_register_natives is missing, the class is
// unknown, the class has no such method, the method is not `primitive`, it is a primitive this
// VM implements itself, or the arity given to bind differs from the selector's.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jitkit/som/vm.h"

namespace jitkit::som {

// A native method: receiver and arguments in args[0..arity].
using NativeFn = Value (*)(Vm& vm, const Value* args) noexcept;

class NativeRegistry {
 public:
  // Binds `method` ("Class>>selector" or "Class class>>selector"), which takes `arity`
  // arguments, to `fn`. Checked when the registration function returns.
  void bind(std::string_view method, int arity, NativeFn fn) { bindings_.push_back({std::string(method), arity, fn}); }

  struct Binding {
    std::string method;
    int arity;
    NativeFn fn;
  };
  const std::vector<Binding>& bindings() const { return bindings_; }

 private:
  std::vector<Binding> bindings_;
};

// The one symbol a native library exports (with C linkage, so that the VM finds it by name).
using RegisterNativesFn = void (*)(NativeRegistry& natives);
inline constexpr const char* kRegisterNativesSymbol = "jitkit_som_register_natives";

}  // namespace jitkit::som
