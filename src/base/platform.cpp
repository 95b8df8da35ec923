// Run-time detection of the platform facts in jitkit/base/platform.h. Every probe is
// side-effect free: it creates and closes a memfd at most, and never registers anything.
#include "jitkit/base/platform.h"

#include <linux/membarrier.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif
#ifndef AT_RSEQ_ALIGN
#define AT_RSEQ_ALIGN 28
#endif

// glibc 2.35+ exports its rseq registration. Weak, so that an older glibc still links and the
// addresses are simply null there.
extern "C" {
extern const unsigned int __rseq_size __attribute__((weak));
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
}

namespace jitkit {
namespace {

long read_long_file(const char* path, long fallback) {
  std::ifstream in(path);
  long value = fallback;
  if (in && (in >> value)) return value;
  return fallback;
}

// Parses a CPU list such as "0-3,8-11" and returns highest + 1.
unsigned parse_cpu_list_extent(const std::string& list) {
  unsigned extent = 0;
  std::size_t pos = 0;
  while (pos < list.size()) {
    std::size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    std::string range = list.substr(pos, end - pos);
    std::size_t dash = range.find('-');
    const std::string last = dash == std::string::npos ? range : range.substr(dash + 1);
    if (!last.empty()) {
      unsigned hi = static_cast<unsigned>(std::stoul(last));
      if (hi + 1 > extent) extent = hi + 1;
    }
    pos = end + 1;
  }
  return extent;
}

}  // namespace

std::size_t detect_page_size() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

std::size_t detect_cache_line_size() {
  long line = sysconf(_SC_LEVEL1_DCACHE_LINESIZE);
  if (line <= 0) line = read_long_file("/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size", 0);
  return line > 0 ? static_cast<std::size_t>(line) : 64;  // x86-64 lines are 64 bytes
}

unsigned detect_possible_cpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string list;
  if (in && std::getline(in, list)) {
    unsigned n = parse_cpu_list_extent(list);
    if (n > 0) return n;
  }
  long conf = sysconf(_SC_NPROCESSORS_CONF);
  return conf > 0 ? static_cast<unsigned>(conf) : 1;
}

MemfdSupport detect_memfd() {
  MemfdSupport s;
  s.noexec_sysctl = static_cast<int>(read_long_file("/proc/sys/vm/memfd_noexec", -1));
  int fd = static_cast<int>(syscall(SYS_memfd_create, "jitkit-probe", MFD_CLOEXEC | MFD_EXEC));
  if (fd >= 0) {
    s.available = true;
    s.mfd_exec_flag = true;
    close(fd);
    return s;
  }
  // EACCES: the kernel knows MFD_EXEC (6.3+) but vm.memfd_noexec=2 in this PID namespace
  // refuses executable memfds. Kernels before 6.3 reject the unknown flag with EINVAL instead.
  if (errno == EACCES) {
    s.mfd_exec_flag = true;
    s.exec_refused = true;
  }
  fd = static_cast<int>(syscall(SYS_memfd_create, "jitkit-probe", MFD_CLOEXEC));
  if (fd >= 0) {
    s.available = true;
    close(fd);
    return s;
  }
  s.error = errno;
  s.mfd_exec_flag = false;  // memfd_create refused outright: the flag's fate is unknown
  s.exec_refused = false;
  return s;
}

MembarrierSupport detect_membarrier() {
  MembarrierSupport s;
  long mask = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (mask < 0) {
    s.query_errno = errno;
    return s;
  }
  s.available = true;
  s.command_mask = static_cast<std::uint32_t>(mask);
  s.global = mask & MEMBARRIER_CMD_GLOBAL;
  s.private_expedited = mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED;
  s.private_expedited_sync_core = mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE;
  s.private_expedited_rseq = mask & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ;
  return s;
}

RseqSupport detect_rseq() {
  RseqSupport s;
  // rseq(NULL, 0, 0, 0) is invalid: a kernel with rseq answers EINVAL, one without ENOSYS.
  errno = 0;
  long rc = syscall(SYS_rseq, nullptr, 0, 0, 0);
  s.kernel_supports = rc == -1 && errno != ENOSYS;
  s.feature_size = getauxval(AT_RSEQ_FEATURE_SIZE);
  s.alignment = getauxval(AT_RSEQ_ALIGN);
  if (&__rseq_size != nullptr && &__rseq_offset != nullptr) {
    s.glibc_rseq_size = __rseq_size;
    s.glibc_rseq_offset = __rseq_offset;
    if (__rseq_size > 0) {
      // The area lives at the thread pointer + __rseq_offset; its cpu_id (offset 4) is >= 0
      // once the kernel accepted the registration.
      const char* tp = static_cast<const char*>(__builtin_thread_pointer());
      const auto* cpu_id = reinterpret_cast<const volatile std::int32_t*>(tp + __rseq_offset + 4);
      s.glibc_registered = *cpu_id >= 0;
    }
  }
  return s;
}

const PlatformFacts& platform_facts() {
  static const PlatformFacts facts = [] {
    PlatformFacts f;
    f.page_size = detect_page_size();
    f.cache_line_size = detect_cache_line_size();
    f.possible_cpus = detect_possible_cpus();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    f.online_cpus = online > 0 ? static_cast<unsigned>(online) : 1;
    utsname u{};
    if (uname(&u) == 0) f.kernel_release = u.release;
    f.memfd = detect_memfd();
    f.membarrier = detect_membarrier();
    f.rseq = detect_rseq();
    return f;
  }();
  return facts;
}

}  // namespace jitkit
