// Private, for tests only: the rseq module's test hooks (CONTRIBUTING.md). Nothing in the library
// calls these on a production path, and no public header declares them.
//
// Delay injection. A critical section is a handful of instructions, so in a test run the kernel
// almost never preempts, migrates or signals a thread inside one: the abort and restart paths
// would go unexercised, however long the stress runs. No real condition makes those windows wide
// on demand, so the tests use copies of the sections with a delay loop of `inject_spins`
// iterations between the loads and the commit. The copies expand the same instruction text as
// the production sections (the JITKIT_RSEQ_*_ macros of x86_64/critical_section.h, and the same
// emitters for the JIT-emitted ones), so what the tests verify is the production code plus the
// loop, and they retry through the same loop as the production slow paths (retry_p.h).
#pragma once

#include <cstdint>
#include <memory>

#include "jitkit/base/result.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/rseq/jit.h"
#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"
#include "rseq/retry_p.h"

namespace jitkit::rseq::test_hooks {

// Forces the fallback (non-rseq) paths for the whole process. Only allowed before the first
// operation, because the decision is made once; kInvalidState afterwards. Kept as a hook because
// a test process cannot take rseq away from itself once glibc has registered it; the other
// honest test of the fallback runs a child under a seccomp filter that refuses rseq(2)
// (registration_test). Defined in linux/registration.cpp.
Status force_unavailable();

// Iterations of the delay loop of every delay-injected section, read at each attempt (0: no
// delay). Defined in test_hooks.cpp.
extern std::uint32_t inject_spins;

// Sets inject_spins for a scope.
class ScopedInjectedDelay {
 public:
  explicit ScopedInjectedDelay(std::uint32_t spins) { inject_spins = spins; }
  ~ScopedInjectedDelay() { inject_spins = 0; }
  ScopedInjectedDelay(const ScopedInjectedDelay&) = delete;
  ScopedInjectedDelay& operator=(const ScopedInjectedDelay&) = delete;
};

// JitCounterAdd::create() / JitListOps::create() with the delay loop in every section
// (src/rseq/x86_64/jit_test_hooks.cpp). Their add(), push() and pop() are the production ones.
Result<std::unique_ptr<JitCounterAdd>> create_counter_add_with_injected_delay(code::CodeZone& zone,
                                                                              const JitOptions& options = {});
Result<std::unique_ptr<JitListOps>> create_list_ops_with_injected_delay(code::CodeZone& zone,
                                                                        const JitOptions& options = {});

#if defined(__x86_64__)

// The ahead-of-time sections of x86_64/critical_section.h with the delay loop before the commit.
// The loop clobbers rdx; everything else is as in production.
// clang-format off
#define JITKIT_RSEQ_TEST_DELAY_                                         \
  "movl %[spins], %%edx\n"                                              \
  "5:\n\t"                                                              \
  "testl %%edx, %%edx\n\t"                                              \
  "jz 6f\n\t"                                                           \
  "decl %%edx\n\t"                                                      \
  "jmp 5b\n"                                                            \
  "6:\n\t"

__attribute__((always_inline)) inline detail::Attempt delayed_counter_add(RseqArea* area, std::uint8_t* slots, std::uintptr_t index_offset,
                                           std::int64_t delta) {
  asm goto(JITKIT_RSEQ_COUNTER_ADD_(JITKIT_RSEQ_TEST_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [delta] "r"(delta), [spins] "m"(inject_spins)
           : "rax", "rcx", "rdx", "memory", "cc"
           : aborted);
  return detail::Attempt::kCommitted;
aborted:
  return detail::Attempt::kAborted;
}

__attribute__((always_inline)) inline detail::Attempt delayed_compare_store(RseqArea* area, std::uint8_t* slots, std::uintptr_t index_offset,
                                             std::uint64_t expected, std::uint64_t desired,
                                             std::uint32_t* slot_out) {
  asm goto(JITKIT_RSEQ_COMPARE_STORE_(JITKIT_RSEQ_TEST_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [expected] "r"(expected), [desired] "r"(desired), [slot_out] "r"(slot_out),
             [spins] "m"(inject_spins)
           : "rax", "rdx", "memory", "cc"
           : aborted, locked, mismatch);
  return detail::Attempt::kCommitted;
aborted:
  return detail::Attempt::kAborted;
locked:
  return detail::Attempt::kLocked;
mismatch:
  return detail::Attempt::kMismatch;
}

__attribute__((always_inline)) inline detail::Attempt delayed_list_push(RseqArea* area, std::uint8_t* slots, std::uintptr_t index_offset,
                                         detail::ListNode* node) {
  asm goto(JITKIT_RSEQ_LIST_PUSH_(JITKIT_RSEQ_TEST_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [node] "r"(node), [spins] "m"(inject_spins)
           : "rax", "rcx", "rdx", "memory", "cc"
           : aborted, locked);
  return detail::Attempt::kCommitted;
aborted:
  return detail::Attempt::kAborted;
locked:
  return detail::Attempt::kLocked;
}

__attribute__((always_inline)) inline detail::Attempt delayed_list_pop(RseqArea* area, std::uint8_t* slots, std::uintptr_t index_offset,
                                        detail::ListNode** out) {
  asm goto(JITKIT_RSEQ_LIST_POP_(JITKIT_RSEQ_TEST_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [out] "r"(out), [spins] "m"(inject_spins)
           : "rax", "rcx", "rdx", "rsi", "memory", "cc"
           : aborted, locked, empty);
  return detail::Attempt::kCommitted;
aborted:
  return detail::Attempt::kAborted;
locked:
  return detail::Attempt::kLocked;
empty:
  return detail::Attempt::kEmpty;
}
// clang-format on

#undef JITKIT_RSEQ_TEST_DELAY_

// The operations of percpu.h through the delayed sections: a first attempt, then the production
// retry loop, then the production fallback, each as the production operation does it.

inline void add_with_injected_delay(PerCpuCounter& counter, std::int64_t delta) {
  auto section = [&](RseqArea* area) {
    return delayed_counter_add(area, counter.slot_base(), counter.index_offset(), delta);
  };
  RseqArea* area = detail::tls_area;
  detail::Attempt a = area != nullptr ? section(area) : detail::Attempt::kNotAttempted;
  if (a == detail::Attempt::kCommitted) return;
  a = detail::retry_section(a, section);
  if (a == detail::Attempt::kCommitted) return;
  if (a == detail::Attempt::kNotAttempted) {
    counter.add(delta);  // no area in this thread: add() takes the same fallback
  } else {
    counter.add_fallback(delta);  // retries exhausted: the atomic cell, as add() does
  }
}

inline PerCpuWord::Outcome compare_and_store_with_injected_delay(PerCpuWord& word, std::uint64_t expected,
                                                                 std::uint64_t desired) {
  std::uint32_t slot = 0;
  auto section = [&](RseqArea* area) {
    return delayed_compare_store(area, word.slot_base(), word.index_offset(), expected, desired, &slot);
  };
  RseqArea* area = detail::tls_area;
  detail::Attempt a = area != nullptr ? section(area) : detail::Attempt::kNotAttempted;
  if (a != detail::Attempt::kCommitted && a != detail::Attempt::kMismatch)
    a = detail::retry_section(a, section);
  if (a == detail::Attempt::kCommitted) return {true, slot};
  if (a == detail::Attempt::kMismatch) return {false, slot};
  return word.compare_and_store_locked(expected, desired);
}

inline void push_with_injected_delay(PerCpuList& list, PerCpuList::Node* node) {
  detail::tsan_release(node);
  auto section = [&](RseqArea* area) {
    return delayed_list_push(area, list.slot_base(), list.index_offset(), node);
  };
  RseqArea* area = detail::tls_area;
  detail::Attempt a = area != nullptr ? section(area) : detail::Attempt::kNotAttempted;
  if (a != detail::Attempt::kCommitted) a = detail::retry_section(a, section);
  if (a == detail::Attempt::kCommitted) return;
  list.push_locked(node);
}

inline PerCpuList::Node* pop_with_injected_delay(PerCpuList& list) {
  PerCpuList::Node* out = nullptr;
  auto section = [&](RseqArea* area) {
    return delayed_list_pop(area, list.slot_base(), list.index_offset(), &out);
  };
  RseqArea* area = detail::tls_area;
  detail::Attempt a = area != nullptr ? section(area) : detail::Attempt::kNotAttempted;
  if (a != detail::Attempt::kCommitted && a != detail::Attempt::kEmpty) a = detail::retry_section(a, section);
  if (a == detail::Attempt::kCommitted) {
    detail::tsan_acquire(out);
    return out;
  }
  if (a == detail::Attempt::kEmpty) return nullptr;
  return list.pop_locked();
}

// PerCpuPool::allocate() / free() through the delayed list sections. An empty free list is
// refilled by allocate() (after one more, undelayed, pop).
inline void* allocate_with_injected_delay(PerCpuPool& pool) {
  if (PerCpuList::Node* n = pop_with_injected_delay(pool.free_list())) return n;
  return pool.allocate();
}

inline void free_with_injected_delay(PerCpuPool& pool, void* object) {
  push_with_injected_delay(pool.free_list(), static_cast<PerCpuList::Node*>(object));
}

#endif  // defined(__x86_64__)

}  // namespace jitkit::rseq::test_hooks
