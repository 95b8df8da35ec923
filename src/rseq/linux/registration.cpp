// Registration of the per-thread rseq area, the process-wide rseq/fallback decision, the
// cross-CPU fence and the abort counter (jitkit/rseq/rseq.h).
//
// Order of preference per thread: glibc's area (found through the weak __rseq_offset/__rseq_size,
// so that a glibc without them still links), else jitkit's own area registered once, else none
// (the thread then takes the fallback path). Every area in use is recorded in a registry so that
// the reclamation of JIT-emitted sections can clear stale rseq_cs pointers (detail::reclaim() in
// x86_64/jit_common.cpp).
#include <linux/membarrier.h>
#include <linux/rseq.h>
#include <pthread.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "jitkit/base/platform.h"
#include "jitkit/rseq/rseq.h"
#include "rseq/registry_p.h"
#include "rseq/test_hooks_p.h"

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif

extern "C" {
extern const unsigned int __rseq_size __attribute__((weak));
extern const std::ptrdiff_t __rseq_offset __attribute__((weak));
}

namespace jitkit::rseq {
namespace detail {

namespace {

// jitkit's mirrors of the kernel's structures must match the kernel's own header, field by field.
static_assert(sizeof(RseqCs) == sizeof(::rseq_cs) && alignof(RseqCs) == alignof(::rseq_cs));
static_assert(offsetof(RseqCs, version) == offsetof(::rseq_cs, version) &&
              offsetof(RseqCs, flags) == offsetof(::rseq_cs, flags) &&
              offsetof(RseqCs, start_ip) == offsetof(::rseq_cs, start_ip) &&
              offsetof(RseqCs, post_commit_offset) == offsetof(::rseq_cs, post_commit_offset) &&
              offsetof(RseqCs, abort_ip) == offsetof(::rseq_cs, abort_ip));
static_assert(offsetof(RseqArea, cpu_id_start) == offsetof(::rseq, cpu_id_start) &&
              offsetof(RseqArea, cpu_id) == offsetof(::rseq, cpu_id) &&
              offsetof(RseqArea, rseq_cs) == offsetof(::rseq, rseq_cs) &&
              offsetof(RseqArea, flags) == offsetof(::rseq, flags));

// jitkit's own area, used only when nobody registered one for this thread.
__thread RseqArea tls_own_area __attribute__((tls_model("initial-exec")));

enum class ThreadState : std::uint8_t { kUnknown, kRegistered, kUnusable, kExiting };
__thread ThreadState tls_state = ThreadState::kUnknown;
__thread Owner tls_owner = Owner::kNone;
__thread int tls_error = 0;

std::atomic<std::uint64_t> g_aborts{0};
std::atomic<std::uintptr_t> g_index_offset{offsetof(RseqArea, cpu_id)};

std::mutex g_decision_mutex;
std::atomic<bool> g_decided{false};
bool g_forced_unavailable = false;

long sys_rseq(RseqArea* area, std::uint32_t len, int flags) {
  return syscall(SYS_rseq, area, len, flags, kSignature);
}

// Unregisters jitkit's own area (the kernel must stop writing into this thread's TLS before it
// is freed) and removes the area from the registry, at thread exit.
struct ThreadExitGuard {
  bool armed = false;
  ~ThreadExitGuard() {
    if (!armed) return;
    RseqArea* area = tls_area;
    // From here on this thread's operations take the fallback path; it never registers again.
    tls_area = nullptr;
    tls_state = ThreadState::kExiting;
    if (area == nullptr) return;
    registry().remove(area);
    if (tls_owner == Owner::kJitkit) (void)sys_rseq(area, sizeof(RseqArea), RSEQ_FLAG_UNREGISTER);
    tls_owner = Owner::kNone;
  }
};

void arm_exit_guard() {
  static thread_local ThreadExitGuard guard;
  guard.armed = true;
}

ProcessStatus decide() {
  ProcessStatus s;
  const PlatformFacts& facts = platform_facts();
  s.slots = facts.possible_cpus;
  if (&__rseq_size != nullptr && &__rseq_offset != nullptr) s.glibc_rseq_size = __rseq_size;
  s.glibc_owns_registration = s.glibc_rseq_size > 0;
  // No AT_RSEQ_FEATURE_SIZE: a kernel before 6.3, whose ABI is the original 20 bytes.
  s.feature_size = facts.rseq.feature_size != 0 ? facts.rseq.feature_size : 20;
  // Every registration is >= 32 bytes, so a feature announced below offset 32 is filled in.
  s.index = s.feature_size >= offsetof(RseqArea, mm_cid) + sizeof(std::uint32_t) ? CpuIndex::kMmCid
                                                                                 : CpuIndex::kCpuId;
  if (g_forced_unavailable) {
    s.fallback_reason = "forced by rseq::test_hooks::force_unavailable()";
    return s;
  }
  if (!facts.rseq.kernel_supports) {
    s.fallback_reason = "rseq(2) answered ENOSYS (kernel < 4.18, a seccomp filter, valgrind or rr)";
    return s;
  }
  if (!facts.membarrier.private_expedited_rseq) {
    s.fallback_reason =
        "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) unavailable (kernel < 5.10?): "
        "cross-CPU operations would be impossible";
    return s;
  }
  // Registered once per process; required before any MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ.
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0) {
    s.fallback_reason =
        std::string("membarrier(REGISTER_PRIVATE_EXPEDITED_RSEQ) failed: ") + std::strerror(errno);
    return s;
  }
  s.rseq_enabled = true;
  return s;
}

ProcessStatus& status_storage() {
  static ProcessStatus s;
  return s;
}

}  // namespace

std::uintptr_t index_offset() {
  (void)process_status();
  return g_index_offset.load(std::memory_order_relaxed);
}

void count_abort() { g_aborts.fetch_add(1, std::memory_order_relaxed); }
void count_aborts(std::uint64_t n) { g_aborts.fetch_add(n, std::memory_order_relaxed); }

Registry& registry() {
  // Leaked on purpose: thread-exit guards may run after static destructors.
  static Registry* r = [] {
    auto* reg = new Registry;
    // In a forked child only the forking thread exists; the other areas are stale copies.
    pthread_atfork(nullptr, nullptr, [] { registry().keep_only(tls_area); });
    return reg;
  }();
  return *r;
}

void Registry::add(RseqArea* area) {
  std::lock_guard<std::mutex> lock(mutex_);
  areas_.push_back(area);
}

void Registry::remove(RseqArea* area) {
  std::lock_guard<std::mutex> lock(mutex_);
  areas_.erase(std::remove(areas_.begin(), areas_.end(), area), areas_.end());
}

void Registry::keep_only(RseqArea* area) {
  // Runs in the child after fork, single-threaded: the mutex may have been copied locked.
  new (&mutex_) std::mutex;
  areas_.clear();
  if (area != nullptr) areas_.push_back(area);
}

std::size_t Registry::clear_pointers_to(std::uint64_t descriptor) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t cleared = 0;
  for (RseqArea* area : areas_) {
    // Clear only if it still points at `descriptor`: the owning thread may concurrently store
    // another descriptor (a plain store) and the kernel may clear it; a compare-exchange never
    // overwrites either. The area is alive: threads remove their area under this mutex before
    // it is freed.
    std::uint64_t expected = descriptor;
    if (__atomic_compare_exchange_n(&area->rseq_cs, &expected, 0, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST)) {
      ++cleared;
    }
  }
  return cleared;
}

std::size_t Registry::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return areas_.size();
}

}  // namespace detail

using detail::ThreadState;

const ProcessStatus& process_status() {
  if (detail::g_decided.load(std::memory_order_acquire)) return detail::status_storage();
  std::lock_guard<std::mutex> lock(detail::g_decision_mutex);
  if (!detail::g_decided.load(std::memory_order_relaxed)) {
    detail::status_storage() = detail::decide();
    const ProcessStatus& s = detail::status_storage();
    detail::g_index_offset.store(
        s.index == CpuIndex::kMmCid ? offsetof(RseqArea, mm_cid) : offsetof(RseqArea, cpu_id),
        std::memory_order_relaxed);
    // Release: a thread that sees g_decided also sees the status it describes.
    detail::g_decided.store(true, std::memory_order_release);
  }
  return detail::status_storage();
}

Status test_hooks::force_unavailable() {
  std::lock_guard<std::mutex> lock(detail::g_decision_mutex);
  if (detail::g_decided.load(std::memory_order_relaxed)) {
    if (!detail::status_storage().rseq_enabled) return ok();
    return Error(ErrorCode::kInvalidState,
                 "rseq: test_hooks::force_unavailable() after the first operation: the "
                 "process already uses rseq, and mixing paths on live data would be unsafe");
  }
  detail::g_forced_unavailable = true;
  return ok();
}

ThreadStatus ensure_registered() {
  using namespace detail;
  if (tls_area != nullptr) return {tls_owner, tls_area, 0};
  if (tls_state != ThreadState::kUnknown) return {Owner::kNone, nullptr, tls_error};
  const ProcessStatus& p = process_status();
  if (!p.rseq_enabled) {
    tls_state = ThreadState::kUnusable;
    return {Owner::kNone, nullptr, 0};
  }
  if (p.glibc_owns_registration) {
    // glibc registers every thread at creation; its area sits at a fixed offset from the thread
    // pointer. cpu_id < 0 means glibc's registration failed in this thread (e.g. a seccomp
    // filter installed later): the area is glibc's, so jitkit must not register another.
    auto* area = reinterpret_cast<RseqArea*>(static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset);
    if (static_cast<std::int32_t>(__atomic_load_n(&area->cpu_id, __ATOMIC_RELAXED)) < 0) {
      tls_state = ThreadState::kUnusable;
      return {Owner::kNone, nullptr, 0};
    }
    tls_owner = Owner::kGlibc;
    registry().add(area);
    arm_exit_guard();
    tls_state = ThreadState::kRegistered;
    tls_area = area;
    return {tls_owner, area, 0};
  }
  // Nobody registered for glibc: register jitkit's own area, once. EBUSY means some other
  // library registered an area we do not know; that thread then takes the fallback path.
  RseqArea* own = &tls_own_area;
  std::memset(own, 0, sizeof(*own));
  own->cpu_id = static_cast<std::uint32_t>(RSEQ_CPU_ID_UNINITIALIZED);
  if (sys_rseq(own, sizeof(RseqArea), 0) != 0) {
    tls_error = errno;
    tls_state = ThreadState::kUnusable;
    return {Owner::kNone, nullptr, tls_error};
  }
  tls_owner = Owner::kJitkit;
  registry().add(own);
  arm_exit_guard();
  tls_state = ThreadState::kRegistered;
  tls_area = own;
  return {tls_owner, own, 0};
}

std::uint64_t abort_count() { return detail::g_aborts.load(std::memory_order_relaxed); }

Status fence(int slot) {
  const ProcessStatus& p = process_status();
  if (!p.rseq_enabled) return ok();  // nothing runs a critical section: nothing to fence
  long rc;
  if (slot >= 0 && p.index == CpuIndex::kCpuId) {
    rc = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_FLAG_CPU, slot);
  } else {
    // mm_cid says nothing about where a thread runs: fence every CPU of the process.
    rc = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0);
  }
  if (rc != 0) {
    return Error::from_errno("rseq: membarrier(PRIVATE_EXPEDITED_RSEQ) fence of slot " + std::to_string(slot),
                             errno);
  }
  return ok();
}

}  // namespace jitkit::rseq
