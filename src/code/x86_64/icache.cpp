// x86-64 instruction-cache maintenance for jitkit/code/sync.h.
//
// x86 snoops stores against the instruction caches and the decoded-instruction caches by
// physical address, so bytes written through the RW view are seen at the RX address with no
// explicit maintenance (Intel SDM vol. 3, 11.6 "Self-Modifying Code"). What remains is the
// compiler: it must not move the stores into code memory past this point, where the caller is
// about to jump into it. An AArch64 port replaces this file with dc cvau / dsb ish /
// ic ivau / dsb ish / isb over the range.
#include <atomic>

#include "jitkit/code/sync.h"

namespace jitkit::code {

void flush_icache(const void* /*addr*/, std::size_t /*n*/) noexcept {
  // Compiler-only barrier: prevents the stores that wrote the code from being reordered (or
  // deferred) after the indirect call into it.
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

}  // namespace jitkit::code
