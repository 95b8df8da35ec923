// jitkit/rseq/section.h — what every per-CPU critical section shares, whatever the ISA.
//
// The per-CPU structures (percpu.h) and the slow paths behind them see a critical section only
// through this interface: the slot layout it works on, the outcomes of one attempt, and the
// intrusive list node. Each ISA implements the sections themselves in its own header
// (x86_64/critical_section.h); percpu.h picks the one for the target.
#pragma once

#include <cstdint>

namespace jitkit::rseq {

// Per-CPU slots: one cache line per slot, indexed by the CPU number or the concurrency id. In a
// slot, word 0 is the data (counter value, list head, stored word) and word 1 is the slot lock,
// non-zero while a cross-CPU operation owns the slot (see percpu.h).
inline constexpr unsigned kSlotBytes = 64;
inline constexpr unsigned kSlotShift = 6;
static_assert(kSlotBytes == 1u << kSlotShift);

namespace detail {

// Outcome of one attempt at a critical section.
// kNotAttempted: the caller had no registered area and did not run the section.
enum class Attempt { kCommitted, kAborted, kLocked, kMismatch, kEmpty, kNotAttempted };

// Intrusive list node: the first word of every element is its `next` pointer.
struct ListNode {
  ListNode* next;
};

}  // namespace detail
}  // namespace jitkit::rseq
