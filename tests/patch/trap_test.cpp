// tests/patch/trap_test.cpp — jitkit's SIGTRAP handler passes every trap that is not one of its
// breakpoints to the disposition installed before it: an SA_SIGINFO handler, a plain handler,
// SIG_DFL (the process dies of SIGTRAP) and SIG_IGN (kill/raise ignored, an int3 fatal as the
// kernel makes it). Also: a Patcher refuses a breakpoint round when its handler was replaced.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>

#include "jitkit/patch/patcher.h"
#include "jitkit/patch/trap.h"
#include "patch_test_util_p.h"

namespace jitkit::patch {
namespace {

std::atomic<int> g_siginfo_calls{0};
std::atomic<int> g_last_si_code{0};
std::atomic<int> g_plain_calls{0};

void siginfo_handler(int, siginfo_t* info, void*) {
  g_siginfo_calls.fetch_add(1);
  g_last_si_code.store(info->si_code);
}
void plain_handler(int) { g_plain_calls.fetch_add(1); }

void set_disposition(void (*plain)(int), void (*info)(int, siginfo_t*, void*)) {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  if (info != nullptr) {
    sa.sa_sigaction = info;
    sa.sa_flags = SA_SIGINFO;
  } else {
    sa.sa_handler = plain;
  }
  ASSERT_EQ(sigaction(SIGTRAP, &sa, nullptr), 0);
}

void execute_int3() { asm volatile("int3" ::: "memory"); }

TEST(TrapForwarding, SiginfoHandlerGetsRaisedAndInstructionTraps) {
  set_disposition(nullptr, &siginfo_handler);
  EXPECT_FALSE(trap_handler_installed());
  ASSERT_TRUE(install_trap_handler());
  EXPECT_TRUE(trap_handler_installed());
  const auto before = trap_stats();
  g_siginfo_calls = 0;
  raise(SIGTRAP);
  EXPECT_EQ(g_siginfo_calls.load(), 1);
  EXPECT_EQ(g_last_si_code.load(), SI_TKILL);
  execute_int3();  // not in any patched zone: forwarded, and execution continues after it
  EXPECT_EQ(g_siginfo_calls.load(), 2);
  EXPECT_EQ(g_last_si_code.load(), SI_KERNEL);
  EXPECT_EQ(trap_stats().forwarded, before.forwarded + 2);
}

TEST(TrapForwarding, PlainHandlerGetsThem) {
  set_disposition(&plain_handler, nullptr);
  ASSERT_TRUE(install_trap_handler());
  g_plain_calls = 0;
  raise(SIGTRAP);
  execute_int3();
  EXPECT_EQ(g_plain_calls.load(), 2);
}

TEST(TrapForwarding, InstallIsIdempotent) {
  set_disposition(&plain_handler, nullptr);
  ASSERT_TRUE(install_trap_handler());
  ASSERT_TRUE(install_trap_handler());  // must not capture itself as the previous handler
  g_plain_calls = 0;
  execute_int3();
  EXPECT_EQ(g_plain_calls.load(), 1);
}

TEST(TrapForwardingDeathTest, DefaultDispositionStillKillsWithSigtrap) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        set_disposition(SIG_DFL, nullptr);
        if (!install_trap_handler()) _exit(3);
        std::fprintf(stderr, "installed\n");
        execute_int3();
        _exit(0);  // not reached: SIGTRAP's default action terminates
      },
      ::testing::KilledBySignal(SIGTRAP), "installed");
}

TEST(TrapForwardingDeathTest, IgnoredDispositionIgnoresRaiseButNotInt3) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        set_disposition(SIG_IGN, nullptr);
        if (!install_trap_handler()) _exit(3);
        raise(SIGTRAP);
        std::fprintf(stderr, "survived raise\n");
        execute_int3();
        _exit(0);
      },
      ::testing::KilledBySignal(SIGTRAP), "survived raise");
}

TEST(TrapForwarding, PatcherRefusesBreakpointsWhenItsHandlerWasReplaced) {
  auto zone = test_util::make_zone_near_binary(1u << 20);
  ASSERT_NE(zone, nullptr);
  auto patcher = Patcher::create(*zone);
  ASSERT_TRUE(patcher.has_value()) << patcher.error().message();
  auto stub = test_util::make_caller(*zone, test_util::addr(test_util::kTargets[0]), 9);
  set_disposition(&plain_handler, nullptr);  // another library takes SIGTRAP over
  auto r =
      (*patcher)->retarget_by_breakpoint(stub.site, reinterpret_cast<const void*>(test_util::kTargets[1]));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidState);
  EXPECT_NE(r.error().message().find("SIGTRAP handler was replaced"), std::string::npos);
  EXPECT_EQ(stub.fn()(nullptr), 1);
  ASSERT_TRUE(install_trap_handler());  // chain to it
  auto r2 =
      (*patcher)->retarget_by_breakpoint(stub.site, reinterpret_cast<const void*>(test_util::kTargets[1]));
  ASSERT_TRUE(r2.has_value()) << r2.error().message();
  EXPECT_EQ(stub.fn()(nullptr), 2);
}

}  // namespace
}  // namespace jitkit::patch
