// Concurrency of the code-zone allocator: several threads allocate, write, execute, keep and
// free code blocks in one zone at once, while another thread reads statistics. Every kept
// block is re-executed later, so a block handed out twice (or an int3 fill landing on a live
// block) shows up as a wrong return value or a SIGTRAP.
//
// Duration (tests/support/stress_duration_p.h): the allocation scenario runs stress_seconds()
// (2 s by default, JITKIT_STRESS_SECONDS overrides), the live-patching scenario half of that
// (1 s by default); the other scenarios are bounded by their work, not by time.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "code_functions_p.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/code/sync.h"
#include "support/stress_duration_p.h"

namespace jitkit::code {
namespace {

using test_util::IntFn;

using jitkit::test_util::stress_seconds;

TEST(CodeZoneConcurrency, ThreadsAllocateWriteRunAndFreeWithoutOverlap) {
  ZoneOptions o;
  o.reserve_bytes = 8 << 20;
  o.free_batch = 16;
  auto made = CodeZone::create(o);
  ASSERT_TRUE(made) << made.error().message();
  CodeZone& zone = **made;
  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::atomic<long> failures{0}, calls{0}, wrong_fresh{0}, wrong_kept{0}, bad_stats{0};
  auto worker = [&](int t) {
    std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
    struct Kept {
      CodeBlock block;
      int value;
    };
    std::vector<Kept> kept;
    int serial = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const int value = (t << 24) | (serial++ & 0xFFFFFF);
      const std::size_t size = 8 + rng() % 600;  // > 6: the stamp below must not hit the ret
      auto block = zone.allocate(size, (rng() % 4 == 0) ? 256 : 0);
      if (!block) {
        failures.fetch_add(1);
        break;
      }
      // The function fills the whole requested size: mov eax, value ; ret ; int3 padding is
      // already there, so write the 6 bytes and stamp the last requested byte too.
      const auto code = test_util::return_constant(static_cast<std::uint32_t>(value));
      const std::uint8_t last = 0xCC;
      if (!zone.write(block->exec, code.data(), code.size()) ||
          !zone.write(block->exec + size - 1, &last, 1) ||
          !zone.make_executable(*block, Visibility::kThisThread)) {
        failures.fetch_add(1);
        break;
      }
      if (reinterpret_cast<IntFn>(block->exec)() != value) wrong_fresh.fetch_add(1);
      calls.fetch_add(1, std::memory_order_relaxed);
      kept.push_back({*block, value});
      if (kept.size() > 32 || rng() % 2 == 0) {
        const std::size_t i = rng() % kept.size();
        // Still intact after other threads allocated and freed around it?
        if (reinterpret_cast<IntFn>(kept[i].block.exec)() != kept[i].value) wrong_kept.fetch_add(1);
        if (!zone.free(kept[i].block)) failures.fetch_add(1);
        kept[i] = kept.back();
        kept.pop_back();
      }
    }
    for (const Kept& k : kept) {
      if (reinterpret_cast<IntFn>(k.block.exec)() != k.value) wrong_kept.fetch_add(1);
      if (!zone.free(k.block)) failures.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  std::thread observer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const ZoneStats s = zone.stats();
      if (s.used_bytes + s.pending_free_bytes + s.free_bytes != s.reserved_bytes ||
          s.used_bytes > s.committed_bytes || s.largest_free_block > s.free_bytes) {
        bad_stats.fetch_add(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(stress_seconds()));
  stop = true;
  for (auto& th : threads) th.join();
  observer.join();
  EXPECT_EQ(failures.load(), 0) << "allocate/write/make_executable/free failed";
  EXPECT_EQ(wrong_fresh.load(), 0) << "a freshly written block returned another value";
  EXPECT_EQ(wrong_kept.load(), 0) << "a kept block was overwritten by another thread's block";
  EXPECT_EQ(bad_stats.load(), 0) << "inconsistent statistics";
  EXPECT_GT(calls.load(), 1000);
  ASSERT_TRUE(zone.flush_freed());
  const ZoneStats s = zone.stats();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.block_count, 0u);
  EXPECT_EQ(s.largest_free_block, s.reserved_bytes) << "everything coalesced back";
}

TEST(CodeZoneConcurrency, LiveCodeIsPatchedThroughTheWriteViewWhileAnotherThreadRunsIt) {
  if (!cross_core_sync_available()) GTEST_SKIP() << "membarrier SYNC_CORE unavailable";
  auto made = CodeZone::create({});
  ASSERT_TRUE(made) << made.error().message();
  CodeZone& zone = **made;
  ASSERT_EQ(zone.mode(), ZoneMode::kDualMapped);
  // nop ; nop ; nop ; mov eax, imm32 ; ret — the imm32 sits at offset 4, naturally aligned, so
  // one 4-byte store replaces it whole.
  const std::uint8_t code[] = {0x90, 0x90, 0x90, 0xB8, 0x11, 0x11, 0x11, 0x11, 0xC3};
  auto block = zone.allocate(sizeof code);
  ASSERT_TRUE(block);
  ASSERT_TRUE(zone.write(block->exec, code, sizeof code));
  ASSERT_TRUE(zone.make_executable(*block, Visibility::kOtherThreads));
  const auto fn = reinterpret_cast<IntFn>(block->exec);
  std::atomic<bool> stop{false};
  std::atomic<long> torn{0}, runs{0}, seen_second{0};
  std::thread runner([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      const int v = fn();
      if (v != 0x11111111 && v != 0x22222222) torn.fetch_add(1);
      if (v == 0x22222222) seen_second.fetch_add(1, std::memory_order_relaxed);
      runs.fetch_add(1, std::memory_order_relaxed);
    }
  });
  auto* field = reinterpret_cast<std::uint32_t*>(zone.writable(block->exec + 4));
  ASSERT_NE(field, nullptr);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(field) % 4, 0u);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(stress_seconds() / 2);
  int patches = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    // Release store through the RW view; the RX page is never made writable.
    __atomic_store_n(field, (patches++ % 2 == 0) ? 0x22222222u : 0x11111111u, __ATOMIC_RELEASE);
    ASSERT_TRUE(zone.make_executable(*block, Visibility::kOtherThreads));
  }
  stop = true;
  runner.join();
  EXPECT_EQ(torn.load(), 0) << "a run saw a mix of old and new immediate bytes";
  EXPECT_GT(runs.load(), 1000);
  EXPECT_GT(seen_second.load(), 0) << "the running thread never observed a patch";
  EXPECT_GT(patches, 10);
}

TEST(CodeZoneConcurrency, BlocksFreedByAnotherThreadAndCachesOfExitedThreadsComeBack) {
  ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  auto made = CodeZone::create(o);
  ASSERT_TRUE(made) << made.error().message();
  CodeZone& zone = **made;
  std::vector<CodeBlock> blocks;
  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) {
      auto b = zone.allocate(64 + static_cast<std::size_t>(i % 3) * 64);
      ASSERT_TRUE(b);
      blocks.push_back(*b);
    }
    // Free half here: they sit in this thread's batch and ready lists until it exits.
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(zone.free(blocks[static_cast<std::size_t>(i)]));
  });
  producer.join();  // thread exit hands the producer's cache back
  ZoneStats s = zone.stats();
  EXPECT_EQ(s.block_count, 50u);
  EXPECT_EQ(s.pending_free_bytes, 0u);
  // The other half is freed by this thread; a double free is caught across threads too.
  for (int i = 50; i < 100; ++i) ASSERT_TRUE(zone.free(blocks[static_cast<std::size_t>(i)]));
  EXPECT_FALSE(zone.free(blocks[0]));
  EXPECT_FALSE(zone.free(blocks[99]));
  ASSERT_TRUE(zone.flush_freed());
  s = zone.stats();
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.block_count, 0u);
  for (const CodeBlock& b : blocks) ASSERT_EQ(b.exec[0], 0xCC);
}

TEST(CodeZoneConcurrency, AThreadMayOutliveAZoneItUsed) {
  std::atomic<int> phase{0};
  std::unique_ptr<CodeZone> zone;
  {
    auto made = CodeZone::create({});
    ASSERT_TRUE(made);
    zone = std::move(made).value();
  }
  std::thread user([&] {
    auto b = zone->allocate(64);
    ASSERT_TRUE(b);
    ASSERT_TRUE(zone->free(*b));  // leaves a cache entry for this thread
    phase = 1;
    while (phase.load() != 2) std::this_thread::yield();
    // Exits after the zone is gone: its cache must not touch the dead zone.
  });
  while (phase.load() != 1) std::this_thread::yield();
  zone.reset();
  phase = 2;
  user.join();
  SUCCEED() << "no crash when the thread's cache outlived its zone";
}

TEST(CodeZoneConcurrency, OneThreadUsingMoreZonesThanCacheSlots) {
  std::vector<std::unique_ptr<CodeZone>> zones;
  for (int i = 0; i < 7; ++i) {
    ZoneOptions o;
    o.reserve_bytes = 256 << 10;
    auto made = CodeZone::create(o);
    ASSERT_TRUE(made);
    zones.push_back(std::move(made).value());
  }
  for (int round = 0; round < 3; ++round) {
    for (auto& z : zones) {
      const auto code = test_util::return_constant(static_cast<std::uint32_t>(round));
      auto b = z->allocate(code.size());
      ASSERT_TRUE(b);
      ASSERT_TRUE(z->write(b->exec, code.data(), code.size()));
      ASSERT_TRUE(z->make_executable(*b, Visibility::kThisThread));
      ASSERT_EQ(reinterpret_cast<IntFn>(b->exec)(), round);
      ASSERT_TRUE(z->free(*b));
    }
  }
  for (auto& z : zones) {
    ASSERT_TRUE(z->flush_freed());
    EXPECT_EQ(z->stats().used_bytes, 0u);
  }
}

}  // namespace
}  // namespace jitkit::code
