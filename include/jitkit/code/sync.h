// jitkit/code/sync.h — making written code visible to the instruction stream.
//
// Two steps follow every write to code, and they live here, in one place, so that a port to an
// architecture with incoherent instruction caches (AArch64: dc cvau / ic ivau / isb) changes
// only this module:
//   flush_icache()          per range, on the writing core. x86-64 keeps instruction caches
//                           coherent with stores (by physical address, so writes through the
//                           RW view are seen at the RX address): a compiler barrier suffices.
//   serialize_all_cores()   before other threads run new or patched code: every core running
//                           this process executes a core-serializing instruction, so that no
//                           core executes instruction bytes it fetched before the write (the
//                           cross-modifying-code rule of the Intel SDM, vol. 3, 8.1.3).
//                           Linux: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE),
//                           registered once per process on first use.
#pragma once

#include <cstddef>

#include "jitkit/base/result.h"

namespace jitkit::code {

// Instruction-cache maintenance after writing [addr, addr + n). No-op on x86-64 apart from a
// compiler barrier (the compiler must not sink the code stores below the call into the code).
void flush_icache(const void* addr, std::size_t n) noexcept;

// Serializes every core that runs a thread of this process. Registers
// MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE once (thread-safe). Fails with
// kUnsupported and the kernel's reason when membarrier or its SYNC_CORE command is unavailable
// (old kernel, seccomp, valgrind); the caller must then not let other threads run new code.
[[nodiscard]] Status serialize_all_cores();

// True once serialize_all_cores() can work (probes and registers if not done yet).
bool cross_core_sync_available();

}  // namespace jitkit::code
