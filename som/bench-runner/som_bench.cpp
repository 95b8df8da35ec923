// som_bench: boots the SOM VM in-process and registers, for every benchmark class of som/bench
// (each a subclass of Benchmark):
//   BM_Som/<Name>       the VM as shipped (inlined control structures, arithmetic fast paths,
//                       frame-less accessors, two-entry inline caches)
//   BM_SomNoOpt/<Name>  the same VM with those optimizations switched off (VM::optimize_ =
//                       false): every control structure is a real send, every send a global
//                       lookup-cache probe. It is our own reference point, not SOM++.
// One benchmark iteration is one `benchmark` send followed by `verifyResult:` on its answer;
// a wrong answer fails the entry.
#include "vm_p.h"

#include <benchmark/benchmark.h>

#include <dirent.h>
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace {

struct SomBenchmarks {
  som::VM vm;
  std::vector<std::string> names;
  std::vector<size_t> root_index;  // instance of each benchmark class in vm.extra_roots_
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

void run_one(benchmark::State& state, SomBenchmarks* sb, size_t i) {
  som::VM& vm = sb->vm;
  som::Symbol* bench = vm.intern("benchmark");
  som::Symbol* verify = vm.intern("verifyResult:");
  for (auto _ : state) {
    som::Value result = vm.send(vm.extra_roots_[sb->root_index[i]], bench);
    // `result` is pushed onto the frame stack by send() before anything can allocate.
    som::Value ok = vm.send(vm.extra_roots_[sb->root_index[i]], verify, {result});
    if (ok != vm.true_value_) {
      state.SkipWithError(("verifyResult: failed for " + sb->names[i]).c_str());
      break;
    }
  }
}

SomBenchmarks* boot(bool optimize) {
  auto* sb = new SomBenchmarks();
  sb->vm.optimize_ = optimize;
  sb->vm.set_class_path(std::string(SOM_CORE_LIB_DIR) + ":" + SOM_BENCH_DIR);
  if (!sb->vm.bootstrap()) std::exit(1);
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
  SomBenchmarks* opt = boot(true);
  SomBenchmarks* no_opt = boot(false);
  for (size_t i = 0; i < opt->names.size(); i++) {
    benchmark::RegisterBenchmark(("BM_Som/" + opt->names[i]).c_str(), run_one, opt, i)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_SomNoOpt/" + no_opt->names[i]).c_str(), run_one, no_opt, i)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::fflush(stdout);
  std::_Exit(0);  // the VMs own mmap'd stacks and permanent objects; no teardown needed
}
