// jitkit/base/platform.h — what the machine and the kernel offer, detected once at run time.
//
// The code zones, live patching and restartable sequences all depend on kernel features that
// may be missing or disabled (an old kernel, a seccomp filter, a sysctl, valgrind). This module
// detects them without changing any process state, so that the layers above can choose a path
// and say why. `make demo` prints these facts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace jitkit {

// membarrier(2) commands, as bits of MEMBARRIER_CMD_QUERY's answer.
struct MembarrierSupport {
  bool available = false;            // the syscall exists and answered the query
  int query_errno = 0;               // errno of a failed query (ENOSYS under old kernels/valgrind)
  std::uint32_t command_mask = 0;    // raw mask from MEMBARRIER_CMD_QUERY
  bool global = false;               // MEMBARRIER_CMD_GLOBAL
  bool private_expedited = false;    // MEMBARRIER_CMD_PRIVATE_EXPEDITED
  bool private_expedited_sync_core = false;  // ..._SYNC_CORE: serialize every core (code patching)
  bool private_expedited_rseq = false;       // ..._RSEQ: restart rseq critical sections
};

// memfd_create(2): the preferred backing of dual-mapped code zones.
struct MemfdSupport {
  bool available = false;     // memfd_create works at all
  bool mfd_exec_flag = false; // the kernel knows MFD_EXEC and MFD_NOEXEC_SEAL (Linux 6.3+),
                              // whatever vm.memfd_noexec says
  bool exec_refused = false;  // memfd_create(MFD_EXEC) refused with EACCES: vm.memfd_noexec=2
                              // in this PID namespace (an executable memfd cannot be had)
  int noexec_sysctl = -1;     // /proc/sys/vm/memfd_noexec (0, 1, 2), or -1 if absent
  int error = 0;              // errno of the failed attempt when !available
};

// Restartable sequences (rseq(2)).
struct RseqSupport {
  bool kernel_supports = false;     // sys_rseq exists (probing with invalid arguments: EINVAL, not ENOSYS)
  bool glibc_registered = false;    // glibc registered this thread's area (__rseq_size > 0 and cpu_id >= 0)
  unsigned glibc_rseq_size = 0;     // glibc's __rseq_size, 0 if absent or disabled
  std::ptrdiff_t glibc_rseq_offset = 0;  // glibc's __rseq_offset from the thread pointer
  unsigned long feature_size = 0;   // getauxval(AT_RSEQ_FEATURE_SIZE), 0 if the kernel does not say
  unsigned long alignment = 0;      // getauxval(AT_RSEQ_ALIGN)
};

struct PlatformFacts {
  std::size_t page_size = 0;
  std::size_t cache_line_size = 0;
  unsigned possible_cpus = 0;  // from /sys/devices/system/cpu/possible: size per-CPU data by this
  unsigned online_cpus = 0;
  std::string kernel_release;  // uname -r
  MemfdSupport memfd;
  MembarrierSupport membarrier;
  RseqSupport rseq;
};

// Detects the facts once (thread-safe) and returns them. Later calls are free.
const PlatformFacts& platform_facts();

// Individual probes, uncached (for tests and for callers that must see the current state).
std::size_t detect_page_size();
std::size_t detect_cache_line_size();
unsigned detect_possible_cpus();
MemfdSupport detect_memfd();
MembarrierSupport detect_membarrier();
RseqSupport detect_rseq();

}  // namespace jitkit
