// Stress tests of the ahead-of-time per-CPU operations (jitkit/rseq/percpu.h) under 6x as many
// threads as CPUs, sched_yield() and a SIGALRM every 50 us. The "Injected" variants spin inside
// the critical section between the loads and the commit, so that preemption and signals land
// inside it: they must observe aborts (asserted) and still lose nothing.
// Each run lasts test_util::stress_seconds(): 2 s by default, JITKIT_STRESS_SECONDS=<seconds>
// for longer runs.
#include <gtest/gtest.h>

#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"
#include "rseq/test_hooks_p.h"
#include "rseq/workloads_p.h"

namespace jitkit::rseq {
namespace {

using test_hooks::ScopedInjectedDelay;
using test_util::stress_seconds;

TEST(PerCpuCounterStress, SumsExactlyUnderPreemptionSignalsAndYields) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  PerCpuCounter counter;
  auto r = test_util::counter_workload([&](std::int64_t d) { counter.add(d); },
                                       [&] { return counter.value(); }, stress_seconds());
  EXPECT_GT(r.expected, 0);
  EXPECT_EQ(r.observed, r.expected);
  EXPECT_GT(r.signals, 0u) << "the signal storm never fired";
  std::printf("counter: %lld adds summed, %llu aborts, %llu signals\n", static_cast<long long>(r.expected),
              static_cast<unsigned long long>(r.aborts), static_cast<unsigned long long>(r.signals));
}

TEST(PerCpuCounterStress, InjectedDelaySumsExactlyAndObservesAborts) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  ScopedInjectedDelay delay(2000);
  PerCpuCounter counter;
  auto r =
      test_util::counter_workload([&](std::int64_t d) { test_hooks::add_with_injected_delay(counter, d); },
                                  [&] { return counter.value(); }, stress_seconds());
  EXPECT_GT(r.expected, 0);
  EXPECT_EQ(r.observed, r.expected);
  EXPECT_GT(r.aborts, 0u) << "no critical section was ever aborted: the test proves nothing";
  std::printf("counter (injected): %lld summed, %llu aborts observed, %llu signals\n",
              static_cast<long long>(r.expected), static_cast<unsigned long long>(r.aborts),
              static_cast<unsigned long long>(r.signals));
}

TEST(PerCpuWordStress, CompareAndStoreLockExcludesAndObservesAborts) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  ScopedInjectedDelay delay(2000);
  PerCpuWord word;
  auto r = test_util::percpu_lock_workload(word, true, stress_seconds());
  EXPECT_GT(r.acquisitions, 0u);
  EXPECT_EQ(r.protected_sum, r.acquisitions) << "two threads held the same per-CPU lock";
  EXPECT_GT(r.aborts, 0u);
  for (unsigned s = 0; s < word.slot_count(); ++s) EXPECT_EQ(word.load(s), 0u) << "slot " << s;
  std::printf("per-CPU lock: %llu acquisitions, %llu aborts\n",
              static_cast<unsigned long long>(r.acquisitions), static_cast<unsigned long long>(r.aborts));
}

TEST(PerCpuListStress, PushPopAndDrainLoseAndDuplicateNothing) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  PerCpuList list;
  auto r = test_util::list_workload(list, false, stress_seconds());
  EXPECT_GT(r.pops, 0u);
  EXPECT_GT(r.drains, 0u);
  EXPECT_EQ(r.double_pops, 0u);
  EXPECT_EQ(r.missing, 0u);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(r.found_once, r.nodes);
}

TEST(PerCpuListStress, InjectedDelayLosesNothingAndObservesAborts) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  ScopedInjectedDelay delay(2000);
  PerCpuList list;
  auto r = test_util::list_workload(list, true, stress_seconds());
  EXPECT_GT(r.pops, 0u);
  EXPECT_GT(r.drains, 0u);
  EXPECT_EQ(r.double_pops, 0u);
  EXPECT_EQ(r.missing, 0u);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(r.found_once, r.nodes);
  EXPECT_GT(r.aborts, 0u);
  std::printf("list (injected): %llu pops, %llu drains, %llu aborts\n",
              static_cast<unsigned long long>(r.pops), static_cast<unsigned long long>(r.drains),
              static_cast<unsigned long long>(r.aborts));
}

TEST(PerCpuPoolStress, NeverHandsOutAnObjectTwiceAndObservesAborts) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  ScopedInjectedDelay delay(2000);
  auto pool = PerCpuPool::create(48);
  ASSERT_TRUE(pool) << pool.error().message();
  auto r = test_util::pool_workload(**pool, true, stress_seconds());
  EXPECT_GT(r.allocations, 0u);
  EXPECT_EQ(r.double_handouts, 0u);
  EXPECT_EQ(r.null_allocations, 0u);
  EXPECT_GT(r.aborts, 0u);
  std::printf("pool (injected): %llu allocations, %zu chunks, %llu aborts\n",
              static_cast<unsigned long long>(r.allocations), r.chunks,
              static_cast<unsigned long long>(r.aborts));
}

TEST(PerCpuPool, RejectsBadParametersWithClearErrors) {
  auto zero = PerCpuPool::create(0);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(zero.error().message().find("object_size"), std::string::npos);
  auto align = PerCpuPool::create(16, 24);
  ASSERT_FALSE(align);
  EXPECT_NE(align.error().message().find("alignment"), std::string::npos);
}

TEST(PerCpuList, DrainRejectsSlotOutOfRange) {
  PerCpuList list;
  auto r = list.drain(list.slot_count());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace jitkit::rseq
