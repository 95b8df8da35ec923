// jitkit/rseq/rseq.h — restartable sequences (rseq(2)): registration, the kernel ABI, fences.
//
// A restartable sequence is a short run of instructions (a "critical section") that the kernel
// restarts when the thread is preempted, migrated or interrupted by a signal before its last
// instruction (the "commit"). A thread that reads its CPU number inside such a section can then
// update per-CPU data with plain loads and stores: no lock prefix, no contention.
//
// This header covers what every per-CPU operation needs:
//  * Registration that coexists with glibc. glibc >= 2.35 registers one `struct rseq` area per
//    thread and exports its place as `__rseq_offset` (from the thread pointer) and `__rseq_size`.
//    jitkit looks these up as weak symbols (an older glibc still links) and uses glibc's area
//    when glibc has registered one. Only when nobody has (glibc.pthread.rseq=0, or a glibc
//    without rseq) does jitkit register its own area for the thread, once, and unregister it at
//    thread exit. The kernel allows one area per thread; a foreign registration (EBUSY) is
//    respected and that thread takes the fallback path.
//  * The usable feature size comes from getauxval(AT_RSEQ_FEATURE_SIZE). glibc 2.35-2.39 report
//    `__rseq_size == 20` (the fields glibc itself uses), but every accepted registration is at
//    least 32 bytes long (the kernel's minimum), so the kernel fills every field below offset 32
//    it announces: with a feature size >= 28, the concurrency id `mm_cid` (offset 24) is valid.
//    jitkit then indexes per-CPU data by mm_cid (dense, < possible CPUs, and small when a process
//    runs few threads) instead of cpu_id.
//  * jitkit never writes the fields the kernel owns (cpu_id_start, cpu_id, node_id, mm_cid). It
//    writes only `rseq_cs` (the pointer to the running section's descriptor), and at its own
//    registration the initial zeroes of its own area.
//  * Fallback. When rseq cannot be used (an old kernel, a seccomp filter, valgrind or rr: the
//    system call answers ENOSYS), or membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) is missing
//    (kernel < 5.10: cross-CPU operations would be impossible), the whole process takes the
//    fallback path: every operation is then a correct atomic or locked operation. Each operation
//    also bounds its retries after aborts, then falls back for that call, so nothing ever loops
//    on aborts forever.
//
// Descriptors and debuggers: see jitkit/rseq/x86_64/critical_section.h and docs/rseq.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "jitkit/base/linux/rseq_abi.h"
#include "jitkit/base/result.h"

namespace jitkit::rseq {

// The signature that precedes every abort handler, as the kernel checks it: the 4 bytes right
// before abort_ip must equal the value given at registration. 0x53053053 on x86-64, the value
// glibc registers with, so that jitkit's sections also work with glibc's area.
inline constexpr std::uint32_t kSignature = 0x53053053;

// struct rseq of the kernel ABI (include/uapi/linux/rseq.h). One per thread, registered once.
struct alignas(32) RseqArea {
  std::uint32_t cpu_id_start;  // kernel-owned: CPU number, always valid (0 when unregistered)
  std::uint32_t cpu_id;        // kernel-owned: CPU number, or -1 (not registered) / -2 (failed)
  std::uint64_t rseq_cs;       // user-owned: address of the running section's RseqCs, or 0
  std::uint32_t flags;         // deprecated, must stay 0
  std::uint32_t node_id;       // kernel-owned: NUMA node (feature size >= 24)
  std::uint32_t mm_cid;        // kernel-owned: concurrency id (feature size >= 28)
  std::uint32_t reserved_;     // padding up to the kernel's 32-byte minimum
};
static_assert(sizeof(RseqArea) == 32);
static_assert(offsetof(RseqArea, cpu_id) == 4 && offsetof(RseqArea, rseq_cs) == 8 &&
              offsetof(RseqArea, mm_cid) == 24);

// struct rseq_cs of the kernel ABI: one critical-section descriptor (the layout is shared with
// the debug module, hence its home in base). The 4 bytes before every abort_ip are kSignature.
using ::jitkit::RseqCs;

// Which field of the area indexes per-CPU data.
enum class CpuIndex {
  kCpuId,  // cpu_id: the CPU number (cross-CPU fences target that one CPU)
  kMmCid,  // mm_cid: the concurrency id (fences must target every CPU: a cid has no fixed CPU)
};

// Who registered the calling thread's area.
enum class Owner {
  kNone,    // no usable area: the thread takes the fallback path
  kGlibc,   // glibc's area, found through __rseq_offset
  kJitkit,  // jitkit registered its own (nobody else had)
};

// The process-wide decision, made once at first use.
struct ProcessStatus {
  bool rseq_enabled = false;             // false: every operation takes the fallback path
  std::string fallback_reason;           // why not, when !rseq_enabled
  bool glibc_owns_registration = false;  // glibc's __rseq_size > 0 (glibc registers each thread)
  unsigned glibc_rseq_size = 0;          // glibc's __rseq_size (0: absent or disabled)
  unsigned long feature_size = 0;        // AT_RSEQ_FEATURE_SIZE, or 20 if the kernel does not say
  CpuIndex index = CpuIndex::kCpuId;     // kMmCid when feature_size >= 28
  unsigned slots = 0;                    // per-CPU slots: platform_facts().possible_cpus
};

// The calling thread's registration.
struct ThreadStatus {
  Owner owner = Owner::kNone;
  RseqArea* area = nullptr;  // null when owner == kNone
  int error = 0;             // errno of jitkit's own registration attempt, if it failed
};

// Decides (once, thread-safe) whether the process uses rseq, and returns that decision.
const ProcessStatus& process_status();

// Makes sure the calling thread has a usable area (glibc's, or jitkit's own, registered at most
// once per thread) and returns it. Cheap after the first call in a thread.
ThreadStatus ensure_registered();

// Number of critical-section aborts observed so far by jitkit's abort handlers, process-wide
// (ahead-of-time and JIT-emitted sections). Counted off the fast path.
std::uint64_t abort_count();

// Cross-CPU fence: after it returns, every critical section that was running on `slot`'s CPU
// (CpuIndex::kCpuId) or on any CPU (kMmCid, or slot < 0) has either committed or been aborted,
// and the caller's earlier stores are visible to every section that starts later.
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ[, MEMBARRIER_CMD_FLAG_CPU, cpu]).
Status fence(int slot);

namespace detail {
// The calling thread's area, null until ensure_registered() succeeded (or in fallback mode).
// initial-exec TLS: one %fs-relative load on the fast path, no TLS wrapper call.
extern __thread RseqArea* tls_area __attribute__((tls_model("initial-exec")));
// Field offset of the per-CPU index in RseqArea (4: cpu_id, 24: mm_cid). Set once.
std::uintptr_t index_offset();
void count_abort();
void count_aborts(std::uint64_t n);  // for JIT-emitted code, which counts per call
}  // namespace detail

}  // namespace jitkit::rseq
