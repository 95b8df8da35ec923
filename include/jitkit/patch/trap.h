// jitkit/patch/trap.h — the SIGTRAP handler behind the breakpoint-first protocol.
//
// While a breakpoint round (patcher.h, path 3) is in progress, the first byte of every edited
// instruction is int3 (0xCC). A thread that executes it gets SIGTRAP with RIP just past the int3.
// jitkit's handler looks the address up in the process-wide table of breakpoints in flight and
// makes the thread behave as if it had executed one whole instruction:
//   call rel32 -> push the return address (insn + length) and continue at the target
//   jmp rel32/rel8 -> continue at the target
//   NOP (any length) -> continue at insn + length
// (the same emulations as the kernel's text_poke_bp handler, written here for user mode: the
// handler edits the interrupted context's RIP/RSP in its ucontext_t).
//
// A trap whose int3 has already been replaced by the finished instruction (the thread trapped,
// then was descheduled while the round completed) is re-executed: RIP is moved back onto the
// instruction, after a CPUID so that the core is serialized before it fetches the new bytes.
//
// Every other SIGTRAP goes to the handler that was installed before jitkit's:
//   SA_SIGINFO handler -> called with (sig, info, context)
//   plain handler      -> called with (sig)
//   SIG_DFL            -> the default action is restored and the signal re-raised (the process
//                         terminates with SIGTRAP and a core dump, as without jitkit)
//   SIG_IGN            -> a trap raised by an instruction (si_code SI_KERNEL) is made fatal like
//                         SIG_DFL, because the kernel itself resets an ignored synchronous
//                         SIGTRAP to SIG_DFL (force_sig); a SIGTRAP sent by kill/raise is ignored.
//
// Async-signal-safety: the handler uses only lock-free atomics, reads of code bytes and of the
// interrupted thread's stack, sigaction/sigprocmask/raise — all async-signal-safe.
#pragma once

#include <cstdint>

#include "jitkit/base/result.h"

namespace jitkit::patch {

// Installs jitkit's SIGTRAP handler if it is not the current one, remembering the current
// disposition as the one to forward unrelated traps to. Idempotent and thread-safe. Calling it
// again after another library replaced jitkit's handler chains to that library's handler.
Status install_trap_handler();

// Whether jitkit's handler is the process's current SIGTRAP disposition.
bool trap_handler_installed();

// Counters of the handler's decisions since process start (lock-free, for tests and the tour).
struct TrapStats {
  std::uint64_t emulated = 0;   // int3 of an edit in flight: call/jmp/nop emulated
  std::uint64_t restarted = 0;  // int3 already replaced: the instruction was re-executed
  std::uint64_t forwarded = 0;  // not jitkit's: passed to the previous disposition
};
TrapStats trap_stats();

}  // namespace jitkit::patch
