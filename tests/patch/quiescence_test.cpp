// tests/patch/quiescence_test.cpp — QuiescenceDomain::synchronize() waits exactly for the online
// participants that have not passed a quiescent state since it started (the concurrent use,
// freeing real targets under callers, is StressTest.OldTargetsFreedAfterQuiescence).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "jitkit/patch/quiescence.h"

namespace jitkit::patch {
namespace {

using namespace std::chrono_literals;

TEST(Quiescence, NoParticipantsSynchronizesAtOnce) {
  QuiescenceDomain d;
  EXPECT_TRUE(d.synchronize(1ms).has_value());
}

TEST(Quiescence, OnlineParticipantWithoutQuiescentStateTimesOut) {
  QuiescenceDomain d;
  std::atomic<bool> joined{false}, done{false};
  std::thread t([&] {
    auto me = d.join();
    joined = true;
    while (!done) std::this_thread::sleep_for(1ms);  // online, never quiescent
  });
  while (!joined) std::this_thread::yield();
  auto s = d.synchronize(20ms);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidState);
  EXPECT_NE(s.error().message().find("1 of 1 participants"), std::string::npos) << s.error().message();
  done = true;
  t.join();
  EXPECT_EQ(d.participants(), 0u);
}

TEST(Quiescence, OfflineParticipantDoesNotHoldReclamation) {
  QuiescenceDomain d;
  auto me = d.join();  // this thread, then offline: synchronize() must not wait for it
  me->offline();
  EXPECT_TRUE(d.synchronize(1s).has_value());
  me->online();
  EXPECT_FALSE(d.synchronize(5ms).has_value()) << "online again and not quiescent since";
  me->offline();
}

TEST(Quiescence, SynchronizeWaitsUntilEveryParticipantPassesAQuiescentState) {
  QuiescenceDomain d;
  constexpr int kThreads = 3;
  std::atomic<int> allowed{0};  // participants allowed to pass their quiescent state
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto me = d.join();
      while (allowed.load() <= i) std::this_thread::sleep_for(100us);  // online, not quiescent
      me->quiescent();
      while (!stop) std::this_thread::sleep_for(100us);
    });
  }
  while (d.participants() < kThreads) std::this_thread::yield();
  std::atomic<bool> synchronized{false};
  std::thread sync([&] {
    ASSERT_TRUE(d.synchronize(30s).has_value());
    synchronized = true;
  });
  for (int i = 0; i < kThreads; ++i) {
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(synchronized.load()) << "returned while participant " << i << " was not quiescent";
    allowed = i + 1;
  }
  sync.join();
  EXPECT_TRUE(synchronized.load());
  stop = true;
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace jitkit::patch
