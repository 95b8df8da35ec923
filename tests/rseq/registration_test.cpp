// Registration, coexistence with glibc, and the fallback, tested in this process (where glibc
// 2.35+ has registered every thread) and in re-executed child processes:
//   own                  GLIBC_TUNABLES=glibc.pthread.rseq=0: nobody registered, jitkit must
//                        register its own area (once per thread) and unregister it at exit.
//   seccomp              the same, plus a seccomp filter answering ENOSYS to rseq(2): jitkit must
//                        take the fallback path, and every operation must stay exact.
//   seccomp_glibc_tried  the filter without the tunable: glibc's registration fails first.
// A child runs from a constructor before gtest starts and exits with 0 when all its checks hold.
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "jitkit/base/platform.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/rseq/jit.h"
#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"
#include "rseq/registry_p.h"
#include "rseq/test_hooks_p.h"
#include "rseq/workloads_p.h"

extern "C" {
extern const unsigned int __rseq_size __attribute__((weak));
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
}

namespace jitkit::rseq {
namespace {

constexpr const char* kChildEnv = "JITKIT_RSEQ_TEST_CHILD";

// --- child side ------------------------------------------------------------------------------

int failures = 0;
#define CHILD_CHECK(cond)                                                           \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "child check failed at line %d: %s\n", __LINE__, #cond); \
      ++failures;                                                                   \
    }                                                                               \
  } while (0)

void child_run_workloads(bool expect_rseq) {
  // Seven workloads per child: half a stress scenario each (1 s by default).
  const double seconds = test_util::stress_seconds() / 2;
  test_hooks::inject_spins = 2000;
  PerCpuCounter counter;
  auto c =
      test_util::counter_workload([&](std::int64_t d) { test_hooks::add_with_injected_delay(counter, d); },
                                  [&] { return counter.value(); }, seconds);
  CHILD_CHECK(c.expected > 0);
  CHILD_CHECK(c.observed == c.expected);
  if (expect_rseq) CHILD_CHECK(c.aborts > 0);
  if (!expect_rseq) CHILD_CHECK(c.aborts == 0);
  PerCpuList list;
  auto l = test_util::list_workload(list, true, seconds);
  CHILD_CHECK(l.pops > 0);
  CHILD_CHECK(l.double_pops == 0 && l.missing == 0 && l.duplicates == 0);
  CHILD_CHECK(l.found_once == l.nodes);
  auto pool = PerCpuPool::create(32);
  CHILD_CHECK(bool(pool));
  if (pool) {
    auto p = test_util::pool_workload(**pool, true, seconds);
    CHILD_CHECK(p.allocations > 0 && p.double_handouts == 0 && p.null_allocations == 0);
  }
  // The JIT-emitted sections take the same paths (their own sections, or the fallback).
  auto zone = code::CodeZone::create();
  CHILD_CHECK(bool(zone));
  if (zone) {
    auto jit = JitCounterAdd::create(**zone);
    CHILD_CHECK(bool(jit));
    if (jit) {
      PerCpuCounter jc;
      auto j = test_util::counter_workload([&](std::int64_t d) { (*jit)->add(jc, d); },
                                           [&] { return jc.value(); }, seconds);
      CHILD_CHECK(j.expected > 0 && j.observed == j.expected);
      if (!expect_rseq) CHILD_CHECK(j.aborts == 0);
    }
    auto ops = JitListOps::create(**zone);
    CHILD_CHECK(bool(ops));
    if (ops) {
      PerCpuList jl;
      test_util::ListOps via_jit{[&](PerCpuList::Node* n) { (*ops)->push(jl, n); },
                                 [&] { return (*ops)->pop(jl); }};
      auto r = test_util::list_workload(jl, via_jit, seconds);
      CHILD_CHECK(r.pops > 0 && r.double_pops == 0 && r.missing == 0 && r.duplicates == 0);
    }
  }
  PerCpuWord word;
  auto w = test_util::percpu_lock_workload(word, true, seconds);
  CHILD_CHECK(w.acquisitions > 0 && w.protected_sum == w.acquisitions);
  std::printf("child workloads: counter %lld (aborts %llu), list pops %llu, lock %llu\n",
              static_cast<long long>(c.observed), static_cast<unsigned long long>(c.aborts),
              static_cast<unsigned long long>(l.pops), static_cast<unsigned long long>(w.acquisitions));
}

int child_own() {
  const ProcessStatus& p = process_status();
  CHILD_CHECK(p.rseq_enabled);
  CHILD_CHECK(!p.glibc_owns_registration);
  ThreadStatus t = ensure_registered();
  CHILD_CHECK(t.owner == Owner::kJitkit);
  CHILD_CHECK(t.area != nullptr);
  if (t.area == nullptr) return 1;
  // The kernel fills the area: cpu_id is a real CPU.
  CHILD_CHECK(static_cast<std::int32_t>(t.area->cpu_id) >= 0);
  CHILD_CHECK(t.area->cpu_id < platform_facts().possible_cpus);
  // Idempotent: the same area, no second registration.
  ThreadStatus again = ensure_registered();
  CHILD_CHECK(again.area == t.area && again.owner == Owner::kJitkit);
  // The kernel has exactly this area registered: registering it again is EBUSY.
  errno = 0;
  CHILD_CHECK(syscall(SYS_rseq, t.area, sizeof(RseqArea), 0, kSignature) == -1 && errno == EBUSY);
  // Other threads register their own area, and unregister it at exit (leaving the registry).
  std::size_t before = detail::registry().size();
  RseqArea* other = nullptr;
  std::thread th([&] {
    ThreadStatus s = ensure_registered();
    other = s.area;
    CHILD_CHECK(s.owner == Owner::kJitkit);
  });
  th.join();
  CHILD_CHECK(other != nullptr && other != t.area);
  CHILD_CHECK(detail::registry().size() == before);
  child_run_workloads(true);
  return failures == 0 ? 0 : 1;
}

int child_fallback() {
  const ProcessStatus& p = process_status();
  CHILD_CHECK(!p.rseq_enabled);
  CHILD_CHECK(p.fallback_reason.find("ENOSYS") != std::string::npos);
  std::printf("child fallback reason: %s\n", p.fallback_reason.c_str());
  ThreadStatus t = ensure_registered();
  CHILD_CHECK(t.owner == Owner::kNone && t.area == nullptr);
  child_run_workloads(false);
  return failures == 0 ? 0 : 1;
}

__attribute__((constructor)) void child_entry() {
  const char* mode = std::getenv(kChildEnv);
  if (mode == nullptr) return;
  std::string m(mode);
  unsetenv(kChildEnv);
  int rc = 2;
  if (m == "own") rc = child_own();
  if (m == "seccomp" || m == "seccomp_glibc_tried") rc = child_fallback();
  std::fflush(stdout);
  _exit(rc);
}

// --- parent side -----------------------------------------------------------------------------

// Installs a filter answering ENOSYS to rseq(2), as an old kernel, valgrind or rr would.
bool install_rseq_enosys_filter() {
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rseq, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof(code) / sizeof(code[0])), code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

// Re-executes this test binary in child `mode`; returns its exit status (or -1).
int run_child(const char* mode, bool glibc_rseq_off, bool seccomp) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (seccomp && !install_rseq_enosys_filter()) _exit(3);
    setenv(kChildEnv, mode, 1);
    if (glibc_rseq_off) setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
    char* argv[] = {const_cast<char*>("rseq_registration_test"), nullptr};
    execv("/proc/self/exe", argv);
    _exit(4);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Registration, UsesGlibcAreaWhenGlibcRegisteredOne) {
  const ProcessStatus& p = process_status();
  if (!p.glibc_owns_registration) {
    GTEST_SKIP() << "this glibc did not register rseq (__rseq_size == 0); "
                    "the own-registration child covers that case";
  }
  if (!p.rseq_enabled) GTEST_SKIP() << "rseq unavailable: " << p.fallback_reason;
  ThreadStatus t = ensure_registered();
  ASSERT_EQ(t.owner, Owner::kGlibc);
  auto* expected =
      reinterpret_cast<RseqArea*>(static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset);
  EXPECT_EQ(t.area, expected);
  // The kernel allows one area per thread and glibc's is it: jitkit did not register another
  // (a different area is refused with EINVAL, the same one with EBUSY).
  alignas(32) static thread_local RseqArea probe{};
  errno = 0;
  EXPECT_EQ(syscall(SYS_rseq, &probe, sizeof(RseqArea), 0, kSignature), -1);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(syscall(SYS_rseq, expected, sizeof(RseqArea), 0, kSignature), -1);
  EXPECT_EQ(errno, EBUSY);
  EXPECT_EQ(p.glibc_rseq_size, __rseq_size);
}

TEST(Registration, FeatureSizeAndIndexFollowTheKernel) {
  const ProcessStatus& p = process_status();
  unsigned long aux = getauxval(27 /* AT_RSEQ_FEATURE_SIZE */);
  EXPECT_EQ(p.feature_size, aux != 0 ? aux : 20u);
  EXPECT_EQ(p.index == CpuIndex::kMmCid, p.feature_size >= 28);
  EXPECT_EQ(p.slots, platform_facts().possible_cpus);
  ThreadStatus t = ensure_registered();
  if (!p.rseq_enabled) GTEST_SKIP() << "rseq unavailable: " << p.fallback_reason;
  ASSERT_NE(t.area, nullptr);
  // Pin to each allowed CPU in turn: the kernel-owned cpu_id follows, mm_cid stays in range.
  cpu_set_t old_set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(old_set), &old_set), 0);
  int checked = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && checked < 4; ++cpu) {
    if (!CPU_ISSET(cpu, &old_set)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
    sched_yield();
    EXPECT_EQ(static_cast<int>(__atomic_load_n(&t.area->cpu_id, __ATOMIC_RELAXED)), cpu);
    if (p.index == CpuIndex::kMmCid) {
      EXPECT_LT(__atomic_load_n(&t.area->mm_cid, __ATOMIC_RELAXED), p.slots);
    }
    ++checked;
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(old_set), &old_set), 0);
  EXPECT_GT(checked, 0);
}

TEST(Registration, ForcingUnavailableAfterFirstUseIsRefused) {
  PerCpuCounter c;
  c.add(1);
  if (!process_status().rseq_enabled) GTEST_SKIP() << process_status().fallback_reason;
  Status s = test_hooks::force_unavailable();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidState);
}

TEST(RegistrationChild, JitkitRegistersItsOwnAreaWhenGlibcDoesNot) {
  // The child needs what this process lacks when rseq is unavailable here.
  if (!process_status().rseq_enabled) {
    GTEST_SKIP() << "rseq unavailable: " << process_status().fallback_reason;
  }
  EXPECT_EQ(run_child("own", /*glibc_rseq_off=*/true, /*seccomp=*/false), 0);
}

TEST(RegistrationChild, SeccompEnosysTakesTheFallbackAndStaysExact) {
  EXPECT_EQ(run_child("seccomp", /*glibc_rseq_off=*/true, /*seccomp=*/true), 0);
}

TEST(RegistrationChild, SeccompEnosysAfterGlibcTriedTakesTheFallback) {
  EXPECT_EQ(run_child("seccomp_glibc_tried", /*glibc_rseq_off=*/false, /*seccomp=*/true), 0);
}

}  // namespace
}  // namespace jitkit::rseq
