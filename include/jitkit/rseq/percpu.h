// jitkit/rseq/percpu.h — per-CPU data updated by restartable sequences, without atomics.
//
// Four structures, each an array of cache-line slots sized from the possible CPUs
// (platform_facts().possible_cpus; mm_cid values are below it too) and indexed by the running
// CPU's cpu_id, or by its mm_cid when the kernel provides it (see rseq.h):
//   PerCpuCounter  add(): load, add, store on this CPU's slot; value() sums the slots.
//   PerCpuWord     compare_and_store() on this CPU's word (e.g. a per-CPU lock or flag).
//   PerCpuList     intrusive LIFO lists: push()/pop() on this CPU's list; drain(slot) takes
//                  another CPU's list (a cross-CPU operation, below).
//   PerCpuPool     fixed-size objects: allocate()/free() through per-CPU free lists.
//
//   jitkit::rseq::PerCpuCounter hits;
//   hits.add(1);                   // ~0.6 ns, no lock prefix, exact under preemption/signals
//   std::int64_t total = hits.value();
//
// Fast path: one inline critical section (the target's implementation of section.h, e.g.
// jitkit/rseq/x86_64/critical_section.h). Slow path, out of line: first use in a thread
// (registration), aborts (counted, retried at most kMaxAttempts times), slots locked by a
// cross-CPU operation, and the process-wide fallback.
//
// Cross-CPU operations (drain, and the fallback of an operation that exhausted its retries) lock
// the target slot (slot word 1, which every section checks before committing), then call
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) on that slot's CPU (all CPUs under mm_cid
// indexing). When the fence returns, every section that read "unlocked" has committed or been
// aborted, and every later section sees the lock and exits, so the slot belongs to the locker
// until it releases the lock. Counters need no lock: their fallback adds atomically into a
// separate cell that value() includes.
//
// Fallback (process_status().rseq_enabled == false): counters add with `lock xadd` on a slot
// chosen per thread; lists, words and pools take the slot lock (no fence is needed: nothing runs
// rseq). Results are the same, only slower.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/rseq/rseq.h"
#include "jitkit/rseq/section.h"

// The critical sections of the target ISA. Everything above them in this header is portable.
#if defined(__x86_64__)
#include "jitkit/rseq/x86_64/critical_section.h"
#else
#error "jitkit/rseq: no per-CPU critical sections for this ISA (add jitkit/rseq/<isa>/critical_section.h)"
#endif

namespace jitkit::rseq {

namespace detail {
// ThreadSanitizer cannot see the loads and stores inside the asm sections, so it would miss that
// a push (a release: x86 stores are not reordered with earlier stores) hands a node's contents
// to the thread that pops it (an acquire). These annotations tell it; they compile to nothing
// without -fsanitize=thread.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
inline void tsan_release(const void* p) { __tsan_release(const_cast<void*>(p)); }
inline void tsan_acquire(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
#else
inline void tsan_release(const void*) {}
inline void tsan_acquire(const void*) {}
#endif
}  // namespace detail

// Attempts of one operation's critical section before it takes the fallback for that call.
// Aborts come from preemption, migration and signals; dozens in a row mean something is wrong
// (e.g. a signal storm), and the fallback is always correct.
inline constexpr int kMaxAttempts = 64;

// Cache-line slots for `count` CPUs (zeroed, 64-byte aligned). Shared by the structures below.
class SlotArray {
 public:
  explicit SlotArray(unsigned count);
  SlotArray(const SlotArray&) = delete;
  SlotArray& operator=(const SlotArray&) = delete;
  std::uint8_t* base() const { return base_.get(); }
  unsigned count() const { return count_; }
  std::uint64_t* word(unsigned slot, unsigned i) const {
    return reinterpret_cast<std::uint64_t*>(base_.get() + std::size_t{slot} * kSlotBytes) + i;
  }

 private:
  struct Free {
    void operator()(std::uint8_t* p) const;
  };
  std::unique_ptr<std::uint8_t, Free> base_;
  unsigned count_;
};

// A counter with one slot per CPU.
class PerCpuCounter {
 public:
  PerCpuCounter();

  // Adds `delta` to the running CPU's slot.
  void add(std::int64_t delta) {
    RseqArea* area = detail::tls_area;
    if (__builtin_expect(area != nullptr, 1) &&
        __builtin_expect(
            detail::counter_add(area, slots_.base(), index_offset_, delta) == detail::Attempt::kCommitted,
            1)) {
      return;
    }
    add_slow(delta, area != nullptr);
  }

  // Sum of every slot and of the fallback cell. Exact once the adders have stopped; while they
  // run, a value between the sums before and after.
  std::int64_t value() const;

  // Address of the slots and field offset of the index: what JIT-emitted code needs.
  std::uint8_t* slot_base() const { return slots_.base(); }
  std::uintptr_t index_offset() const { return index_offset_; }
  unsigned slot_count() const { return slots_.count(); }
  // The fallback cell (atomic adds only), e.g. for JIT-emitted code that exhausted its retries.
  void add_fallback(std::int64_t delta) { fallback_.fetch_add(delta, std::memory_order_relaxed); }

 private:
  // `aborted`: the fast path ran its section and was aborted (else the thread had no area).
  void add_slow(std::int64_t delta, bool aborted);

  SlotArray slots_;
  std::uintptr_t index_offset_;
  alignas(64) std::atomic<std::int64_t> fallback_{0};
};

// One word per CPU with compare-and-store.
class PerCpuWord {
 public:
  PerCpuWord();

  struct Outcome {
    bool stored;    // the word equalled `expected` and now holds `desired`
    unsigned slot;  // the slot that was compared (the running CPU's)
  };

  // On the running CPU's word: if it equals `expected`, store `desired`.
  Outcome compare_and_store(std::uint64_t expected, std::uint64_t desired) {
    RseqArea* area = detail::tls_area;
    detail::Attempt a = detail::Attempt::kNotAttempted;
    if (__builtin_expect(area != nullptr, 1)) {
      std::uint32_t slot = 0;
      a = detail::compare_store(area, slots_.base(), index_offset_, expected, desired, &slot);
      if (a == detail::Attempt::kCommitted) return {true, slot};
      if (a == detail::Attempt::kMismatch) return {false, slot};
    }
    return compare_and_store_slow(expected, desired, a);
  }

  // Reads / writes one slot's word from any CPU (atomic, e.g. to release a per-CPU lock the
  // caller owns: a word that holds a non-zero "owned" value is written only by its owner).
  std::uint64_t load(unsigned slot) const;
  void store(unsigned slot, std::uint64_t value);
  unsigned slot_count() const { return slots_.count(); }

  // What other implementations of the section need (as for PerCpuList), and the locked path they
  // finish with: lock a slot, fence, plain compare-and-store (always correct, slow).
  std::uint8_t* slot_base() const { return slots_.base(); }
  std::uintptr_t index_offset() const { return index_offset_; }
  Outcome compare_and_store_locked(std::uint64_t expected, std::uint64_t desired);

 private:
  // `first`: what the fast path's attempt gave (kNotAttempted when the thread had no area).
  Outcome compare_and_store_slow(std::uint64_t expected, std::uint64_t desired, detail::Attempt first);

  SlotArray slots_;
  std::uintptr_t index_offset_;
};

// Intrusive LIFO lists, one per CPU. An element's first 8 bytes are its link (ListNode).
class PerCpuList {
 public:
  using Node = detail::ListNode;
  PerCpuList();

  void push(Node* node) {
    detail::tsan_release(node);
    RseqArea* area = detail::tls_area;
    detail::Attempt a = detail::Attempt::kNotAttempted;
    if (__builtin_expect(area != nullptr, 1)) {
      a = detail::list_push(area, slots_.base(), index_offset_, node);
      if (__builtin_expect(a == detail::Attempt::kCommitted, 1)) return;
    }
    push_slow(node, a);
  }
  Node* pop() {
    RseqArea* area = detail::tls_area;
    detail::Attempt a = detail::Attempt::kNotAttempted;
    if (__builtin_expect(area != nullptr, 1)) {
      Node* out = nullptr;
      a = detail::list_pop(area, slots_.base(), index_offset_, &out);
      if (a == detail::Attempt::kCommitted) {
        detail::tsan_acquire(out);
        return out;
      }
      if (a == detail::Attempt::kEmpty) return nullptr;
    }
    return pop_slow(a);
  }

  // Cross-CPU: detaches the whole list of `slot` and returns it (a chain through Node::next),
  // while other threads keep pushing and popping. Locks the slot and fences that CPU (all CPUs
  // under mm_cid indexing). Errors only if the fence fails.
  Result<Node*> drain(unsigned slot);

  unsigned slot_count() const { return slots_.count(); }

  // What JIT-emitted list sections need (jit.h), and the locked path they finish with when a
  // slot stays locked or aborts repeat: lock a slot, fence, plain update (always correct, slow).
  // push_locked() and pop_locked() make the same ThreadSanitizer annotations as push()/pop().
  std::uint8_t* slot_base() const { return slots_.base(); }
  std::uintptr_t index_offset() const { return index_offset_; }
  void push_locked(Node* node);
  Node* pop_locked();

 private:
  // `first`: what the fast path's attempt gave (kNotAttempted when the thread had no area).
  void push_slow(Node* node, detail::Attempt first);
  Node* pop_slow(detail::Attempt first);

  SlotArray slots_;
  std::uintptr_t index_offset_;
};

// A pool of fixed-size objects with per-CPU free lists. allocate() pops the running CPU's free
// list and refills it from the shared depot (objects drained from other CPUs) or from a new
// chunk; free() pushes onto the running CPU's list. Memory goes back to the system only when the
// pool is destroyed. Objects are `object_size` bytes (at least 8), aligned to `alignment`.
// Objects of a new chunk start zeroed; a recycled object keeps its contents except its first
// 8 bytes (the free-list link while it was free).
class PerCpuPool {
 public:
  // object_size >= 1, alignment a power of two in [8, 4096], objects_per_chunk >= 1.
  static Result<std::unique_ptr<PerCpuPool>> create(std::size_t object_size, std::size_t alignment = 16,
                                                    std::size_t objects_per_chunk = 256);
  ~PerCpuPool();
  PerCpuPool(const PerCpuPool&) = delete;
  PerCpuPool& operator=(const PerCpuPool&) = delete;

  // Null only if a new chunk cannot be allocated.
  void* allocate() {
    PerCpuList::Node* n = list_.pop();
    if (__builtin_expect(n != nullptr, 1)) return n;
    return refill_and_allocate();
  }
  void free(void* object) { list_.push(static_cast<PerCpuList::Node*>(object)); }

  // The per-CPU free lists: allocate() pops them, free() pushes them. Other implementations of
  // the list sections (JitListOps) may work on them; every node is one of the pool's objects.
  PerCpuList& free_list() { return list_; }

  // Cross-CPU: moves `slot`'s free objects to the shared depot (e.g. after a thread left a CPU).
  Status drain(unsigned slot);

  std::size_t object_size() const { return object_size_; }
  std::size_t chunks() const;

 private:
  PerCpuPool(std::size_t object_size, std::size_t alignment, std::size_t per_chunk);
  void* refill_and_allocate();

  std::size_t object_size_;
  std::size_t alignment_;
  std::size_t per_chunk_;
  PerCpuList list_;
  mutable std::mutex mutex_;           // guards depot_ and chunks_
  PerCpuList::Node* depot_ = nullptr;  // drained objects, handed out before new chunks
  std::vector<void*> chunks_;
};

}  // namespace jitkit::rseq
