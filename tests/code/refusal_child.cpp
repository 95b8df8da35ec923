// code_zone_refusal_child: creates a code zone under one real refusal and reports what happened.
//
// refusal_test.cpp runs this program once per condition. It is a separate process so that the
// namespaces, mounts, sysctl and seccomp filter it sets up never touch the test process or other
// tests running in parallel, and so that platform detection and the one-time membarrier
// registration start fresh under the condition. Options (any combination):
//   --memfd-noexec=N   a new PID namespace with vm.memfd_noexec=N
//   --private-mounts   a private mount namespace with fresh tmpfs on /dev/shm and /tmp
//   --noexec-shm       the same, with /dev/shm mounted noexec
//   --noexec-tmp       the same, with /tmp mounted noexec; TMPDIR=/tmp in every case
//   --refuse-memfd     seccomp: memfd_create fails with EPERM
//   --execmem          seccomp: no PROT_EXEC on anonymous or private memory (refusal_filter_p.h)
//   --refuse-membarrier seccomp: membarrier fails with ENOSYS
//   --force=dual|toggled|rwx  ZoneOptions::force_mode (rwx also sets allow_rwx)
// The first three need a mount namespace (and root); the seccomp ones alone need neither.
// Output: one "key=value" line per fact (see report()); "skip=<why>" when the kernel or the
// container cannot make the condition, in which case the test skips and prints why.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "code/maps_util_p.h"
#include "code/refusal_filter_p.h"
#include "jitkit/base/platform.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/code/sync.h"

namespace {

using namespace jitkit::code;

struct Condition {
  int memfd_noexec = -1;
  bool private_mounts = false, noexec_shm = false, noexec_tmp = false;
  test_util::Refusals refusals;
  const char* force = nullptr;
};

[[noreturn]] void skip(const std::string& why, int err) {
  std::printf("skip=%s: %s (errno %d)\n", why.c_str(), std::strerror(err), err);
  std::exit(0);
}

void mount_tmpfs(const char* where, bool noexec) {
  const unsigned long flags = MS_NOSUID | MS_NODEV | (noexec ? MS_NOEXEC : 0);
  if (mount("jitkit-test", where, "tmpfs", flags, "size=16m,mode=1777") != 0) {
    skip(std::string("mount tmpfs on ") + where, errno);
  }
}

// Enters a private mount namespace (and a PID namespace when the sysctl is wanted) and sets up
// the mounts. With a PID namespace the caller continues in a child, PID 1 of the namespace.
void enter_namespaces(const Condition& c) {
  const int flags = CLONE_NEWNS | (c.memfd_noexec >= 0 ? CLONE_NEWPID : 0);
  if (unshare(flags) != 0)
    skip(c.memfd_noexec >= 0 ? "unshare(CLONE_NEWNS|CLONE_NEWPID)" : "unshare(CLONE_NEWNS)", errno);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) skip("making / private", errno);
  mount_tmpfs("/dev/shm", c.noexec_shm);
  mount_tmpfs("/tmp", c.noexec_tmp);
  setenv("TMPDIR", "/tmp", 1);
  if (c.memfd_noexec < 0) return;
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) skip("fork into the PID namespace", errno);
  if (pid > 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    std::exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    skip("mount /proc", errno);
  const int fd = open("/proc/sys/vm/memfd_noexec", O_WRONLY | O_CLOEXEC);
  if (fd < 0) skip("open /proc/sys/vm/memfd_noexec (kernel < 6.3?)", errno);
  const std::string value = std::to_string(c.memfd_noexec);
  if (write(fd, value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    skip("vm.memfd_noexec=" + value + " (a namespace can only tighten its parent's value)", errno);
  }
  close(fd);
}

// Flattens a message to one line.
std::string one_line(std::string s) {
  for (char& ch : s) {
    if (ch == '\n') ch = ' ';
  }
  return s;
}

int report(const Condition& c) {
  const jitkit::MemfdSupport m = jitkit::detect_memfd();
  std::printf(
      "detect.available=%d\ndetect.mfd_exec_flag=%d\ndetect.exec_refused=%d\ndetect.noexec_sysctl=%d\n",
      m.available, m.mfd_exec_flag, m.exec_refused, m.noexec_sysctl);
  ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  if (c.force != nullptr && std::strcmp(c.force, "dual") == 0) o.force_mode = ZoneMode::kDualMapped;
  if (c.force != nullptr && std::strcmp(c.force, "toggled") == 0) o.force_mode = ZoneMode::kToggled;
  if (c.force != nullptr && std::strcmp(c.force, "rwx") == 0) {
    o.force_mode = ZoneMode::kRwx;
    o.allow_rwx = true;
  }
  auto made = CodeZone::create(o);
  if (!made) {
    std::printf("zone=error\nerror.code=%d\nerror=%s\n", static_cast<int>(made.error().code()),
                one_line(made.error().message()).c_str());
    return 0;
  }
  CodeZone& zone = **made;
  std::printf("zone=ok\nmode=%s\n", std::string(mode_name(zone.mode())).c_str());
  if (zone.mode() == ZoneMode::kDualMapped)
    std::printf("backing=%s\n", std::string(backing_name(zone.backing())).c_str());
  for (const std::string& r : zone.fallback_reasons()) std::printf("reason=%s\n", one_line(r).c_str());
  // mov eax, 6 ; imul eax, eax, 7 ; ret
  const std::uint8_t bytes[] = {0xB8, 0x06, 0x00, 0x00, 0x00, 0x6B, 0xC0, 0x07, 0xC3};
  auto block = zone.allocate(sizeof bytes);
  if (!block || !zone.write(block->exec, bytes, sizeof bytes) ||
      !zone.make_executable(*block, Visibility::kThisThread)) {
    std::printf("call=failed\n");
    return 0;
  }
  std::printf("call=%d\n", reinterpret_cast<int (*)()>(block->exec)());
  const auto maps = test_util::read_maps();
  if (const auto* mapping = test_util::find_mapping(maps, reinterpret_cast<std::uintptr_t>(block->exec))) {
    std::printf("path=%s\n", mapping->path.c_str());
  }
  jitkit::Status other = zone.make_executable(*block, Visibility::kOtherThreads);
  std::printf("other_threads=%s\n", other ? "ok" : one_line(other.error().message()).c_str());
  if (!other) std::printf("other_threads.code=%d\n", static_cast<int>(other.error().code()));
  std::printf("cross_core_sync_available=%d\n", cross_core_sync_available());
  const std::string wx = test_util::writable_and_executable_mappings();
  std::printf("wx=%s\n", wx.empty() ? "none" : one_line(wx).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  alarm(20);  // bounded: a hang fails the test instead of stalling it
  Condition c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--memfd-noexec=", 0) == 0) {
      c.memfd_noexec = std::atoi(a.c_str() + 15);
    } else if (a == "--private-mounts") {
      c.private_mounts = true;
    } else if (a == "--noexec-shm") {
      c.noexec_shm = true;
    } else if (a == "--noexec-tmp") {
      c.noexec_tmp = true;
    } else if (a == "--refuse-memfd") {
      c.refusals.memfd = true;
    } else if (a == "--execmem") {
      c.refusals.execmem = true;
    } else if (a == "--refuse-membarrier") {
      c.refusals.membarrier = true;
    } else if (a.rfind("--force=", 0) == 0) {
      c.force = argv[i] + 8;
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (c.memfd_noexec >= 0 || c.private_mounts || c.noexec_shm || c.noexec_tmp) enter_namespaces(c);
  if (c.refusals.memfd || c.refusals.execmem || c.refusals.membarrier) {
    if (const int e = test_util::install_refusal_filter(c.refusals); e != 0) skip("seccomp filter", e);
  }
  return report(c);
}
