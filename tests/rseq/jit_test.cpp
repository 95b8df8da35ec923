// JIT-emitted critical sections (jitkit/rseq/jit.h): the descriptor and signature of the
// installed code, the debugger table, the same stress workloads as the ahead-of-time sections
// (6x threads, yields, SIGALRM every 50 us, injected delay with aborts asserted), mixing with
// the ahead-of-time add on one counter, and the reclamation protocol (no thread's rseq_cs still
// points at a released descriptor). Each stress run lasts test_util::stress_seconds(): 2 s by
// default, JITKIT_STRESS_SECONDS=<seconds> for longer runs.
#include <gtest/gtest.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/rseq/jit.h"
#include "jitkit/rseq/percpu.h"
#include "rseq/test_hooks_p.h"
#include "rseq/workloads_p.h"

namespace jitkit::rseq {
namespace {

std::unique_ptr<code::CodeZone> make_zone() {
  code::ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  auto z = code::CodeZone::create(o);
  EXPECT_TRUE(z) << (z ? "" : z.error().message());
  return z ? std::move(z).value() : nullptr;
}

bool table_lists(const RseqCs* d) {
  for (std::uint64_t i = 0; i < jitkit_rseq_jit_table.count; ++i) {
    if (jitkit_rseq_jit_table.entries[i].descriptor == reinterpret_cast<std::uint64_t>(d)) {
      return true;
    }
  }
  return false;
}

TEST(JitCounter, DescriptorDescribesTheInstalledSectionAndIsListed) {
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto jit = JitCounterAdd::create(*zone);
  ASSERT_TRUE(jit) << jit.error().message();
  const RseqCs* d = (*jit)->descriptor();
  EXPECT_TRUE(zone->contains(d)) << "descriptor outside the zone's data";
  EXPECT_EQ(d->version, 0u);
  EXPECT_EQ(d->flags, 0u);
  const std::uint64_t code = (*jit)->code().start();
  const std::uint64_t size = (*jit)->code().code_size();
  EXPECT_GE(d->start_ip, code);
  EXPECT_LT(d->start_ip + d->post_commit_offset, code + size);
  EXPECT_GT(d->post_commit_offset, 0u);
  EXPECT_GE(d->abort_ip, d->start_ip + d->post_commit_offset);
  EXPECT_LT(d->abort_ip, code + size);
  const auto* abort = reinterpret_cast<const std::uint8_t*>(d->abort_ip);
  const std::uint8_t ud1[3] = {0x0f, 0xb9, 0x3d};
  EXPECT_EQ(std::memcmp(abort - 7, ud1, 3), 0);
  std::uint32_t sig = 0;
  std::memcpy(&sig, abort - 4, 4);
  EXPECT_EQ(sig, kSignature);
  EXPECT_EQ(jitkit_rseq_jit_table.version, 1u);
  EXPECT_EQ(jitkit_rseq_jit_table.entry_size, sizeof(JitTableEntry));
  EXPECT_EQ(jitkit_rseq_jit_table.generation % 2, 0u);
  EXPECT_TRUE(table_lists(d));
  PerCpuCounter c;
  (*jit)->add(c, 5, 1000);
  EXPECT_EQ(c.value(), 5000);
  ASSERT_TRUE((*jit)->release());
  EXPECT_FALSE(table_lists(d));
  EXPECT_EQ(d->post_commit_offset, 0u) << "a released descriptor must be inert";
}

TEST(JitCounterStress, SumsExactlyUnderPreemptionSignalsAndYields) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto jit = JitCounterAdd::create(*zone);
  ASSERT_TRUE(jit) << jit.error().message();
  PerCpuCounter counter;
  auto r = test_util::counter_workload([&](std::int64_t d) { (*jit)->add(counter, d); },
                                       [&] { return counter.value(); }, test_util::stress_seconds());
  EXPECT_GT(r.expected, 0);
  EXPECT_EQ(r.observed, r.expected);
}

TEST(JitCounterStress, InjectedDelaySumsExactlyAndObservesAborts) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto jit = test_hooks::create_counter_add_with_injected_delay(*zone);
  ASSERT_TRUE(jit) << jit.error().message();
  test_hooks::inject_spins = 2000;
  PerCpuCounter counter;
  auto r = test_util::counter_workload([&](std::int64_t d) { (*jit)->add(counter, d); },
                                       [&] { return counter.value(); }, test_util::stress_seconds());
  test_hooks::inject_spins = 0;
  EXPECT_GT(r.expected, 0);
  EXPECT_EQ(r.observed, r.expected);
  EXPECT_GT(r.aborts, 0u) << "no JIT-emitted section was ever aborted: the test proves nothing";
  std::printf("JIT counter (injected): %lld summed, %llu aborts observed\n",
              static_cast<long long>(r.expected), static_cast<unsigned long long>(r.aborts));
}

TEST(JitCounterStress, MixesWithTheAheadOfTimeAddOnOneCounter) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto jit = JitCounterAdd::create(*zone);
  ASSERT_TRUE(jit) << jit.error().message();
  PerCpuCounter counter;
  std::atomic<unsigned> flip{0};
  auto r = test_util::counter_workload(
      [&](std::int64_t d) {
        if (flip.fetch_add(1, std::memory_order_relaxed) & 1) {
          (*jit)->add(counter, d);
        } else {
          counter.add(d);
        }
      },
      [&] { return counter.value(); }, test_util::stress_seconds());
  EXPECT_EQ(r.observed, r.expected);
}

TEST(JitListOps, BothDescriptorsAreListedAndWellFormed) {
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto ops = JitListOps::create(*zone);
  ASSERT_TRUE(ops) << ops.error().message();
  ASSERT_EQ((*ops)->descriptors().size(), 2u);
  for (const RseqCs* d : (*ops)->descriptors()) {
    EXPECT_TRUE(table_lists(d));
    EXPECT_GT(d->post_commit_offset, 0u);
    EXPECT_FALSE(d->abort_ip >= d->start_ip && d->abort_ip < d->start_ip + d->post_commit_offset);
    std::uint32_t sig = 0;
    std::memcpy(&sig, reinterpret_cast<const std::uint8_t*>(d->abort_ip) - 4, 4);
    EXPECT_EQ(sig, kSignature);
  }
  PerCpuList list;
  PerCpuList::Node a{}, b{};
  (*ops)->push(list, &a);
  (*ops)->push(list, &b);
  std::set<PerCpuList::Node*> got;
  for (int i = 0; i < 2; ++i) got.insert((*ops)->pop(list));
  // Both come back (from this CPU's list, or the other CPU's if we migrated in between: drain).
  for (unsigned s = 0; s < list.slot_count(); ++s) {
    auto chain = list.drain(s);
    ASSERT_TRUE(chain);
    for (PerCpuList::Node* n = *chain; n != nullptr; n = n->next) got.insert(n);
  }
  got.erase(nullptr);
  EXPECT_EQ(got, (std::set<PerCpuList::Node*>{&a, &b}));
  std::vector<RseqCs*> ds = (*ops)->descriptors();
  ASSERT_TRUE((*ops)->release());
  for (const RseqCs* d : ds) EXPECT_FALSE(table_lists(d));
}

TEST(JitListStress, PushPopAndDrainLoseAndDuplicateNothing) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto ops = JitListOps::create(*zone);
  ASSERT_TRUE(ops) << ops.error().message();
  PerCpuList list;
  test_util::ListOps via_jit{[&](PerCpuList::Node* n) { (*ops)->push(list, n); },
                             [&] { return (*ops)->pop(list); }};
  auto r = test_util::list_workload(list, via_jit, test_util::stress_seconds());
  EXPECT_GT(r.pops, 0u);
  EXPECT_GT(r.drains, 0u);
  EXPECT_EQ(r.double_pops, 0u);
  EXPECT_EQ(r.missing, 0u);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(r.found_once, r.nodes);
}

TEST(JitListStress, InjectedDelayLosesNothingAndObservesAborts) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto ops = test_hooks::create_list_ops_with_injected_delay(*zone);
  ASSERT_TRUE(ops) << ops.error().message();
  test_hooks::inject_spins = 2000;
  PerCpuList list;
  test_util::ListOps via_jit{[&](PerCpuList::Node* n) { (*ops)->push(list, n); },
                             [&] { return (*ops)->pop(list); }};
  auto r = test_util::list_workload(list, via_jit, test_util::stress_seconds());
  test_hooks::inject_spins = 0;
  EXPECT_GT(r.pops, 0u);
  EXPECT_EQ(r.double_pops, 0u);
  EXPECT_EQ(r.missing, 0u);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(r.found_once, r.nodes);
  EXPECT_GT(r.aborts, 0u) << "no JIT-emitted list section was ever aborted";
  std::printf("JIT list (injected): %llu pops, %llu drains, %llu aborts\n",
              static_cast<unsigned long long>(r.pops), static_cast<unsigned long long>(r.drains),
              static_cast<unsigned long long>(r.aborts));
}

// Workers run the section, then block: their rseq_cs keeps pointing at the descriptor (the
// kernel clears it only on their next preemption or signal). release() must clear every one.
TEST(JitCounterReclaim, NoThreadPointsAtAReleasedDescriptorAndTheCodeIsReusable) {
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  auto zone = make_zone();
  ASSERT_NE(zone, nullptr);
  auto jit = JitCounterAdd::create(*zone);
  ASSERT_TRUE(jit) << jit.error().message();
  const auto desc = reinterpret_cast<std::uint64_t>((*jit)->descriptor());
  PerCpuCounter counter;
  const unsigned n = 8;
  // No system call between the section and the futex wait: a syscall return (or a preemption)
  // would let the kernel clear rseq_cs itself and the test would prove nothing.
  std::atomic<unsigned> ran{0};
  std::uint32_t finish = 0;
  std::vector<RseqArea*> areas(n, nullptr);
  for (unsigned t = 0; t < n; ++t) areas[t] = nullptr;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      areas[t] = ensure_registered().area;
      (*jit)->add(counter, 1, 100);
      ran.fetch_add(1);
      while (__atomic_load_n(&finish, __ATOMIC_ACQUIRE) == 0) {
        syscall(SYS_futex, &finish, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
      }
    });
  }
  while (ran.load() != n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let them block
  unsigned stale_before = 0;
  for (RseqArea* a : areas) {
    ASSERT_NE(a, nullptr);
    if (__atomic_load_n(&a->rseq_cs, __ATOMIC_SEQ_CST) == desc) ++stale_before;
  }
  // The hazard is real: blocked threads still point at the descriptor.
  EXPECT_GT(stale_before, 0u);
  ASSERT_TRUE((*jit)->release());
  for (unsigned t = 0; t < n; ++t) {
    EXPECT_NE(__atomic_load_n(&areas[t]->rseq_cs, __ATOMIC_SEQ_CST), desc) << "thread " << t;
  }
  std::printf("reclaim: %u of %u blocked threads still pointed at the descriptor before release\n",
              stale_before, n);
  // New code may take the freed block; the blocked threads wake up and run it.
  auto next = JitCounterAdd::create(*zone);
  ASSERT_TRUE(next) << next.error().message();
  __atomic_store_n(&finish, 1, __ATOMIC_RELEASE);
  syscall(SYS_futex, &finish, FUTEX_WAKE_PRIVATE, n, nullptr, nullptr, 0);
  for (auto& th : threads) th.join();
  (*next)->add(counter, 1, 100);
  EXPECT_EQ(counter.value(), static_cast<std::int64_t>(n * 100 + 100));
}

}  // namespace
}  // namespace jitkit::rseq
