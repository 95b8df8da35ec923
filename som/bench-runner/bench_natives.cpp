// The native methods of som_native_bench (native_bench.cpp, NativeBench.som): add:to: and
// apiAdd:to:, the trivial natives whose call cost the benchmark compares with a plain C++ call of
// the same function, and send:trivialTimes:, which calls back into SOM k times through the public
// API, as an embedding program would.
#include "jitkit/som/native.h"

#include <cstdint>

namespace js = jitkit::som;

namespace {

// NativeBench class>>add:to:, the trivial native: small integers read and made inline
// (jitkit/som/vm.h), so that nearly all it costs is being called. The benchmark also calls this
// very function through a pointer (it takes it from the registry below), so the native and its
// floor run the same code.
js::Value add_to(js::Vm& vm, const js::Value* args) noexcept {
  if (!js::is_small_integer(args[1]) || !js::is_small_integer(args[2]))
    return vm.fail("add:to: needs two small Integers");
  return vm.integer(js::small_integer_value(args[1]) + js::small_integer_value(args[2]));
}

// NativeBench class>>apiAdd:to:, the same addition as an embedding program writes it, through
// Vm::to_int64 and Vm::integer: what the public API adds to a trivial native.
js::Value api_add_to(js::Vm& vm, const js::Value* args) noexcept {
  auto a = vm.to_int64(args[1]);
  auto b = vm.to_int64(args[2]);
  if (!a || !b) return vm.fail("apiAdd:to: needs two Integers");
  return vm.integer(*a + *b);
}

// NativeBench class>>send:trivialTimes:. args[1] is re-read after every send: the collector may
// move the receiver while SOM runs, and it updates args (native.h).
js::Value send_trivial_times(js::Vm& vm, const js::Value* args) noexcept {
  auto k = vm.to_int64(args[2]);
  if (!k) return vm.fail("send:trivialTimes: needs an Integer count");
  auto trivial = vm.selector("trivial");  // interned once, outside the loop
  if (!trivial) return js::Value();
  js::Value last = vm.nil();
  for (std::int64_t i = 0; i < *k; i++) {
    auto r = vm.send(args[1], *trivial);
    if (!r) return js::Value();  // kUnwinding: the VM goes on unwinding
    last = *r;
  }
  return last;
}

}  // namespace

extern "C" void jitkit_som_register_natives(js::NativeRegistry& natives) {
  natives.bind("NativeBench class>>add:to:", 2, add_to);
  natives.bind("NativeBench class>>apiAdd:to:", 2, api_add_to);
  natives.bind("NativeBench class>>send:trivialTimes:", 2, send_trivial_times);
}
