// Slow paths of the per-CPU structures (jitkit/rseq/percpu.h): first use in a thread, bounded
// retries after aborts, slots locked by cross-CPU operations (one retry loop for all of them,
// retry_p.h), the locked/fenced fallback, and the cross-CPU drain.
#include "jitkit/rseq/percpu.h"

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "jitkit/base/bits.h"
#include "rseq/retry_p.h"

namespace jitkit::rseq {

namespace detail {
// Defined here, with the operations that read it, so that it exists wherever percpu.h is used;
// the OS's registration (linux/registration.cpp) sets it.
__thread RseqArea* tls_area __attribute__((tls_model("initial-exec"))) = nullptr;
}  // namespace detail

namespace {

using detail::Attempt;
using detail::ListNode;

unsigned slot_count_for_process() {
  unsigned n = process_status().slots;
  return n > 0 ? n : 1;
}

// The slot a fallback operation uses: the running CPU's when known (locality), else slot 0.
// Any slot is correct: fallback operations lock their slot.
unsigned fallback_slot(unsigned count) {
  int cpu = sched_getcpu();
  return cpu >= 0 ? static_cast<unsigned>(cpu) % count : 0;
}

// A thread's fixed slot for `lock xadd` counter adds in process-wide fallback mode (spreads
// threads over slots without a system call per add).
unsigned thread_fallback_slot(unsigned count) {
  static std::atomic<unsigned> next{0};
  static thread_local unsigned mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine % count;
}

// Owns slot `slot` for a cross-CPU or fallback operation: lock word (word 1) 0 -> 1, then the
// fence. Hazard prevented: a critical section on the slot's CPU that read "unlocked" before our
// lock store could still commit after we read the slot; the fence returns only once every such
// section has committed or been aborted, and later sections see the lock (membarrier orders our
// lock store before them) and exit without committing.
class SlotOwnership {
 public:
  static Result<SlotOwnership> acquire(const SlotArray& slots, unsigned slot) {
    std::uint64_t* lock = slots.word(slot, 1);
    for (;;) {
      std::uint64_t expected = 0;
      if (__atomic_compare_exchange_n(lock, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        break;
      }
      sched_yield();  // another cross-CPU operation owns it; it finishes in bounded time
    }
    Status fenced = fence(static_cast<int>(slot));
    if (!fenced) {
      __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
      return std::move(fenced).error();
    }
    return SlotOwnership(lock);
  }
  SlotOwnership(SlotOwnership&& other) noexcept : lock_(other.lock_) { other.lock_ = nullptr; }
  SlotOwnership& operator=(SlotOwnership&&) = delete;
  // Release: our plain updates of the slot are visible before a section can see "unlocked".
  ~SlotOwnership() {
    if (lock_ != nullptr) __atomic_store_n(lock_, 0, __ATOMIC_RELEASE);
  }

 private:
  explicit SlotOwnership(std::uint64_t* lock) : lock_(lock) {}
  std::uint64_t* lock_;
};

// The locked fallback of list and word operations. It cannot fail in practice (the fence was
// registered at start-up); if the fence does fail, the operation must still not lose data, so it
// retries with another slot after yielding.
template <typename Fn>
void with_owned_slot(const SlotArray& slots, unsigned slot, Fn&& fn) {
  for (unsigned tries = 0;; ++tries) {
    auto owned = SlotOwnership::acquire(slots, (slot + tries) % slots.count());
    if (owned) {
      fn((slot + tries) % slots.count());
      return;
    }
    sched_yield();
  }
}

}  // namespace

// --- SlotArray --------------------------------------------------------------------------------

SlotArray::SlotArray(unsigned count) : count_(count > 0 ? count : 1) {
  std::size_t bytes = std::size_t{count_} * kSlotBytes;
  void* p = std::aligned_alloc(kSlotBytes, bytes);
  if (p == nullptr) throw std::bad_alloc();  // construction-time OOM, like any container
  std::memset(p, 0, bytes);
  base_.reset(static_cast<std::uint8_t*>(p));
}

void SlotArray::Free::operator()(std::uint8_t* p) const { std::free(p); }

// --- PerCpuCounter ----------------------------------------------------------------------------

PerCpuCounter::PerCpuCounter() : slots_(slot_count_for_process()), index_offset_(detail::index_offset()) {}

void PerCpuCounter::add_slow(std::int64_t delta, bool aborted) {
  Attempt a = detail::retry_section(
      aborted ? Attempt::kAborted : Attempt::kNotAttempted,
      [&](RseqArea* area) { return detail::counter_add(area, slots_.base(), index_offset_, delta); });
  if (a == Attempt::kCommitted) return;
  if (a != Attempt::kNotAttempted) {
    // Retries exhausted: the slots belong to critical sections, so add to the atomic cell.
    fallback_.fetch_add(delta, std::memory_order_relaxed);
    return;
  }
  if (process_status().rseq_enabled) {
    // This thread has no area (glibc's registration failed in it, or a foreign one exists):
    // other threads run sections on the slots, so use the atomic cell.
    fallback_.fetch_add(delta, std::memory_order_relaxed);
  } else {
    // Nothing runs sections: every writer of the slots uses lock xadd.
    __atomic_fetch_add(reinterpret_cast<std::int64_t*>(slots_.word(thread_fallback_slot(slots_.count()), 0)),
                       delta, __ATOMIC_RELAXED);
  }
}

std::int64_t PerCpuCounter::value() const {
  std::int64_t sum = fallback_.load(std::memory_order_relaxed);
  for (unsigned s = 0; s < slots_.count(); ++s) {
    sum += __atomic_load_n(reinterpret_cast<const std::int64_t*>(slots_.word(s, 0)), __ATOMIC_RELAXED);
  }
  return sum;
}

// --- PerCpuWord -------------------------------------------------------------------------------

PerCpuWord::PerCpuWord() : slots_(slot_count_for_process()), index_offset_(detail::index_offset()) {}

PerCpuWord::Outcome PerCpuWord::compare_and_store_slow(std::uint64_t expected, std::uint64_t desired,
                                                       Attempt first) {
  std::uint32_t slot = 0;
  Attempt a = detail::retry_section(first, [&](RseqArea* area) {
    return detail::compare_store(area, slots_.base(), index_offset_, expected, desired, &slot);
  });
  if (a == Attempt::kCommitted) return {true, slot};
  if (a == Attempt::kMismatch) return {false, slot};
  return compare_and_store_locked(expected, desired);
}

PerCpuWord::Outcome PerCpuWord::compare_and_store_locked(std::uint64_t expected, std::uint64_t desired) {
  Outcome out{false, 0};
  with_owned_slot(slots_, fallback_slot(slots_.count()), [&](unsigned slot) {
    std::uint64_t* word = slots_.word(slot, 0);
    out.slot = slot;
    if (__atomic_load_n(word, __ATOMIC_RELAXED) == expected) {
      __atomic_store_n(word, desired, __ATOMIC_RELAXED);
      out.stored = true;
    }
  });
  return out;
}

std::uint64_t PerCpuWord::load(unsigned slot) const {
  return __atomic_load_n(slots_.word(slot % slots_.count(), 0), __ATOMIC_ACQUIRE);
}

void PerCpuWord::store(unsigned slot, std::uint64_t value) {
  __atomic_store_n(slots_.word(slot % slots_.count(), 0), value, __ATOMIC_RELEASE);
}

// --- PerCpuList -------------------------------------------------------------------------------

PerCpuList::PerCpuList() : slots_(slot_count_for_process()), index_offset_(detail::index_offset()) {}

void PerCpuList::push_slow(Node* node, Attempt first) {
  Attempt a = detail::retry_section(
      first, [&](RseqArea* area) { return detail::list_push(area, slots_.base(), index_offset_, node); });
  if (a == Attempt::kCommitted) return;
  push_locked(node);
}

void PerCpuList::push_locked(Node* node) {
  detail::tsan_release(node);
  with_owned_slot(slots_, fallback_slot(slots_.count()), [&](unsigned slot) {
    std::uint64_t* head = slots_.word(slot, 0);
    node->next = reinterpret_cast<Node*>(__atomic_load_n(head, __ATOMIC_RELAXED));
    __atomic_store_n(head, reinterpret_cast<std::uint64_t>(node), __ATOMIC_RELAXED);
  });
}

PerCpuList::Node* PerCpuList::pop_locked() {
  Node* out = nullptr;
  with_owned_slot(slots_, fallback_slot(slots_.count()), [&](unsigned slot) {
    std::uint64_t* head = slots_.word(slot, 0);
    out = reinterpret_cast<Node*>(__atomic_load_n(head, __ATOMIC_RELAXED));
    if (out != nullptr) {
      __atomic_store_n(head, reinterpret_cast<std::uint64_t>(out->next), __ATOMIC_RELAXED);
    }
  });
  if (out != nullptr) detail::tsan_acquire(out);
  return out;
}

PerCpuList::Node* PerCpuList::pop_slow(Attempt first) {
  Node* out = nullptr;
  Attempt a = detail::retry_section(
      first, [&](RseqArea* area) { return detail::list_pop(area, slots_.base(), index_offset_, &out); });
  if (a == Attempt::kCommitted) {
    detail::tsan_acquire(out);
    return out;
  }
  if (a == Attempt::kEmpty) return nullptr;
  return pop_locked();
}

Result<PerCpuList::Node*> PerCpuList::drain(unsigned slot) {
  if (slot >= slots_.count()) {
    return Error(ErrorCode::kInvalidArgument, "rseq: PerCpuList::drain: slot " + std::to_string(slot) +
                                                  " out of range (" + std::to_string(slots_.count()) +
                                                  " slots)");
  }
  JITKIT_TRY(SlotOwnership owned, SlotOwnership::acquire(slots_, slot));
  std::uint64_t* head = slots_.word(slot, 0);
  Node* chain = reinterpret_cast<Node*>(__atomic_load_n(head, __ATOMIC_RELAXED));
  __atomic_store_n(head, 0, __ATOMIC_RELAXED);
  for (Node* n = chain; n != nullptr; n = n->next) detail::tsan_acquire(n);
  return chain;  // `owned` releases the slot lock after the head was cleared
}

// --- PerCpuPool -------------------------------------------------------------------------------

Result<std::unique_ptr<PerCpuPool>> PerCpuPool::create(std::size_t object_size, std::size_t alignment,
                                                       std::size_t objects_per_chunk) {
  if (object_size == 0 || object_size > (std::size_t{1} << 30)) {
    return Error(ErrorCode::kInvalidArgument, "rseq: PerCpuPool::create: object_size " +
                                                  std::to_string(object_size) + " must be in [1, 1 GiB]");
  }
  if (alignment < 8 || alignment > 4096 || !is_power_of_two(alignment)) {
    return Error(ErrorCode::kInvalidArgument, "rseq: PerCpuPool::create: alignment " +
                                                  std::to_string(alignment) +
                                                  " must be a power of two in [8, 4096]");
  }
  if (objects_per_chunk == 0) {
    return Error(ErrorCode::kInvalidArgument, "rseq: PerCpuPool::create: objects_per_chunk is 0");
  }
  return std::unique_ptr<PerCpuPool>(new PerCpuPool(object_size, alignment, objects_per_chunk));
}

PerCpuPool::PerCpuPool(std::size_t object_size, std::size_t alignment, std::size_t per_chunk)
    : object_size_(align_up(std::max<std::size_t>(object_size, sizeof(ListNode)), alignment)),
      alignment_(alignment),
      per_chunk_(per_chunk) {}

PerCpuPool::~PerCpuPool() {
  for (void* c : chunks_) std::free(c);
}

std::size_t PerCpuPool::chunks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return chunks_.size();
}

void* PerCpuPool::refill_and_allocate() {
  ListNode* batch = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (depot_ != nullptr) {
      // Take up to one chunk's worth from the depot.
      batch = depot_;
      ListNode* last = batch;
      for (std::size_t i = 1; i < per_chunk_ && last->next != nullptr; ++i) last = last->next;
      depot_ = last->next;
      last->next = nullptr;
    } else {
      void* chunk = std::aligned_alloc(alignment_, object_size_ * per_chunk_);
      if (chunk == nullptr) return nullptr;
      // Zeroed, so that a new object's contents are defined (recycled ones keep theirs, except
      // the first 8 bytes, the free-list link).
      std::memset(chunk, 0, object_size_ * per_chunk_);
      chunks_.push_back(chunk);
      auto* bytes = static_cast<std::uint8_t*>(chunk);
      for (std::size_t i = per_chunk_; i-- > 0;) {
        auto* n = reinterpret_cast<ListNode*>(bytes + i * object_size_);
        n->next = batch;
        batch = n;
      }
    }
  }
  if (batch == nullptr) return nullptr;
  // Keep the first object, give the rest to this CPU's free list.
  ListNode* result = batch;
  ListNode* rest = batch->next;
  while (rest != nullptr) {
    ListNode* next = rest->next;
    list_.push(rest);
    rest = next;
  }
  return result;
}

Status PerCpuPool::drain(unsigned slot) {
  JITKIT_TRY(ListNode * chain, list_.drain(slot));
  if (chain == nullptr) return ok();
  ListNode* last = chain;
  while (last->next != nullptr) last = last->next;
  std::lock_guard<std::mutex> lock(mutex_);
  last->next = depot_;
  depot_ = chain;
  return ok();
}

}  // namespace jitkit::rseq
