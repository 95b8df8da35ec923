// som_native_bench: what a native method (jitkit/som/native.h) costs to call, and what a call back
// into SOM from one costs, each against its floor in the same run. VMs are booted through the
// embedding API (jitkit/som/vm.h) exactly as an embedding program would, with the natives of
// bench_natives.cpp and the loops of NativeBench.som.
//
// Every entry does kCalls calls per benchmark iteration (the time column is for kCalls calls) and
// reports ns_per_call, the thread's CPU time over the timed loop / calls (CPU time, because on a
// shared machine wall time also counts other processes), and x_floor, ns_per_call over the median
// ns_per_call of its comparison's floor (function_pointer, function_pointer_api or
// som_to_som_interpreted below), which runs before it.
// Every entry checks its answer, and a wrong one fails it. The default --benchmark_min_time is
// 0.2 s, so that `make bench` (5 repetitions) runs the binary in about 20 s; the flag overrides it.
//
// Comparison 1, a trivial native (add:to:, which adds two small Integers on their tagged words):
//   BM_NativeCall/function_pointer    the floor: a C++ loop calling that very function (taken from
//                                     the library's registry) through a volatile pointer, with
//                                     the native signature and an args array as the VM passes
//   BM_NativeCall/som_jit             a compiled SOM loop (JitMode::kAlways) sending add:to: to
//                                     the native: `sum := self add: sum to: 1`
//   BM_NativeCall/som_interpreter     the same loop interpreted (JitMode::kOff)
//   BM_NativeCall/som_jit_som_method  the compiled loop sending addSom:to: (`^a + b`, a SOM
//                                     method with a frame) instead: the SOM-to-SOM send
//   BM_NativeCall/som_interpreter_som_method  the same, interpreted
//   BM_NativeCall/som_jit_loop_only   the compiled loop with `sum := sum + 1` in place of the
//                                     send: the loop and the addition without any call
//   BM_NativeCall/som_interpreter_loop_only   the same, interpreted
//   BM_NativeCall/function_pointer_api  the floor of apiAdd:to:, the same addition through
//                                     Vm::to_int64 and Vm::integer (x_floor of the next two is
//                                     over this one)
//   BM_NativeCall/som_jit_api         the compiled loop sending apiAdd:to:
//   BM_NativeCall/som_interpreter_api the same, interpreted
// Comparison 2, a callback into `NativeBench>>trivial` (a field increment, with a frame):
//   BM_Callback/som_to_som_interpreted  the floor: an interpreted SOM loop sending #trivial
//   BM_Callback/native_to_som           a native (send:trivialTimes:) looping in C++ over
//                                       Vm::send(receiver, "trivial"), in the interpreted VM
//   BM_Callback/native_to_som_jit       the same native in the JitMode::kAlways VM
//   BM_Callback/som_to_som_jit          the compiled SOM loop sending #trivial, for context
#include "jitkit/som/native.h"
#include "jitkit/som/vm.h"

#include <benchmark/benchmark.h>

#include <dlfcn.h>
#include <time.h>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace js = jitkit::som;

namespace {

// Calls per benchmark iteration: enough that the one host-to-SOM send starting each loop is
// below 1% of the iteration.
constexpr std::int64_t kCalls = 10000;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "som_native_bench: %s\n", what.c_str());
  std::exit(1);
}

struct BenchVm {
  std::unique_ptr<js::Vm> vm;
  js::Handle bench_class;         // NativeBench
  js::Handle callee;              // a NativeBench, the receiver of #trivial
  std::int64_t callee_count = 0;  // what callee's count must be now
};

BenchVm* boot(js::JitMode mode) {
  js::Options options;
  options.class_path = {SOM_CORE_LIB_DIR, SOM_NATIVE_BENCH_DIR};
  options.jit = mode;
  options.natives = {SOM_BENCH_NATIVES_LIB};
  auto vm = js::Vm::create(options);
  if (!vm) die(vm.error().describe());
  auto* b = new BenchVm{std::move(*vm), {}, {}, 0};
  auto cls = b->vm->global("NativeBench");
  if (!cls) die(cls.error().describe());
  b->bench_class = b->vm->hold(*cls);
  auto callee = b->vm->send(b->bench_class.get(), "new");
  if (!callee) die(callee.error().describe());
  b->callee = b->vm->hold(*callee);
  if (auto r = b->vm->send(b->callee.get(), "reset"); !r) die(r.error().describe());
  return b;
}

// The function the VM binds to `method`, from the same library: dlopen answers the VM's handle
// again.
js::NativeFn find_native(const std::string& method) {
  void* lib = dlopen(SOM_BENCH_NATIVES_LIB, RTLD_NOW);
  if (!lib) die(std::string("cannot open ") + SOM_BENCH_NATIVES_LIB + ": " + dlerror());
  auto register_natives = reinterpret_cast<js::RegisterNativesFn>(dlsym(lib, js::kRegisterNativesSymbol));
  if (!register_natives)
    die(std::string("no ") + js::kRegisterNativesSymbol + " in " + SOM_BENCH_NATIVES_LIB);
  js::NativeRegistry registry;
  register_natives(registry);
  for (const auto& b : registry.bindings())
    if (b.method == method) return b.fn;
  die("the bench natives do not bind " + method);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ns_per_call of each comparison's floor, from runs long enough to be a repetition (Google
// Benchmark also calls an entry briefly while it picks the iteration count).
enum Comparison { kNativeCall, kNativeCallApi, kCallback };
std::vector<double> g_floor_ns[3];
constexpr double kRepetitionSeconds = 0.05;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Sets the counters of an entry whose timed loop started at CPU time `t0`.
void report(benchmark::State& state, Comparison c, bool is_floor, double t0) {
  const double seconds = thread_cpu_seconds() - t0;
  const double calls = static_cast<double>(state.iterations()) * static_cast<double>(kCalls);
  const double ns = calls > 0 ? seconds * 1e9 / calls : 0;
  state.counters["ns_per_call"] = ns;
  if (is_floor && seconds >= kRepetitionSeconds) g_floor_ns[c].push_back(ns);
  if (!g_floor_ns[c].empty()) state.counters["x_floor"] = ns / median(g_floor_ns[c]);
}

// Runs `run` (kCalls calls; answers "" or what went wrong) once untimed, which under
// JitMode::kAlways compiles the loop and its callees, then once per benchmark iteration.
template <typename Run>
void time_calls(benchmark::State& state, Comparison c, bool is_floor, Run&& run) {
  if (auto error = run(); !error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  const double t0 = thread_cpu_seconds();
  for (auto _ : state) {
    if (auto error = run(); !error.empty()) {
      state.SkipWithError(error.c_str());
      return;
    }
  }
  report(state, c, is_floor, t0);
}

// `method` (an adding native) called kCalls times from C++ per iteration, as som_loop's loop does.
void native_call_function_pointer(benchmark::State& state, BenchVm* b, Comparison c, const char* method) {
  js::Vm& vm = *b->vm;
  // volatile: the compiler must load the pointer and call through it every time, as it cannot
  // know the callee; it could not inline it anyway (it lives in another shared object).
  js::NativeFn volatile fn = find_native(method);
  js::Value args[3] = {b->bench_class.get(), vm.integer(0), vm.integer(1)};  // no SOM runs here
  const js::Value expected = vm.integer(kCalls);
  const double t0 = thread_cpu_seconds();
  for (auto _ : state) {
    args[1] = vm.integer(0);
    for (std::int64_t i = 0; i < kCalls; i++) {
      args[1] = fn(vm, args);
      benchmark::DoNotOptimize(args);
    }
    if (args[1] != expected) {
      state.SkipWithError("the native through a function pointer did not answer kCalls");
      return;
    }
  }
  report(state, c, true, t0);
}

// One send of `selector` (a loop over kCalls) to NativeBench per iteration; the loop answers kCalls.
void som_loop(benchmark::State& state, BenchVm* b, Comparison c, const char* selector) {
  js::Vm& vm = *b->vm;
  auto run = [&] {
    auto r = vm.send(b->bench_class.get(), selector, {vm.integer(kCalls)});
    if (!r) return "the loop failed: " + r.error().describe();
    auto n = vm.to_int64(*r);
    if (!n || *n != kCalls) return std::string("the loop did not answer kCalls");
    return std::string();
  };
  time_calls(state, c, false, run);
}

// kCalls sends of #trivial to the callee per iteration, by `selector` (the native
// send:trivialTimes: or the SOM somSend:trivialTimes:); each answers the callee's count after
// the last one.
void callback_loop(benchmark::State& state, BenchVm* b, const char* selector, bool is_floor) {
  js::Vm& vm = *b->vm;
  auto run = [&] {
    auto r = vm.send(b->bench_class.get(), selector, {b->callee.get(), vm.integer(kCalls)});
    if (!r) return "the loop failed: " + r.error().describe();
    b->callee_count += kCalls;
    auto n = vm.to_int64(*r);
    if (!n || *n != b->callee_count) return std::string("#trivial was not sent kCalls times");
    return std::string();
  };
  time_calls(state, kCallback, is_floor, run);
}

}  // namespace

int main(int argc, char** argv) {
  BenchVm* jit = boot(js::JitMode::kAlways);
  BenchVm* interp = boot(js::JitMode::kOff);
  // Registration order is run order: each comparison's floor runs first, so that x_floor has it.
  auto add = [](const char* name, auto fn, auto... args) {
    benchmark::RegisterBenchmark(name, fn, args...)->Unit(benchmark::kMicrosecond);
  };
  add("BM_NativeCall/function_pointer", native_call_function_pointer, jit, kNativeCall,
      "NativeBench class>>add:to:");
  add("BM_NativeCall/som_jit", som_loop, jit, kNativeCall, "nativeLoop:");
  add("BM_NativeCall/som_interpreter", som_loop, interp, kNativeCall, "nativeLoop:");
  add("BM_NativeCall/som_jit_som_method", som_loop, jit, kNativeCall, "somLoop:");
  add("BM_NativeCall/som_interpreter_som_method", som_loop, interp, kNativeCall, "somLoop:");
  add("BM_NativeCall/som_jit_loop_only", som_loop, jit, kNativeCall, "loopOnly:");
  add("BM_NativeCall/som_interpreter_loop_only", som_loop, interp, kNativeCall, "loopOnly:");
  add("BM_NativeCall/function_pointer_api", native_call_function_pointer, jit, kNativeCallApi,
      "NativeBench class>>apiAdd:to:");
  add("BM_NativeCall/som_jit_api", som_loop, jit, kNativeCallApi, "apiNativeLoop:");
  add("BM_NativeCall/som_interpreter_api", som_loop, interp, kNativeCallApi, "apiNativeLoop:");
  add("BM_Callback/som_to_som_interpreted", callback_loop, interp, "somSend:trivialTimes:", true);
  add("BM_Callback/native_to_som", callback_loop, interp, "send:trivialTimes:", false);
  add("BM_Callback/native_to_som_jit", callback_loop, jit, "send:trivialTimes:", false);
  add("BM_Callback/som_to_som_jit", callback_loop, jit, "somSend:trivialTimes:", false);
  // The default minimum time per repetition, before the command line's flags (the last wins).
  char min_time[] = "--benchmark_min_time=0.2";
  std::vector<char*> args{argv[0], min_time};
  for (int i = 1; i < argc; i++) args.push_back(argv[i]);
  int args_count = static_cast<int>(args.size());
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::fflush(stdout);
  std::_Exit(0);  // as som_bench: the VMs own mmap'd stacks; no teardown needed
}
