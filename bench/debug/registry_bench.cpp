// bench/debug/registry_bench.cpp — the cost of registering generated functions for debuggers.
//
// What is measured: jitkit's own work — building the in-memory ELF object(s) (symbol table,
// strings, one .debug_frame FDE per function, sections), the per-function hash-table entry, and
// linking the object into __jit_debug_descriptor — plus unregistering. No debugger is attached,
// so __jit_debug_register_code() is the empty function gdb would put its breakpoint on: gdb's
// own loading cost is NOT in these numbers. bench/debug/gdb_scaling.sh measures that, with gdb
// attached (batched vs one object per function).
//
//   BM_RegisterFunctions/batched/N                 N functions in ONE batch (one ELF object)
//   BM_RegisterFunctions/one_by_one_merged/N       N batches of one function, Grouping::kMerge
//                                                  (the default: merged into shared objects)
//   BM_RegisterFunctions/one_by_one_own_object/N   N batches of one function, one object each
// Each iteration registers the N functions and then releases them all (front to back).
// Items processed = functions, so items_per_second (and its inverse, time per function) shows
// whether the cost per function stays flat as N grows 1000 -> 100000.
#include <benchmark/benchmark.h>

#include <sys/mman.h>

#include <string>
#include <vector>

#include "jitkit/debug/code_registry.h"

namespace {

using jitkit::debug::CodeRegistry;
using jitkit::debug::FrameInfo;
using jitkit::debug::Registration;
using jitkit::debug::SymbolBatch;

// Address space for the fake functions: reserved, never executed or read by the registry.
std::uint8_t* code_area(std::size_t n) {
  static std::uint8_t* area = nullptr;
  static std::size_t size = 0;
  if (n * 64 > size) {
    size = n * 64;
    area = static_cast<std::uint8_t*>(
        mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  }
  return area;
}

SymbolBatch make_batch(std::uint8_t* base, std::size_t first, std::size_t n) {
  SymbolBatch batch;
  batch.reserve(n);
  for (std::size_t i = first; i < first + n; ++i) {
    // A typical baseline-JIT function: frame-pointer prologue, one exit, 48 bytes in a 64-byte block.
    batch.add_function("som_method_" + std::to_string(i), base + 64 * i, 48,
                       FrameInfo::frame_pointer(1, 4, {47}), 64);
  }
  return batch;
}

void BM_RegisterBatched(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  std::uint8_t* base = code_area(n);
  for (auto _ : state) {
    state.PauseTiming();
    SymbolBatch batch = make_batch(base, 0, n);  // the caller's list of names, not our cost
    state.ResumeTiming();
    auto reg = CodeRegistry::global().add(std::move(batch), jitkit::debug::Grouping::kOwnObject);
    if (!reg) state.SkipWithError(reg.error().message().c_str());
    benchmark::DoNotOptimize(reg);
    reg->reset();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

template <jitkit::debug::Grouping kGrouping>
void BM_RegisterOneByOne(benchmark::State& state) {
  auto n = static_cast<std::size_t>(state.range(0));
  std::uint8_t* base = code_area(n);
  std::vector<SymbolBatch> batches;
  std::vector<Registration> regs;
  regs.reserve(n);
  for (auto _ : state) {
    state.PauseTiming();
    batches.clear();
    for (std::size_t i = 0; i < n; ++i) batches.push_back(make_batch(base, i, 1));
    state.ResumeTiming();
    for (std::size_t i = 0; i < n; ++i) {
      auto reg = CodeRegistry::global().add(std::move(batches[i]), kGrouping);
      if (!reg) {
        state.SkipWithError(reg.error().message().c_str());
        break;
      }
      regs.push_back(std::move(*reg));
    }
    regs.clear();  // unregisters all N objects
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

BENCHMARK(BM_RegisterBatched)->Name("BM_RegisterFunctions/batched")->Arg(1000)->Arg(10000)->Arg(100000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RegisterOneByOne<jitkit::debug::Grouping::kMerge>)
    ->Name("BM_RegisterFunctions/one_by_one_merged")->Arg(1000)->Arg(10000)->Arg(100000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RegisterOneByOne<jitkit::debug::Grouping::kOwnObject>)
    ->Name("BM_RegisterFunctions/one_by_one_own_object")->Arg(1000)->Arg(10000)->Arg(100000)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
