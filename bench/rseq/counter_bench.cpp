// BM_CounterAdd/<variant>: the cost of one counter increment, 1000 increments per benchmark
// iteration: the per-increment time of one thread is the CPU time / 1000 (items_per_second sums
// the threads of the /threads:2 entries).
//   rseq_aot                 PerCpuCounter::add(1): the inline critical section
//   rseq_jit                 the same section emitted at run time (JitCounterAdd), 1000 adds
//                            per call: the loop is inside the generated code, as the C++ loop
//                            is around the inlined section
//   plain                    `cell = cell + 1` on a volatile int64: a non-atomic load and store
//                            per op that the compiler can neither hoist nor vectorize
//   lock_xadd_uncontended    std::atomic<int64>::fetch_add on a cell only this thread touches
//   shared_2threads          one std::atomic<int64> incremented by 2 threads at once
//   rseq_aot_2threads        PerCpuCounter::add(1) from 2 threads (per-CPU: no contention)
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>

#include "jitkit/code/code_zone.h"
#include "jitkit/rseq/jit.h"
#include "jitkit/rseq/percpu.h"

namespace {

constexpr int kOpsPerIteration = 1000;

void finish(benchmark::State& state) { state.SetItemsProcessed(state.iterations() * kOpsPerIteration); }

void BM_CounterAdd_rseq_aot(benchmark::State& state) {
  static jitkit::rseq::PerCpuCounter counter;
  if (!jitkit::rseq::process_status().rseq_enabled) {
    state.SkipWithError(jitkit::rseq::process_status().fallback_reason.c_str());
    return;
  }
  for (auto _ : state) {
    for (int i = 0; i < kOpsPerIteration; ++i) counter.add(1);
  }
  finish(state);
}

void BM_CounterAdd_rseq_jit(benchmark::State& state) {
  if (!jitkit::rseq::process_status().rseq_enabled) {
    state.SkipWithError(jitkit::rseq::process_status().fallback_reason.c_str());
    return;
  }
  auto zone = jitkit::code::CodeZone::create();
  if (!zone) {
    state.SkipWithError(zone.error().message().c_str());
    return;
  }
  auto jit = jitkit::rseq::JitCounterAdd::create(**zone);
  if (!jit) {
    state.SkipWithError(jit.error().message().c_str());
    return;
  }
  jitkit::rseq::PerCpuCounter counter;
  for (auto _ : state) (*jit)->add(counter, 1, kOpsPerIteration);
  finish(state);
  if (counter.value() != static_cast<std::int64_t>(state.iterations()) * kOpsPerIteration) {
    state.SkipWithError("JIT counter lost increments");
  }
}

void BM_CounterAdd_plain(benchmark::State& state) {
  static volatile std::int64_t cell = 0;
  for (auto _ : state) {
    for (int i = 0; i < kOpsPerIteration; ++i) cell = cell + 1;
  }
  finish(state);
}

void BM_CounterAdd_lock_xadd_uncontended(benchmark::State& state) {
  alignas(64) static std::atomic<std::int64_t> cell{0};
  for (auto _ : state) {
    for (int i = 0; i < kOpsPerIteration; ++i) {
      benchmark::DoNotOptimize(cell.fetch_add(1, std::memory_order_relaxed));
    }
  }
  finish(state);
}

alignas(64) std::atomic<std::int64_t> g_shared{0};

void BM_CounterAdd_shared_2threads(benchmark::State& state) {
  for (auto _ : state) {
    for (int i = 0; i < kOpsPerIteration; ++i) {
      benchmark::DoNotOptimize(g_shared.fetch_add(1, std::memory_order_relaxed));
    }
  }
  finish(state);
}

jitkit::rseq::PerCpuCounter& shared_percpu() {
  static jitkit::rseq::PerCpuCounter c;
  return c;
}

void BM_CounterAdd_rseq_aot_2threads(benchmark::State& state) {
  jitkit::rseq::PerCpuCounter& c = shared_percpu();
  for (auto _ : state) {
    for (int i = 0; i < kOpsPerIteration; ++i) c.add(1);
  }
  finish(state);
}

}  // namespace

BENCHMARK(BM_CounterAdd_rseq_aot)->Name("BM_CounterAdd/rseq_aot");
BENCHMARK(BM_CounterAdd_rseq_jit)->Name("BM_CounterAdd/rseq_jit");
BENCHMARK(BM_CounterAdd_plain)->Name("BM_CounterAdd/plain");
BENCHMARK(BM_CounterAdd_lock_xadd_uncontended)->Name("BM_CounterAdd/lock_xadd_uncontended");
BENCHMARK(BM_CounterAdd_shared_2threads)->Name("BM_CounterAdd/shared_2threads")->Threads(2);
BENCHMARK(BM_CounterAdd_rseq_aot_2threads)->Name("BM_CounterAdd/rseq_aot_2threads")->Threads(2);

BENCHMARK_MAIN();
