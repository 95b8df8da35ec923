// som_bench: boots the SOM VM in-process and registers, for every benchmark class of som/bench
// (each a subclass of Benchmark):
//   BM_Som/<Name>       the VM as shipped (inlined control structures, arithmetic fast paths,
//                       frame-less accessors, two-entry inline caches)
//   BM_SomNoOpt/<Name>  the same VM with those optimizations switched off (VM::optimize_ =
//                       false): every control structure is a real send, every send a global
//                       lookup-cache probe. It is our own reference point, not SOM++.
//   BM_SomJit/<Name>    the baseline JIT (docs/som-jit.md) at its default settings, in a VM of
//                       its own per benchmark, so that its counters are that benchmark's:
//                       first_iter_ms (the first iteration ever, with tier-up and compilation),
//                       compile_ms and compile_share (compile time / first iteration),
//                       register_ms and register_share (naming the code for gdb and perf),
//                       pause_ms and pause_share (the time the interpreter's thread spent on
//                       compiling: here all of compile_ms and register_ms),
//                       methods, us_per_method, bytecode_bytes_per_us, code_bytes_per_bytecode.
//   BM_SomJitBackground/<Name>  the same with background compilation (Jit::start_compile_thread,
//                       `som --jit-background=on`): hot methods compile on the JIT's thread
//                       while the interpreter goes on. Same counters; pause_ms is then only
//                       submitting requests and publishing code, compile_ms the compile
//                       thread's time, and first_iter_ms shows what the wait for code costs.
//   BM_SomJitCompile/<Name>  warm compile speed: in BM_SomJit's VM once its benchmark ran,
//                       each iteration discards and recompiles every method the JIT compiled
//                       (som::Jit::discard, then som::Jit::compile: emit, install, attaching the
//                       send sites, naming the code for gdb/perf). Only the compile calls are
//                       timed; counters: methods, us_per_method, bytecode_bytes_per_us,
//                       code_bytes_per_us, register_share (the naming's part of compile time).
// One benchmark iteration is one `benchmark` send followed by `verifyResult:` on its answer;
// a wrong answer fails the entry.
#include "jit/jit_p.h"
#include "vm_p.h"

#include <benchmark/benchmark.h>

#include <dirent.h>
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

struct SomBenchmarks {
  som::VM vm;
  std::vector<std::string> names;
  std::vector<size_t> root_index;  // instance of each benchmark class in vm.extra_roots_
  som::Symbol* benchmark = nullptr;  // #benchmark, #verifyResult:
  som::Symbol* verify = nullptr;
  // BM_SomJit: what the first iteration ever cost, and what the JIT did during it.
  bool first_done = false;
  double first_iter_ms = 0;
  som::JitStats first_stats;
};

std::vector<std::string> list_benchmarks(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string f = e->d_name;
      if (f.size() <= 4 || f.compare(f.size() - 4, 4, ".som") != 0) continue;
      std::string n = f.substr(0, f.size() - 4);
      if (n == "Benchmark" || n == "BenchmarkHarness") continue;
      out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool run_iteration(SomBenchmarks* sb, size_t i) {
  som::VM& vm = sb->vm;
  som::Value result = vm.send(vm.extra_roots_[sb->root_index[i]], sb->benchmark);
  // `result` is pushed onto the frame stack by send() before anything can allocate.
  som::Value ok = vm.send(vm.extra_roots_[sb->root_index[i]], sb->verify, {result});
  return ok == vm.true_value_;
}

void run_one(benchmark::State& state, SomBenchmarks* sb, size_t i) {
  if (sb->vm.jit_ && !sb->first_done) {
    // The cold start, once per VM: interpretation, tier-up and compilation included.
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = run_iteration(sb, i);
    sb->first_iter_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    sb->first_stats = sb->vm.jit_->stats();
    sb->first_done = true;
    if (!ok) {
      state.SkipWithError(("verifyResult: failed for " + sb->names[i]).c_str());
      return;
    }
  }
  for (auto _ : state) {
    if (!run_iteration(sb, i)) {
      state.SkipWithError(("verifyResult: failed for " + sb->names[i]).c_str());
      break;
    }
  }
  if (sb->vm.jit_) {
    const som::JitStats& s = sb->first_stats;
    const double compile_ms = static_cast<double>(s.compile_nanos) / 1e6;
    const double methods = static_cast<double>(s.methods_compiled);
    const double bytes = static_cast<double>(s.bytecode_bytes);
    state.counters["first_iter_ms"] = sb->first_iter_ms;
    state.counters["compile_ms"] = compile_ms;
    state.counters["compile_share"] = sb->first_iter_ms > 0 ? compile_ms / sb->first_iter_ms : 0;
    const double register_ms = static_cast<double>(s.register_nanos) / 1e6;
    state.counters["register_ms"] = register_ms;
    state.counters["register_share"] = sb->first_iter_ms > 0 ? register_ms / sb->first_iter_ms : 0;
    const double pause_ms = static_cast<double>(s.foreground_nanos) / 1e6;
    state.counters["pause_ms"] = pause_ms;
    state.counters["pause_share"] = sb->first_iter_ms > 0 ? pause_ms / sb->first_iter_ms : 0;
    state.counters["methods"] = methods;
    state.counters["us_per_method"] = methods > 0 ? compile_ms * 1000 / methods : 0;
    state.counters["bytecode_bytes_per_us"] = compile_ms > 0 ? bytes / (compile_ms * 1000) : 0;
    state.counters["code_bytes_per_bytecode"] = bytes > 0 ? static_cast<double>(s.code_bytes) / bytes : 0;
  }
}

// Every method and block of the VM's classes and entry trampolines that has compiled code, in
// class-table order (deterministic for one VM).
void collect_compiled(som::Method* m, std::unordered_set<som::Method*>& seen,
                      std::vector<som::Method*>& out) {
  if (!m || !seen.insert(m).second) return;
  if (m->jit_entry) out.push_back(m);
  for (som::Method* b : m->blocks) collect_compiled(b, seen, out);
}

std::vector<som::Method*> compiled_methods(som::VM& vm) {
  std::unordered_set<som::Method*> seen;
  std::vector<som::Method*> out;
  for (som::Class* c : vm.class_table_)
    for (som::Method* m : c->methods) collect_compiled(m, seen, out);
  for (auto& [key, m] : vm.entry_methods_) collect_compiled(m, seen, out);
  return out;
}

void compile_all(benchmark::State& state, SomBenchmarks* sb, size_t i) {
  if (!sb->first_done) {
    sb->first_done = true;
    if (!run_iteration(sb, i)) {
      state.SkipWithError(("verifyResult: failed for " + sb->names[i]).c_str());
      return;
    }
  }
  som::Jit& jit = *sb->vm.jit_;
  const std::vector<som::Method*> methods = compiled_methods(sb->vm);
  if (methods.empty()) {
    state.SkipWithError(("no compiled methods after one run of " + sb->names[i]).c_str());
    return;
  }
  uint64_t bytecode_bytes = 0;
  for (som::Method* m : methods) bytecode_bytes += m->code.size();
  const som::JitStats before = jit.stats();
  double total_ns = 0;
  for (auto _ : state) {
    double ns = 0;
    for (som::Method* m : methods) {
      jit.discard(m);
      const auto t0 = std::chrono::steady_clock::now();
      const bool ok = jit.compile(m);
      ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      if (!ok) {
        state.SkipWithError(("recompiling a method of " + sb->names[i] + " failed").c_str());
        return;
      }
    }
    total_ns += ns;
    state.SetIterationTime(ns / 1e9);
  }
  const som::JitStats& after = jit.stats();
  const double compiled = static_cast<double>(after.methods_compiled - before.methods_compiled);
  const double us = total_ns / 1000;
  const double code_bytes = static_cast<double>(after.code_bytes - before.code_bytes);
  const double register_us = static_cast<double>(after.register_nanos - before.register_nanos) / 1000;
  state.counters["methods"] = static_cast<double>(methods.size());
  state.counters["us_per_method"] = compiled > 0 ? us / compiled : 0;
  state.counters["bytecode_bytes_per_us"] =
      us > 0 ? static_cast<double>(bytecode_bytes) * static_cast<double>(state.iterations()) / us : 0;
  state.counters["code_bytes_per_us"] = us > 0 ? code_bytes / us : 0;
  state.counters["register_share"] = us > 0 ? register_us / us : 0;
}

enum class JitSetting { kOff, kForeground, kBackground };

SomBenchmarks* boot(bool optimize, JitSetting jit) {
  auto* sb = new SomBenchmarks();
  sb->vm.optimize_ = optimize;
  sb->vm.set_class_path(std::string(SOM_CORE_LIB_DIR) + ":" + SOM_BENCH_DIR);
  if (!sb->vm.bootstrap()) std::exit(1);
  sb->benchmark = sb->vm.intern("benchmark");
  sb->verify = sb->vm.intern("verifyResult:");
  if (jit != JitSetting::kOff) {
    sb->vm.jit_ = std::make_unique<som::Jit>(sb->vm);
    sb->vm.jit_threshold_ = som::kDefaultJitThreshold;
    if (jit == JitSetting::kBackground) sb->vm.jit_->start_compile_thread();
  }
  som::Symbol* new_sel = sb->vm.intern("new");
  for (const std::string& n : list_benchmarks(SOM_BENCH_DIR)) {
    som::Class* c = sb->vm.load_class(sb->vm.intern(n));
    if (!c) {
      std::fprintf(stderr, "som_bench: cannot load benchmark class %s\n", n.c_str());
      std::exit(1);
    }
    sb->vm.extra_roots_.push_back(sb->vm.send(som::val(c), new_sel));
    sb->root_index.push_back(sb->vm.extra_roots_.size() - 1);
    sb->names.push_back(n);
  }
  return sb;
}

}  // namespace

int main(int argc, char** argv) {
  SomBenchmarks* opt = boot(true, JitSetting::kOff);
  SomBenchmarks* no_opt = boot(false, JitSetting::kOff);
  // BM_SomJit/<Name> and BM_SomJitCompile/<Name> share a VM: BM_SomJit runs first, so its
  // counters are still of the first iteration.
  std::vector<SomBenchmarks*> jit_vms, background_vms;
  for (size_t i = 0; i < opt->names.size(); i++) {
    jit_vms.push_back(boot(true, JitSetting::kForeground));
    background_vms.push_back(boot(true, JitSetting::kBackground));
    benchmark::RegisterBenchmark(("BM_Som/" + opt->names[i]).c_str(), run_one, opt, i)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_SomJit/" + opt->names[i]).c_str(), run_one, jit_vms[i], i)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_SomJitBackground/" + opt->names[i]).c_str(), run_one, background_vms[i], i)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_SomNoOpt/" + no_opt->names[i]).c_str(), run_one, no_opt, i)
        ->Unit(benchmark::kMillisecond);
  }
  for (size_t i = 0; i < opt->names.size(); i++) {
    benchmark::RegisterBenchmark(("BM_SomJitCompile/" + opt->names[i]).c_str(), compile_all, jit_vms[i], i)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::fflush(stdout);
  std::_Exit(0);  // the VMs own mmap'd stacks and permanent objects; no teardown needed
}
