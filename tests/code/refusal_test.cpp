// Code zones under real refusals: vm.memfd_noexec, noexec /dev/shm and $TMPDIR, a seccomp
// filter that refuses memfd_create, one that refuses executable anonymous and private memory
// the way SELinux execmem does, all of them at once, and a refused membarrier.
//
// Each condition is made for real in a child process (code_zone_refusal_child, built from
// refusal_child.cpp) inside its own mount and PID namespaces, so nothing leaks into this process
// or into tests running in parallel. The child reports key=value lines through a pipe; the
// assertions are here. Where the kernel or the container cannot make a condition (no
// namespaces, not root, no seccomp), the child says why and the test is reported as skipped.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "jitkit/base/platform.h"
#include "jitkit/base/result.h"

namespace jitkit::code {
namespace {

struct ChildReport {
  std::multimap<std::string, std::string> facts;
  std::string raw;
  int exit_status = -1;

  bool has(const std::string& key) const { return facts.count(key) != 0; }
  std::string get(const std::string& key) const {
    auto it = facts.find(key);
    return it == facts.end() ? std::string("<absent>") : it->second;
  }
  std::vector<std::string> all(const std::string& key) const {
    std::vector<std::string> out;
    for (auto [it, end] = facts.equal_range(key); it != end; ++it) out.push_back(it->second);
    return out;
  }
};

// Runs the child with `args` and collects its report.
ChildReport run_child(std::vector<std::string> args) {
  ChildReport r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  args.insert(args.begin(), JITKIT_REFUSAL_CHILD);
  // A child that enters a new PID namespace (--memfd-noexec) ends as the namespace's init, where
  // LeakSanitizer's exit-time check cannot stop the world and aborts the process (a sanitizer
  // limitation, not a leak). Leak checking is off for that child only; ASan proper stays on.
  bool new_pid_namespace = false;
  for (const std::string& a : args) new_pid_namespace |= a.rfind("--memfd-noexec", 0) == 0;
  std::string asan_options = "detect_leaks=0";
  if (const char* inherited = std::getenv("ASAN_OPTIONS"))
    asan_options = std::string(inherited) + ":" + asan_options;
  const pid_t pid = fork();
  if (pid == 0) {
    if (new_pid_namespace) setenv("ASAN_OPTIONS", asan_options.c_str(), 1);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) r.raw.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::size_t at = 0;
  while (at < r.raw.size()) {
    std::size_t eol = r.raw.find('\n', at);
    if (eol == std::string::npos) eol = r.raw.size();
    const std::string line = r.raw.substr(at, eol - at);
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) r.facts.emplace(line.substr(0, eq), line.substr(eq + 1));
    at = eol + 1;
  }
  return r;
}

#define RUN_CHILD_OR_SKIP(report, ...)                                                          \
  const ChildReport report = run_child({__VA_ARGS__});                                          \
  if (report.has("skip")) GTEST_SKIP() << "condition unavailable here: " << report.get("skip"); \
  ASSERT_EQ(report.exit_status, 0) << report.raw;

// "<strerror> (errno N)", as Error::from_errno writes it.
std::string errno_text(int e) { return std::string(std::strerror(e)) + " (errno " + std::to_string(e) + ")"; }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Linux 6.3 introduced MFD_EXEC / MFD_NOEXEC_SEAL and vm.memfd_noexec.
bool kernel_has_memfd_exec_flags() {
  int major = 0, minor = 0;
  std::sscanf(platform_facts().kernel_release.c_str(), "%d.%d", &major, &minor);
  return major > 6 || (major == 6 && minor >= 3);
}

// The checks every working zone passes: the code ran and no page is writable and executable.
void expect_code_runs_without_wx(const ChildReport& r) {
  EXPECT_EQ(r.get("call"), "42") << r.raw;
  EXPECT_EQ(r.get("wx"), "none") << r.raw;
}

class MemfdNoexecSysctl : public ::testing::TestWithParam<int> {};

// vm.memfd_noexec only governs whether a memfd may become an executable program. The zone's
// memfd is sealed non-executable (MFD_NOEXEC_SEAL) and only mapped, so it stays dual-mapped on
// memfd, and detection says what the sysctl does.
TEST_P(MemfdNoexecSysctl, ZoneStaysDualMappedOnMemfdAndDetectionTellsTheTruth) {
  if (!kernel_has_memfd_exec_flags()) GTEST_SKIP() << "vm.memfd_noexec needs Linux 6.3+";
  const int value = GetParam();
  RUN_CHILD_OR_SKIP(r, "--memfd-noexec=" + std::to_string(value));
  EXPECT_EQ(r.get("detect.noexec_sysctl"), std::to_string(value)) << r.raw;
  EXPECT_EQ(r.get("detect.available"), "1");
  EXPECT_EQ(r.get("detect.mfd_exec_flag"), "1") << "MFD_EXEC is known on every kernel >= 6.3: " << r.raw;
  EXPECT_EQ(r.get("detect.exec_refused"), value == 2 ? "1" : "0") << r.raw;
  ASSERT_EQ(r.get("zone"), "ok") << r.raw;
  EXPECT_EQ(r.get("mode"), "dual-mapped");
  EXPECT_EQ(r.get("backing"), "memfd");
  EXPECT_TRUE(r.all("reason").empty()) << r.raw;
  expect_code_runs_without_wx(r);
}

INSTANTIATE_TEST_SUITE_P(Values, MemfdNoexecSysctl, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& p) {
                           return "Is" + std::to_string(p.param);
                         });

TEST(RealRefusal, RefusedMemfdFallsBackToAnUnlinkedPosixShmObject) {
  RUN_CHILD_OR_SKIP(r, "--refuse-memfd", "--private-mounts");
  ASSERT_EQ(r.get("zone"), "ok") << r.raw;
  EXPECT_EQ(r.get("mode"), "dual-mapped");
  EXPECT_EQ(r.get("backing"), "posix-shm");
  const auto reasons = r.all("reason");
  ASSERT_EQ(reasons.size(), 1u) << r.raw;
  EXPECT_TRUE(contains(reasons[0], "dual mapping on memfd failed: memfd_create(")) << reasons[0];
  EXPECT_TRUE(contains(reasons[0], errno_text(EPERM))) << reasons[0];
  // The object is unlinked at once: nothing named after the zone remains in /dev/shm.
  EXPECT_TRUE(contains(r.get("path"), "(deleted)")) << r.raw;
  expect_code_runs_without_wx(r);
}

TEST(RealRefusal, NoexecShmAndRefusedMemfdLeaveAnUnlinkedTmpFile) {
  RUN_CHILD_OR_SKIP(r, "--refuse-memfd", "--noexec-shm");
  EXPECT_EQ(r.get("detect.available"), "0") << r.raw;
  ASSERT_EQ(r.get("zone"), "ok") << r.raw;
  EXPECT_EQ(r.get("mode"), "dual-mapped");
  EXPECT_EQ(r.get("backing"), "tmpfile");
  const auto reasons = r.all("reason");
  ASSERT_EQ(reasons.size(), 2u) << r.raw;
  EXPECT_TRUE(contains(reasons[0], "dual mapping on memfd failed: memfd_create(")) << reasons[0];
  EXPECT_TRUE(contains(reasons[0], errno_text(EPERM))) << reasons[0];
  EXPECT_TRUE(contains(reasons[1], "dual mapping on posix-shm failed: mmap(")) << reasons[1];
  EXPECT_TRUE(contains(reasons[1], "r-x")) << reasons[1];
  EXPECT_TRUE(contains(reasons[1], errno_text(EPERM))) << reasons[1];
  EXPECT_TRUE(contains(reasons[1], "[/dev/shm is mounted noexec]")) << reasons[1];
  EXPECT_TRUE(contains(r.get("path"), "(deleted)")) << "the file must have no name: " << r.raw;
  expect_code_runs_without_wx(r);
}

TEST(RealRefusal, NoexecShmAndTmpdirAndRefusedMemfdLeaveToggledMode) {
  RUN_CHILD_OR_SKIP(r, "--refuse-memfd", "--noexec-shm", "--noexec-tmp");
  ASSERT_EQ(r.get("zone"), "ok") << r.raw;
  EXPECT_EQ(r.get("mode"), "toggled");
  const auto reasons = r.all("reason");
  ASSERT_EQ(reasons.size(), 3u) << r.raw;
  EXPECT_TRUE(contains(reasons[0], "memfd_create(") && contains(reasons[0], errno_text(EPERM))) << reasons[0];
  EXPECT_TRUE(contains(reasons[1], "posix-shm") && contains(reasons[1], "[/dev/shm is mounted noexec]"))
      << reasons[1];
  EXPECT_TRUE(contains(reasons[2], "dual mapping on tmpfile failed: mmap(")) << reasons[2];
  EXPECT_TRUE(contains(reasons[2], errno_text(EPERM)) && contains(reasons[2], "[/tmp is mounted noexec]"))
      << reasons[2];
  expect_code_runs_without_wx(r);
  // Forcing dual mapping under the same condition is a clear error that lists every backing.
  RUN_CHILD_OR_SKIP(dual, "--refuse-memfd", "--noexec-shm", "--noexec-tmp", "--force=dual");
  ASSERT_EQ(dual.get("zone"), "error") << dual.raw;
  EXPECT_EQ(dual.get("error.code"), std::to_string(static_cast<int>(ErrorCode::kPermissionDenied)));
  for (const char* part : {"no usable mode", "memfd", "posix-shm", "tmpfile"}) {
    EXPECT_TRUE(contains(dual.get("error"), part)) << dual.raw;
  }
}

TEST(RealRefusal, ExecmemFilterKeepsDualMappingOfASharedFile) {
  RUN_CHILD_OR_SKIP(r, "--execmem");
  ASSERT_EQ(r.get("zone"), "ok") << r.raw;
  EXPECT_EQ(r.get("mode"), "dual-mapped");
  EXPECT_EQ(r.get("backing"), "memfd");
  EXPECT_TRUE(r.all("reason").empty()) << r.raw;
  expect_code_runs_without_wx(r);
  // The filter is in force: the same condition refuses toggled mode, whose pages are private.
  RUN_CHILD_OR_SKIP(toggled, "--execmem", "--force=toggled");
  ASSERT_EQ(toggled.get("zone"), "error") << toggled.raw;
  EXPECT_EQ(toggled.get("error.code"), std::to_string(static_cast<int>(ErrorCode::kPermissionDenied)));
  EXPECT_TRUE(contains(toggled.get("error"), "toggled mode failed: mprotect(")) << toggled.raw;
  EXPECT_TRUE(contains(toggled.get("error"), errno_text(EACCES))) << toggled.raw;
}

TEST(RealRefusal, EverythingRefusedIsAClearErrorWithEveryStepAndWhatToChange) {
  RUN_CHILD_OR_SKIP(r, "--refuse-memfd", "--noexec-shm", "--noexec-tmp", "--execmem");
  ASSERT_EQ(r.get("zone"), "error") << r.raw;
  EXPECT_EQ(r.get("error.code"), std::to_string(static_cast<int>(ErrorCode::kPermissionDenied)));
  const std::string e = r.get("error");
  for (const std::string& part : {
           std::string("dual mapping on memfd failed: memfd_create("),
           errno_text(EPERM),
           std::string("dual mapping on posix-shm failed"),
           std::string("[/dev/shm is mounted noexec]"),
           std::string("dual mapping on tmpfile failed"),
           std::string("[/tmp is mounted noexec]"),
           std::string("toggled mode failed: mprotect("),
           errno_text(EACCES),
           std::string("RWX not allowed (ZoneOptions::allow_rwx)"),
           // What an administrator can change, one suggestion per refused step.
           std::string("An administrator can"),
           std::string("allow memfd_create"),
           std::string("remount /dev/shm without noexec"),
           std::string("mount /tmp without noexec"),
           std::string("deny_execmem"),
       }) {
    EXPECT_TRUE(contains(e, part)) << "missing \"" << part << "\" in: " << e;
  }
}

TEST(RealRefusal, RwxUnderTheExecmemFilterIsAClearRefusal) {
  RUN_CHILD_OR_SKIP(r, "--execmem", "--force=rwx");
  ASSERT_EQ(r.get("zone"), "error") << r.raw;
  EXPECT_EQ(r.get("error.code"), std::to_string(static_cast<int>(ErrorCode::kPermissionDenied)));
  const std::string e = r.get("error");
  EXPECT_TRUE(contains(e, "rwx mode failed: mprotect(")) << e;
  EXPECT_TRUE(contains(e, ", rwx)")) << e;
  EXPECT_TRUE(contains(e, errno_text(EACCES))) << e;
  EXPECT_TRUE(contains(e, "allow writable and executable memory")) << e;
  EXPECT_TRUE(contains(e, "use dual mapping instead of RWX")) << e;
}

TEST(RealRefusal, RefusedMembarrierIsReportedByMakeExecutableForOtherThreads) {
  RUN_CHILD_OR_SKIP(r, "--refuse-membarrier");
  ASSERT_EQ(r.get("zone"), "ok") << r.raw;
  expect_code_runs_without_wx(r);  // kThisThread needs no membarrier
  EXPECT_EQ(r.get("cross_core_sync_available"), "0") << r.raw;
  EXPECT_EQ(r.get("other_threads.code"), std::to_string(static_cast<int>(ErrorCode::kUnsupported))) << r.raw;
  EXPECT_TRUE(contains(r.get("other_threads"), "membarrier")) << r.raw;
  EXPECT_TRUE(contains(r.get("other_threads"), errno_text(ENOSYS))) << r.raw;
}

}  // namespace
}  // namespace jitkit::code
