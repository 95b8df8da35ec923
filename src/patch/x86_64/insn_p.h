// src/patch/x86_64/insn_p.h — the few x86-64 instruction forms the patcher writes and the trap
// handler emulates: call rel32, jmp rel32, jmp rel8 and NOPs. Nothing else is decoded here; the
// patcher refuses an edit whose old and new instructions are both outside this set, because a
// thread hitting its int3 could not be made to behave as if it had run either.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "jitkit/code/x86_64/trap_fill.h"

namespace jitkit::patch::detail::x86_64 {

using code::x86_64::kInt3;  // the breakpoint byte, shared with the code zones' fill
inline constexpr std::uint8_t kCallRel32 = 0xE8;
inline constexpr std::uint8_t kJmpRel32 = 0xE9;
inline constexpr std::uint8_t kJmpRel8 = 0xEB;
// The 5-byte NOP recommended by the Intel SDM (NOP DWORD ptr [EAX + EAX*1 + 00H]).
inline constexpr std::uint8_t kNop5[5] = {0x0F, 0x1F, 0x44, 0x00, 0x00};

enum class EmulatedOp : std::uint8_t { kCall, kJump, kNop };

// What a thread that hits the int3 of an edited instruction is made to do.
struct Emulation {
  EmulatedOp op;
  std::uint8_t length;    // bytes of the instruction (the return address / fall-through)
  std::uintptr_t target;  // kCall, kJump: destination
};

// If `bytes` (exactly `length` bytes, at executable address `address`) is one call rel32,
// jmp rel32, jmp rel8 or NOP instruction, what executing it does.
std::optional<Emulation> emulation_of(const std::uint8_t* bytes, std::size_t length, std::uintptr_t address);

// Length of the NOP at `bytes` if it is one (0x90, 66 90, [66...] 0F 1F /0 with any ModRM form),
// else 0. `avail` bounds the read.
std::size_t nop_length(const std::uint8_t* bytes, std::size_t avail);

// rel32 for a branch whose next instruction starts at `next`, to `target`, if in reach.
inline std::optional<std::int32_t> rel32_between(std::uintptr_t next, std::uintptr_t target) {
  const std::int64_t d = static_cast<std::int64_t>(target - next);
  if (d < INT32_MIN || d > INT32_MAX) return std::nullopt;
  return static_cast<std::int32_t>(d);
}

}  // namespace jitkit::patch::detail::x86_64
