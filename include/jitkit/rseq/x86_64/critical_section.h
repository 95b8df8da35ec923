// jitkit/rseq/x86_64/critical_section.h — the ahead-of-time critical sections, x86-64 inline asm.
//
// Each function below is one critical section in GNU inline asm. It arms the section (stores its
// descriptor's address into RseqArea::rseq_cs), reads the per-CPU index, loads, computes, and
// ends with the commit: the one store that publishes the result (a push also writes the new
// node's link before it, which nobody can see until the commit). The kernel restarts it at the abort handler
// if the thread is preempted, migrated or signalled between start_ip and the commit; the handler jumps back
// to C++, which counts the abort and retries (a bounded number of times).
//
// Where a debugger finds them (the layout is the one of the Linux rseq selftests, so tools that
// know it work unchanged):
//   __rseq_cs                 RseqCs descriptors (32-byte aligned): version 0, flags 0,
//                             start_ip, post_commit_offset, abort_ip.
//   __rseq_cs_ptr_array       one 8-byte pointer per descriptor.
//   __rseq_exit_point_array   pairs of 8-byte addresses (start_ip, exit_ip): every way out of a
//                             section other than the commit and the abort (e.g. "compare failed").
//   __rseq_failure            the abort handlers: `0f b9 3d <kSignature>` (the 7-byte
//                             `ud1 0x53053053(%rip),%edi`, so disassemblers stay in sync and a
//                             stray jump to it traps), then abort_ip.
// A debugger that single-steps inside [start_ip, start_ip + post_commit_offset) must also set a
// breakpoint at abort_ip, or the kernel's restart escapes it. The linker defines
// __start___rseq_cs / __stop___rseq_cs (and likewise for the arrays), so a program can also
// walk them itself (see tests/rseq/descriptor_sections_test.cpp).
//
// Why the sections survive --gc-sections and inline functions: they are "aw" with the R flag
// (SHF_GNU_RETAIN: never garbage-collected) and the `?` flag (member of the enclosing function's
// COMDAT group, if any). When an inline function is emitted in several objects, the linker keeps
// one copy of the group, descriptor and abort handler included, so no descriptor ever points
// into a discarded copy of the code.
//
// Per-CPU slots: `slots` points at an array of 64-byte (cache-line) slots indexed by the value at
// byte offset `index_offset` of the area (4: cpu_id, 24: mm_cid). In a slot, word 0 is the data
// (counter value, list head, stored word) and word 1 is the slot lock, non-zero while a cross-CPU
// operation owns the slot (see percpu.h): sections that modify a locked slot exit without
// committing.
//
// The instructions of each section are written once, as a macro (JITKIT_RSEQ_*_) that takes the
// text to place between the loads and the commit. The functions below expand it with nothing:
// the production sections contain no delay and reference no test state. The stress tests expand
// the same macros with a delay loop (src/rseq/test_hooks_p.h), so the code they hammer is this
// code plus the loop; that is why the macros stay defined after this header.
#pragma once

#include <cstdint>

#include "jitkit/rseq/rseq.h"
#include "jitkit/rseq/section.h"

namespace jitkit::rseq {

namespace detail {

// The asm below is laid out one instruction per line; keep the formatter away from it.
// clang-format off

// Descriptor, pointer-array entry and abort handler of the section whose start label is 1, commit
// end label 2, descriptor label 3 and abort label 4 (GNU numeric local labels, private to each
// asm statement's expansion). `abort` names the asm-goto label the handler jumps to.
#define JITKIT_RSEQ_DESCRIPTOR_                                         \
  ".pushsection __rseq_cs, \"aw?R\", @progbits\n\t"                     \
  ".balign 32\n"                                                        \
  "3:\n\t"                                                              \
  ".long 0, 0\n\t"                                                      \
  ".quad 1f, (2f - 1f), 4f\n\t"                                         \
  ".popsection\n\t"                                                     \
  ".pushsection __rseq_cs_ptr_array, \"aw?R\", @progbits\n\t"           \
  ".balign 8\n\t"                                                       \
  ".quad 3b\n\t"                                                        \
  ".popsection\n\t"

#define JITKIT_RSEQ_EXIT_POINT_(label)                                  \
  ".pushsection __rseq_exit_point_array, \"aw?R\", @progbits\n\t"       \
  ".balign 8\n\t"                                                       \
  ".quad 1f, %l[" #label "]\n\t"                                        \
  ".popsection\n\t"

#define JITKIT_RSEQ_ABORT_HANDLER_(label)                               \
  ".pushsection __rseq_failure, \"ax?\", @progbits\n\t"                 \
  ".byte 0x0f, 0xb9, 0x3d\n\t"                                          \
  ".long 0x53053053\n"                                                  \
  "4:\n\t"                                                              \
  "jmp %l[" #label "]\n\t"                                              \
  ".popsection\n\t"

// Arms the section: rseq_cs = &descriptor. A plain store: only this thread and the kernel (on
// this thread's behalf) touch rseq_cs. Clobbers rax.
#define JITKIT_RSEQ_ARM_                                                \
  "leaq 3b(%%rip), %%rax\n\t"                                           \
  "movq %%rax, 8(%[area])\n"

// rax = address of this CPU's slot. The index is read INSIDE the section: if the thread migrates
// after this load, the kernel aborts the section, so the slot is never written from a CPU that
// does not own it.
#define JITKIT_RSEQ_SLOT_                                               \
  "movl (%[area], %[idx_off]), %%eax\n\t"                               \
  "shlq $6, %%rax\n\t"                                                  \
  "addq %[slots], %%rax\n\t"

// What production sections place between the loads and the commit: nothing.
#define JITKIT_RSEQ_NO_DELAY_ ""

// slot[idx].word += delta, as load, add, store (the store commits).
#define JITKIT_RSEQ_COUNTER_ADD_(delay)                                 \
  JITKIT_RSEQ_DESCRIPTOR_ JITKIT_RSEQ_ARM_                              \
  "1:\n\t" JITKIT_RSEQ_SLOT_                                            \
  "movq (%%rax), %%rcx\n\t"                                             \
  delay                                                                 \
  "addq %[delta], %%rcx\n\t"                                            \
  "movq %%rcx, (%%rax)\n"                                               \
  "2:\n\t" JITKIT_RSEQ_ABORT_HANDLER_(aborted)

__attribute__((always_inline)) inline Attempt counter_add(RseqArea* area, std::uint8_t* slots,
                                                          std::uintptr_t index_offset,
                                                          std::int64_t delta) {
  asm goto(JITKIT_RSEQ_COUNTER_ADD_(JITKIT_RSEQ_NO_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [delta] "r"(delta)
           : "rax", "rcx", "memory", "cc"
           : aborted);
  return Attempt::kCommitted;
aborted:
  return Attempt::kAborted;
}

// if (slot[idx].word == expected) slot[idx].word = desired. *slot_out = idx (written before the
// comparison, so it is valid for kCommitted and kMismatch).
#define JITKIT_RSEQ_COMPARE_STORE_(delay)                               \
  JITKIT_RSEQ_DESCRIPTOR_ JITKIT_RSEQ_EXIT_POINT_(locked)               \
  JITKIT_RSEQ_EXIT_POINT_(mismatch) JITKIT_RSEQ_ARM_                    \
  "1:\n\t"                                                              \
  "movl (%[area], %[idx_off]), %%eax\n\t"                               \
  "movl %%eax, (%[slot_out])\n\t"                                       \
  "shlq $6, %%rax\n\t"                                                  \
  "addq %[slots], %%rax\n\t"                                            \
  "cmpq $0, 8(%%rax)\n\t"                                               \
  "jnz %l[locked]\n\t"                                                  \
  "cmpq %[expected], (%%rax)\n\t"                                       \
  "jnz %l[mismatch]\n\t"                                                \
  delay                                                                 \
  "movq %[desired], (%%rax)\n"                                          \
  "2:\n\t" JITKIT_RSEQ_ABORT_HANDLER_(aborted)

__attribute__((always_inline)) inline Attempt compare_store(RseqArea* area, std::uint8_t* slots,
                                                            std::uintptr_t index_offset,
                                                            std::uint64_t expected,
                                                            std::uint64_t desired,
                                                            std::uint32_t* slot_out) {
  asm goto(JITKIT_RSEQ_COMPARE_STORE_(JITKIT_RSEQ_NO_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [expected] "r"(expected), [desired] "r"(desired), [slot_out] "r"(slot_out)
           : "rax", "memory", "cc"
           : aborted, locked, mismatch);
  return Attempt::kCommitted;
aborted:
  return Attempt::kAborted;
locked:
  return Attempt::kLocked;
mismatch:
  return Attempt::kMismatch;
}

// node->next = head; head = node (the store of head commits). Writing node->next inside the
// section is safe: the node is not reachable by anyone until the commit, and a restart simply
// writes it again.
#define JITKIT_RSEQ_LIST_PUSH_(delay)                                   \
  JITKIT_RSEQ_DESCRIPTOR_ JITKIT_RSEQ_EXIT_POINT_(locked) JITKIT_RSEQ_ARM_ \
  "1:\n\t" JITKIT_RSEQ_SLOT_                                            \
  "cmpq $0, 8(%%rax)\n\t"                                               \
  "jnz %l[locked]\n\t"                                                  \
  "movq (%%rax), %%rcx\n\t"                                             \
  "movq %%rcx, (%[node])\n\t"                                           \
  delay                                                                 \
  "movq %[node], (%%rax)\n"                                             \
  "2:\n\t" JITKIT_RSEQ_ABORT_HANDLER_(aborted)

__attribute__((always_inline)) inline Attempt list_push(RseqArea* area, std::uint8_t* slots,
                                                        std::uintptr_t index_offset,
                                                        ListNode* node) {
  asm goto(JITKIT_RSEQ_LIST_PUSH_(JITKIT_RSEQ_NO_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [node] "r"(node)
           : "rax", "rcx", "memory", "cc"
           : aborted, locked);
  return Attempt::kCommitted;
aborted:
  return Attempt::kAborted;
locked:
  return Attempt::kLocked;
}

// head' = head->next; *out = head (the store of head commits; *out is written after the commit,
// from a register). Reading head->next is safe: while the section runs, no other thread can
// change this CPU's list (a cross-CPU operation first locks the slot and fences).
#define JITKIT_RSEQ_LIST_POP_(delay)                                    \
  JITKIT_RSEQ_DESCRIPTOR_ JITKIT_RSEQ_EXIT_POINT_(locked)               \
  JITKIT_RSEQ_EXIT_POINT_(empty) JITKIT_RSEQ_ARM_                       \
  "1:\n\t" JITKIT_RSEQ_SLOT_                                            \
  "cmpq $0, 8(%%rax)\n\t"                                               \
  "jnz %l[locked]\n\t"                                                  \
  "movq (%%rax), %%rcx\n\t"                                             \
  "testq %%rcx, %%rcx\n\t"                                              \
  "jz %l[empty]\n\t"                                                    \
  "movq (%%rcx), %%rsi\n\t"                                             \
  delay                                                                 \
  "movq %%rsi, (%%rax)\n"                                               \
  "2:\n\t"                                                              \
  "movq %%rcx, (%[out])\n\t" JITKIT_RSEQ_ABORT_HANDLER_(aborted)

__attribute__((always_inline)) inline Attempt list_pop(RseqArea* area, std::uint8_t* slots,
                                                       std::uintptr_t index_offset,
                                                       ListNode** out) {
  asm goto(JITKIT_RSEQ_LIST_POP_(JITKIT_RSEQ_NO_DELAY_)
           :
           : [area] "r"(area), [slots] "r"(slots), [idx_off] "r"(index_offset),
             [out] "r"(out)
           : "rax", "rcx", "rsi", "memory", "cc"
           : aborted, locked, empty);
  return Attempt::kCommitted;
aborted:
  return Attempt::kAborted;
locked:
  return Attempt::kLocked;
empty:
  return Attempt::kEmpty;
}

// clang-format on

}  // namespace detail
}  // namespace jitkit::rseq
