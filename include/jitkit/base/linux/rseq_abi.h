// jitkit/base/linux/rseq_abi.h — the Linux kernel's restartable-sequence descriptor, as jitkit
// reads and writes it.
//
// `struct rseq_cs` (include/uapi/linux/rseq.h) describes one critical section to the kernel. Two
// sibling layers need its layout: rseq writes descriptors (ahead of time in ELF sections, and at
// run time for JIT-emitted sections), and debug reads them to name a section's start, commit and
// abort addresses for gdb. Neither may include the other, so the layout lives here, once, with
// its offsets pinned by static_asserts (src/rseq/linux/registration.cpp also checks them against
// the kernel header itself).
#pragma once

#include <cstddef>
#include <cstdint>

namespace jitkit {

// struct rseq_cs: one critical-section descriptor. The kernel reads it when it preempts or
// signals a thread whose rseq area points at it; if the interrupted instruction lies in
// [start_ip, start_ip + post_commit_offset), it moves the thread to abort_ip, whose 4 preceding
// bytes must be the signature the thread registered. 32-byte aligned, as the kernel requires.
struct alignas(32) RseqCs {
  std::uint32_t version;             // 0: the only version the kernel knows
  std::uint32_t flags;               // 0
  std::uint64_t start_ip;            // first instruction of the section (after arming rseq_cs)
  std::uint64_t post_commit_offset;  // length: the commit is the last instruction before it
  std::uint64_t abort_ip;            // abort handler, outside [start_ip, start_ip + length)
};
static_assert(sizeof(RseqCs) == 32 && alignof(RseqCs) == 32);
static_assert(offsetof(RseqCs, version) == 0 && offsetof(RseqCs, flags) == 4 &&
              offsetof(RseqCs, start_ip) == 8 && offsetof(RseqCs, post_commit_offset) == 16 &&
              offsetof(RseqCs, abort_ip) == 24);

}  // namespace jitkit
