// The native methods of the embedding tests (NativeTest.som): trivial ones, and ones that call
// back into SOM, fail, or hold values in handles. Each callback counts how its send ended, so
// that tests can check that every native on the way saw an unwinding send, and every native
// keeps a C++ object whose destructor counts, so that tests can check natives return normally.
#include "jitkit/som/native.h"

#include <cstdint>

namespace js = jitkit::som;

namespace {

int64_t g_unwinding_seen = 0;
int64_t g_destructors_run = 0;
int64_t g_depth = 0;
int64_t g_deepest = 0;

// Lives on a native's frame: counts its destructor and the nesting of natives.
struct FrameWitness {
  FrameWitness() {
    if (++g_depth > g_deepest) g_deepest = g_depth;
  }
  ~FrameWitness() {
    g_depth--;
    g_destructors_run++;
  }
};

js::Value add_to(js::Vm& vm, const js::Value* args) noexcept {
  auto a = vm.to_int64(args[1]);
  auto b = vm.to_int64(args[2]);
  if (!a || !b) return vm.fail("add:to: needs two Integers");
  return vm.integer(*a + *b);
}

// The answer of a callback, or (when it failed) an empty Value, counting unwinding failures.
js::Value finish(js::Result<js::Value> r) {
  if (r) return *r;
  if (r.error().kind() == js::ErrorKind::kUnwinding) g_unwinding_seen++;
  return js::Value();  // ignored: the VM is unwinding
}

js::Value call(js::Vm& vm, const js::Value* args) noexcept {
  FrameWitness witness;
  return finish(vm.send(args[1], "value"));
}

js::Value call_with(js::Vm& vm, const js::Value* args) noexcept {
  FrameWitness witness;
  return finish(vm.send(args[1], "value:", {args[2]}));
}

js::Value fail(js::Vm& vm, const js::Value* args) noexcept {
  auto text = vm.to_string(args[1]);
  return vm.fail(text ? *text : "fail: needs a String");
}

js::Value hold_across_collection(js::Vm& vm, const js::Value* args) noexcept {
  js::Handle held = vm.hold(args[1]);
  auto system = vm.global("system");
  if (!system) return finish(std::move(system));
  auto collected = vm.send(*system, "fullGC");
  if (!collected) return finish(std::move(collected));
  return held.get();  // where the collector moved it
}

js::Value run_main(js::Vm& vm, const js::Value* args) noexcept {
  FrameWitness witness;
  auto name = vm.to_string(args[1]);
  if (!name) return vm.fail("runMain: needs a String");
  auto st = vm.run_main({*name});
  if (!st && st.error().kind() == js::ErrorKind::kUnwinding) g_unwinding_seen++;
  return args[0];
}

js::Value unwinding_seen(js::Vm& vm, const js::Value*) noexcept { return vm.integer(g_unwinding_seen); }
js::Value destructors_run(js::Vm& vm, const js::Value*) noexcept { return vm.integer(g_destructors_run); }
js::Value deepest(js::Vm& vm, const js::Value*) noexcept { return vm.integer(g_deepest); }
js::Value reset(js::Vm& vm, const js::Value* args) noexcept {
  g_unwinding_seen = g_destructors_run = g_deepest = 0;
  (void)vm;
  return args[0];
}

}  // namespace

extern "C" void jitkit_som_register_natives(js::NativeRegistry& natives) {
  natives.bind("NativeTest class>>add:to:", 2, add_to);
  natives.bind("NativeTest class>>call:", 1, call);
  natives.bind("NativeTest class>>call:with:", 2, call_with);
  natives.bind("NativeTest class>>fail:", 1, fail);
  natives.bind("NativeTest class>>holdAcrossCollection:", 1, hold_across_collection);
  natives.bind("NativeTest class>>runMain:", 1, run_main);
  natives.bind("NativeTest class>>unwindingSeen", 0, unwinding_seen);
  natives.bind("NativeTest class>>destructorsRun", 0, destructors_run);
  natives.bind("NativeTest class>>deepest", 0, deepest);
  natives.bind("NativeTest class>>reset", 0, reset);
}
