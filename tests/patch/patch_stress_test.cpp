// tests/patch/patch_stress_test.cpp — live patching under real concurrency. For each path
// (aligned store, trampoline slot, breakpoint protocol, static key, batched, immediates), at
// least 2x as many caller threads as cores (>= 4) call through patched code in a tight loop
// while one patcher thread changes it as fast as it can. Every target counts its calls per
// caller thread; the counts must sum to the calls made (no call lost or landing elsewhere, no
// crash, no SIGILL/SIGSEGV), and more than one target must have been reached. Immediates must
// never be read torn.
//
// Duration of each run: jitkit::test_util::stress_seconds() (tests/support/stress_duration_p.h):
// 2 s by default, JITKIT_STRESS_SECONDS=<seconds> for longer. Each run prints its calls and
// patches.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

#include "emitted_sites_p.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/patch/quiescence.h"
#include "jitkit/patch/trap.h"
#include "patch_test_util_p.h"
#include "support/stress_duration_p.h"

namespace jitkit::patch {
namespace {

using test_util::addr;
using test_util::Counters;
using test_util::kTargets;

int caller_threads() {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(std::max(4u, 2 * hw));
}

struct StressOutcome {
  std::uint64_t calls = 0;
  std::uint64_t patches = 0;
  std::uint64_t bad_values = 0;
  std::array<std::uint64_t, test_util::kMaxTargets> hits{};
};

// Runs `call_burst` on caller threads (it returns how many calls it made and adds to `bad` any
// wrong result) while `patch_once(i)` runs on this thread; both until the time is up.
StressOutcome run(const char* name,
                  const std::function<std::uint64_t(Counters&, std::uint64_t& bad)>& call_burst,
                  const std::function<Status(std::uint64_t)>& patch_once) {
  const int n = caller_threads();
  const double seconds = jitkit::test_util::stress_seconds();
  std::vector<Counters> counters(n);
  std::vector<std::uint64_t> calls(n, 0), bad(n, 0);
  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      std::uint64_t c = 0, b = 0;
      while (!stop.load(std::memory_order_relaxed)) c += call_burst(counters[t], b);
      calls[t] = c;
      bad[t] = b;
    });
  }
  while (ready.load() < n) std::this_thread::yield();
  const auto trap_before = trap_stats();
  StressOutcome out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::string first_error;
  while (std::chrono::steady_clock::now() < deadline) {
    Status s = patch_once(out.patches);
    if (!s) {
      first_error = s.error().message();
      break;
    }
    ++out.patches;
  }
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(first_error, "") << "a patch failed";
  for (int t = 0; t < n; ++t) {
    out.calls += calls[t];
    out.bad_values += bad[t];
    for (int k = 0; k < test_util::kMaxTargets; ++k) out.hits[k] += counters[t].hits[k];
  }
  const auto trap_after = trap_stats();
  std::printf("[stress %s] %d caller threads, %.1f s: %llu calls, %llu patches; per target:", name, n,
              seconds, static_cast<unsigned long long>(out.calls),
              static_cast<unsigned long long>(out.patches));
  for (auto h : out.hits) std::printf(" %llu", static_cast<unsigned long long>(h));
  std::printf("; traps emulated %llu, restarted %llu\n",
              static_cast<unsigned long long>(trap_after.emulated - trap_before.emulated),
              static_cast<unsigned long long>(trap_after.restarted - trap_before.restarted));
  std::fflush(stdout);
  return out;
}

void expect_all_calls_landed(const StressOutcome& o, std::uint64_t calls_per_hit = 1) {
  std::uint64_t sum = 0;
  int reached = 0;
  for (auto h : o.hits) {
    sum += h;
    reached += h > 0;
  }
  EXPECT_GT(o.calls, 0u);
  EXPECT_GT(o.patches, 1u);
  EXPECT_EQ(sum, o.calls * calls_per_hit) << "calls lost or landed outside the valid targets";
  EXPECT_GE(reached, 2) << "the patches never took effect for the callers";
  EXPECT_EQ(o.bad_values, 0u);
}

struct StressTest : ::testing::Test {
  void SetUp() override {
    zone = test_util::make_zone_near_binary();
    ASSERT_NE(zone, nullptr);
    auto p = Patcher::create(*zone);
    ASSERT_TRUE(p.has_value()) << p.error().message();
    patcher = std::move(p).value();
  }
  std::unique_ptr<code::CodeZone> zone;
  std::unique_ptr<Patcher> patcher;
};

constexpr int kBurst = 256;

TEST_F(StressTest, AlignedStoreRetarget) {
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 8);
  auto fn = stub.fn();
  auto o = run(
      "aligned store",
      [fn](Counters& c, std::uint64_t& bad) {
        for (int i = 0; i < kBurst; ++i) {
          const int r = fn(&c);
          bad += (r < 1 || r > 4);
        }
        return std::uint64_t{kBurst};
      },
      [&](std::uint64_t i) -> Status {
        // Every other patch without the serialization: the store races instruction fetch
        // as often as possible; the others follow the documented kAllCores contract.
        JITKIT_TRY(patcher->retarget(stub.site, reinterpret_cast<const void*>(kTargets[(i + 1) % 4]),
                                     i % 2 ? Sync::kNone : Sync::kAllCores));
        return ok();
      });
  expect_all_calls_landed(o);
}

TEST_F(StressTest, TrampolineSlotRetarget) {
  auto far_zone = test_util::make_far_zone(*zone);
  ASSERT_NE(far_zone, nullptr);
  // Three far targets (through the trampoline slot) and one near one (direct rel32).
  std::vector<std::uintptr_t> targets = {test_util::make_thunk(*far_zone, addr(kTargets[0])),
                                         test_util::make_thunk(*far_zone, addr(kTargets[1])),
                                         test_util::make_thunk(*far_zone, addr(kTargets[2])),
                                         addr(kTargets[3])};
  auto stub = test_util::make_caller(*zone, addr(kTargets[3]), 8);
  auto fn = stub.fn();
  std::array<std::uint64_t, 4> by_path{};
  auto o = run(
      "trampoline slot",
      [fn](Counters& c, std::uint64_t& bad) {
        for (int i = 0; i < kBurst; ++i) {
          const int r = fn(&c);
          bad += (r < 1 || r > 4);
        }
        return std::uint64_t{kBurst};
      },
      [&](std::uint64_t i) -> Status {
        // Mostly far-to-far (slot stores); every 8th patch goes near and back (rel32 stores).
        const std::size_t k = (i % 8 == 7) ? 3 : i % 3;
        JITKIT_TRY(RetargetPath p, patcher->retarget(stub.site, reinterpret_cast<const void*>(targets[k]),
                                                     i % 2 ? Sync::kNone : Sync::kAllCores));
        ++by_path[static_cast<int>(p)];
        return ok();
      });
  std::printf("  paths: direct %llu, slot %llu, via trampoline %llu\n",
              static_cast<unsigned long long>(by_path[0]), static_cast<unsigned long long>(by_path[1]),
              static_cast<unsigned long long>(by_path[2]));
  expect_all_calls_landed(o);
  EXPECT_GT(by_path[static_cast<int>(RetargetPath::kTrampolineSlot)], 0u);
  EXPECT_EQ(patcher->stats().trampolines, 1u);
}

TEST_F(StressTest, BreakpointRetargetOfMisalignedSite) {
  // rel32 across a cache line: only the breakpoint protocol may change it.
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 62);
  auto fn = stub.fn();
  auto o = run(
      "breakpoint",
      [fn](Counters& c, std::uint64_t& bad) {
        for (int i = 0; i < kBurst; ++i) {
          const int r = fn(&c);
          bad += (r < 1 || r > 4);
        }
        return std::uint64_t{kBurst};
      },
      [&](std::uint64_t i) -> Status {
        JITKIT_TRY(
            patcher->retarget_by_breakpoint(stub.site, reinterpret_cast<const void*>(kTargets[(i + 1) % 4])));
        return ok();
      });
  expect_all_calls_landed(o);
}

TEST_F(StressTest, StaticKeyToggle) {
  auto key = test_util::make_key_caller(*zone, addr(kTargets[0]), addr(kTargets[1]));
  auto fn = key.fn();
  auto o = run(
      "static key",
      [fn](Counters& c, std::uint64_t& bad) {
        for (int i = 0; i < kBurst; ++i) {
          const int r = fn(&c);
          bad += (r < 1 || r > 2);
        }
        return std::uint64_t{kBurst};
      },
      [&](std::uint64_t i) -> Status { return patcher->set_static_key(key.site, i % 2 == 0); });
  expect_all_calls_landed(o);
}

TEST_F(StressTest, BatchedRetargetOfManySites) {
  constexpr int kSites = 16;
  std::vector<test_util::CallerStub> stubs;
  for (int i = 0; i < kSites; ++i) {
    stubs.push_back(test_util::make_caller(*zone, addr(kTargets[0]), i % 2 ? 62 : 8));
  }
  std::vector<test_util::TargetFn> fns;
  for (auto& s : stubs) fns.push_back(s.fn());
  auto o = run(
      "batched (16 sites per commit)",
      [&fns](Counters& c, std::uint64_t& bad) {
        for (int i = 0; i < kBurst / kSites; ++i) {
          for (auto f : fns) {
            const int r = f(&c);
            bad += (r < 1 || r > 4);
          }
        }
        return std::uint64_t{kBurst / kSites * kSites};
      },
      [&](std::uint64_t i) -> Status {
        PatchBatch batch(*patcher);
        for (int s = 0; s < kSites; ++s) {
          JITKIT_TRY(batch.retarget(stubs[s].site, reinterpret_cast<const void*>(kTargets[(i + 1 + s) % 4])));
        }
        return patcher->commit(batch);
      });
  expect_all_calls_landed(o);
  const auto st = patcher->stats();
  EXPECT_EQ(st.serializations, st.breakpoint_commits * 3) << "a batch costs 3 serializations";
}

TEST_F(StressTest, ImmediatesAreNeverTorn) {
  constexpr std::uint64_t k64 = 0x0101010101010101ull;
  constexpr std::uint32_t k32 = 0x01010101u;
  auto imm = test_util::make_imm_stub(*zone, k64, k32);
  auto f64 = imm.fn64();
  auto f32 = imm.fn32();
  auto o = run(
      "imm32/imm64",
      [f64, f32](Counters& c, std::uint64_t& bad) {
        for (int i = 0; i < kBurst; ++i) {
          const std::uint64_t v = f64();
          const std::uint32_t w = f32();
          // Valid values are k * (1..4); a torn read mixes bytes of two of them.
          const bool ok64 = v % k64 == 0 && v / k64 >= 1 && v / k64 <= 4;
          const bool ok32 = w % k32 == 0 && w / k32 >= 1 && w / k32 <= 4;
          bad += !ok64 + !ok32;
          if (ok64) c.hits[v / k64 - 1]++;
          if (ok32) c.hits[4 + w / k32 - 1]++;
        }
        return std::uint64_t{kBurst};
      },
      [&](std::uint64_t i) -> Status {
        const std::uint64_t k = (i + 1) % 4 + 1;
        JITKIT_TRY(patcher->set_imm64(imm.imm64, k64 * k, i % 2 ? Sync::kNone : Sync::kAllCores));
        JITKIT_TRY(patcher->set_imm32(imm.imm32, static_cast<std::int32_t>(k32 * k),
                                      i % 2 ? Sync::kNone : Sync::kAllCores));
        return ok();
      });
  expect_all_calls_landed(o, 2);  // each iteration reads both immediates
}

TEST_F(StressTest, OldTargetsFreedAfterQuiescence) {
  // Each patch moves the site to a freshly generated target and FREES the previous one (the zone
  // refills it with int3) once every caller passed a quiescent state. The targets call the
  // counting function, so callers spend most of their time with a return address into one.
  // Freed too early, a caller returns into int3 fill that is not a breakpoint of ours (the trap
  // goes to SIG_DFL and the process dies with SIGTRAP) or into another target's bytes (checked
  // by removing the synchronize(): the run crashes).
  QuiescenceDomain domain;
  code::CodeBlock current = test_util::make_calling_thunk(*zone, addr(kTargets[0]), 0);
  auto stub = test_util::make_caller(*zone, addr(current.exec), 8);
  auto fn = stub.fn();
  std::uint64_t freed = 0;
  auto o = run(
      "free after quiescence",
      [fn, &domain](Counters& c, std::uint64_t& bad) {
        thread_local std::unique_ptr<QuiescenceDomain::Participant> me;
        if (!me) me = domain.join();
        for (int i = 0; i < kBurst; ++i) {
          const int r = fn(&c);
          bad += (r < 1 || r > 4);
          me->quiescent();  // between calls: no reference into generated targets
        }
        return std::uint64_t{kBurst};
      },
      [&](std::uint64_t i) -> Status {
        code::CodeBlock next = test_util::make_calling_thunk(*zone, addr(kTargets[(i + 1) % 4]), (i % 5) * 3);
        if (next.exec == nullptr) return Error(ErrorCode::kOutOfMemory, "no block for a target");
        JITKIT_TRY(patcher->retarget(stub.site, next.exec, Sync::kAllCores));
        JITKIT_TRY(domain.synchronize(std::chrono::seconds(10)));
        JITKIT_TRY(zone->free(current));
        ++freed;
        current = next;
        return ok();
      });
  std::printf("  old targets freed: %llu\n", static_cast<unsigned long long>(freed));
  expect_all_calls_landed(o);
  EXPECT_EQ(freed, o.patches);
}

TEST_F(StressTest, AssemblerEmittedSites) {
  // The assembler's own sites: a static key choosing between two call sites, as ic/ and som/
  // will emit them. The patcher toggles the key (breakpoints) and retargets both call sites
  // (aligned stores) in turn; each call of the function reaches exactly one target.
  using namespace jitkit::x64;  // NOLINT
  Assembler a;
  Label on = a.new_label(), done = a.new_label();
  a.sub(rsp, 8);
  a.static_key(on, false);
  a.call_site(abs(kTargets[0]));
  a.jmp(done);
  a.bind(on);
  a.call_site(abs(kTargets[4]));
  a.bind(done);
  a.add(rsp, 8);
  a.ret();
  auto code = test_util::emit(*zone, a);
  ASSERT_EQ(code.sites.size(), 3u);
  auto fn = code.entry<test_util::TargetFn>();
  auto o = run(
      "assembler-emitted sites",
      [fn](Counters& c, std::uint64_t& bad) {
        for (int i = 0; i < kBurst; ++i) {
          const int r = fn(&c);
          bad += (r < 1 || r > 8);
        }
        return std::uint64_t{kBurst};
      },
      [&](std::uint64_t i) -> Status {
        switch (i % 3) {
          case 0:
            return patcher->set_static_key(code.sites[0], (i / 3) % 2 == 0);
          case 1:
            JITKIT_TRY(
                patcher->retarget(code.sites[1], reinterpret_cast<const void*>(kTargets[(i / 3) % 4])));
            return ok();
          default:
            JITKIT_TRY(
                patcher->retarget(code.sites[2], reinterpret_cast<const void*>(kTargets[4 + (i / 3) % 4])));
            return ok();
        }
      });
  expect_all_calls_landed(o);
}

}  // namespace
}  // namespace jitkit::patch
