// src/patch/x86_64/insn.cpp — decoding of the emulatable instruction forms (see insn_p.h).
#include "patch/x86_64/insn_p.h"

#include <cstring>

namespace jitkit::patch::detail::x86_64 {

std::size_t nop_length(const std::uint8_t* bytes, std::size_t avail) {
  std::size_t i = 0;
  while (i < avail && bytes[i] == 0x66) ++i;  // operand-size prefixes pad the long NOPs
  if (i < avail && bytes[i] == 0x90) return i + 1;
  if (i + 3 > avail || bytes[i] != 0x0F || bytes[i + 1] != 0x1F) return 0;
  const std::uint8_t modrm = bytes[i + 2];
  if (((modrm >> 3) & 7) != 0) return 0;  // 0F 1F /0 is NOP; other /r are reserved hints
  const unsigned mod = modrm >> 6;
  const unsigned rm = modrm & 7;
  std::size_t n = i + 3;
  if (mod != 3 && rm == 4) {  // SIB byte
    if (n >= avail) return 0;
    const unsigned base = bytes[n] & 7;
    ++n;
    if (mod == 0 && base == 5) n += 4;
  } else if (mod == 0 && rm == 5) {
    n += 4;  // RIP-relative disp32 (never dereferenced by a NOP)
  }
  if (mod == 1) n += 1;
  if (mod == 2) n += 4;
  return n <= avail ? n : 0;
}

std::optional<Emulation> emulation_of(const std::uint8_t* bytes, std::size_t length, std::uintptr_t address) {
  if (length == 0) return std::nullopt;
  std::int32_t rel = 0;
  if (length == 5 && (bytes[0] == kCallRel32 || bytes[0] == kJmpRel32)) {
    std::memcpy(&rel, bytes + 1, 4);
    const std::uintptr_t target = address + 5 + static_cast<std::intptr_t>(rel);
    return Emulation{bytes[0] == kCallRel32 ? EmulatedOp::kCall : EmulatedOp::kJump, 5, target};
  }
  if (length == 2 && bytes[0] == kJmpRel8) {
    const auto rel8 = static_cast<std::int8_t>(bytes[1]);
    return Emulation{EmulatedOp::kJump, 2, address + 2 + static_cast<std::intptr_t>(rel8)};
  }
  if (nop_length(bytes, length) == length) {
    return Emulation{EmulatedOp::kNop, static_cast<std::uint8_t>(length), address + length};
  }
  return std::nullopt;
}

}  // namespace jitkit::patch::detail::x86_64
