// src/x64/encoding_p.h — byte-level x86-64 encoding helpers shared by the assembler's emit path
// (src/x64/assembler.cpp) and its layout/encode step (src/x64/layout.cpp).
//
// Everything here writes into a caller-provided buffer that has room for one instruction
// (at most 15 bytes plus, for host-address sequences, a 10-byte `mov r64, imm64` in front), and
// returns the new end. Nothing allocates; nothing fails except by returning nullptr for operand
// combinations the hardware cannot encode (the caller turns that into a sticky error).
#pragma once

#include <cstdint>
#include <cstring>

#include "jitkit/base/bits.h"

namespace jitkit::x64::detail {

// An instruction's fixed encoding, packed into 32 bits so it folds to a constant at call sites:
//   bits 0-7   the last opcode byte
//   bits 8-9   escape: 0 none, 1 = 0F, 2 = 0F 38, 3 = 0F 3A
//   bits 10-11 mandatory prefix: 0 none, 1 = 66, 2 = F3, 3 = F2
//   bit 12     REX.W
//   bit 13     operand-size prefix 66 (16-bit operands), emitted before the mandatory prefix
constexpr std::uint32_t kEsc0F = 1u << 8;
constexpr std::uint32_t kP66 = 1u << 10;
constexpr std::uint32_t kPF3 = 2u << 10;
constexpr std::uint32_t kPF2 = 3u << 10;
constexpr std::uint32_t kW = 1u << 12;
constexpr std::uint32_t kOpSize16 = 1u << 13;

// Register values passed to the encoder: hardware number in bits 0-3, plus
constexpr unsigned kNeedsRex = 0x10;  // spl bpl sil dil: only addressable with a REX prefix
constexpr unsigned kHighByte = 0x20;  // ah ch dh bh: only addressable without one
constexpr std::uint8_t kNoReg = 0xFF;

inline void put32(std::uint8_t* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
inline void put64(std::uint8_t* p, std::uint64_t v) { std::memcpy(p, &v, 8); }
inline void put16(std::uint8_t* p, std::uint16_t v) { std::memcpy(p, &v, 2); }

// Legacy prefixes, REX (if `rex` has any bit or forcing), escape bytes and the opcode.
// `rex` holds W R X B in bits 3..0 and 0x40 to force an (empty) REX prefix.
[[gnu::always_inline]] inline std::uint8_t* put_head(std::uint8_t* p, std::uint32_t e, unsigned rex) {
  if (e & kOpSize16) *p++ = 0x66;
  switch ((e >> 10) & 3) {
    case 1:
      *p++ = 0x66;
      break;
    case 2:
      *p++ = 0xF3;
      break;
    case 3:
      *p++ = 0xF2;
      break;
    default:
      break;
  }
  if (rex) *p++ = static_cast<std::uint8_t>(0x40 | rex);
  switch ((e >> 8) & 3) {
    case 1:
      *p++ = 0x0F;
      break;
    case 2:
      *p++ = 0x0F;
      *p++ = 0x38;
      break;
    case 3:
      *p++ = 0x0F;
      *p++ = 0x3A;
      break;
    default:
      break;
  }
  *p++ = static_cast<std::uint8_t>(e);
  return p;
}

// The REX bits for `reg` (ModRM.reg) and `rm` (ModRM.rm or opcode+r), or -1 when a high-byte
// register would need REX.
[[gnu::always_inline]] inline int rex_for(std::uint32_t e, unsigned reg, unsigned rm, unsigned x = 0) {
  unsigned rex = ((e & kW) ? 8u : 0u) | ((reg & 8) >> 1) | ((x & 8) >> 2) | ((rm & 8) >> 3);
  unsigned flags = reg | rm;
  if (flags & kNeedsRex) rex |= 0x40;
  if ((flags & kHighByte) && rex) return -1;
  return static_cast<int>(rex);
}

// Register-direct form: opcode /r with ModRM.mod = 11.
[[gnu::always_inline]] inline std::uint8_t* put_rr(std::uint8_t* p, std::uint32_t e, unsigned reg,
                                                   unsigned rm) {
  int rex = rex_for(e, reg, rm);
  if (rex < 0) return nullptr;
  p = put_head(p, e, static_cast<unsigned>(rex));
  *p++ = static_cast<std::uint8_t>(0xC0 | ((reg & 7) << 3) | (rm & 7));
  return p;
}

// opcode+r form (B8+r, 50+r, 0F C8+r): the register goes into the opcode's low 3 bits.
[[gnu::always_inline]] inline std::uint8_t* put_o(std::uint8_t* p, std::uint32_t e, unsigned r) {
  int rex = rex_for(e, 0, r);
  if (rex < 0) return nullptr;
  return put_head(p, (e & ~0xFFu) | ((e + (r & 7)) & 0xFF), static_cast<unsigned>(rex));
}

// How a memory operand is addressed once its kind is resolved.
struct Addr {
  enum Mode : std::uint8_t { kRegs, kRip, kAbs32 } mode = kRegs;
  std::uint8_t base = kNoReg;
  std::uint8_t index = kNoReg;
  std::uint8_t scale_log2 = 0;
  std::int32_t disp = 0;
};

// Memory form: prefixes, REX, opcode, ModRM, SIB, displacement. Returns nullptr for rsp as an
// index or a high-byte register beside REX. For kRip the displacement is written as `disp` and
// patched by the caller (it is the last 4 bytes before any immediate).
[[gnu::always_inline]] inline std::uint8_t* put_mem(std::uint8_t* p, std::uint32_t e, unsigned reg,
                                                    const Addr& a) {
  if (a.mode == Addr::kRip) {
    int rex = rex_for(e, reg, 0);
    if (rex < 0) return nullptr;
    p = put_head(p, e, static_cast<unsigned>(rex));
    *p++ = static_cast<std::uint8_t>(((reg & 7) << 3) | 5);
    put32(p, static_cast<std::uint32_t>(a.disp));
    return p + 4;
  }
  if (a.index == 4) return nullptr;  // rsp cannot be an index
  unsigned base = a.base == kNoReg ? 0 : a.base;
  unsigned index = a.index == kNoReg ? 0 : a.index;
  int rex = rex_for(e, reg, base, index);
  if (rex < 0) return nullptr;
  p = put_head(p, e, static_cast<unsigned>(rex));
  unsigned r = (reg & 7) << 3;
  unsigned idx3 = a.index == kNoReg ? 4u : (a.index & 7u);
  if (a.base == kNoReg) {
    // [index*scale + disp32] or [disp32]: ModRM.rm = 100 (SIB), SIB.base = 101 with mod 00.
    *p++ = static_cast<std::uint8_t>(r | 4);
    *p++ = static_cast<std::uint8_t>((a.scale_log2 << 6) | (idx3 << 3) | 5);
    put32(p, static_cast<std::uint32_t>(a.disp));
    return p + 4;
  }
  bool sib = a.index != kNoReg || (a.base & 7) == 4;  // rsp/r12 as base need a SIB byte
  unsigned mod;
  if (a.disp == 0 && (a.base & 7) != 5) {  // rbp/r13 with mod 00 would mean RIP/disp32
    mod = 0;
  } else if (fits_signed<8>(a.disp)) {
    mod = 1;
  } else {
    mod = 2;
  }
  *p++ = static_cast<std::uint8_t>((mod << 6) | r | (sib ? 4 : (a.base & 7)));
  if (sib) *p++ = static_cast<std::uint8_t>((a.scale_log2 << 6) | (idx3 << 3) | (a.base & 7));
  if (mod == 1) {
    *p++ = static_cast<std::uint8_t>(a.disp);
  } else if (mod == 2) {
    put32(p, static_cast<std::uint32_t>(a.disp));
    p += 4;
  }
  return p;
}

inline std::uint8_t* put_imm(std::uint8_t* p, unsigned size, std::int64_t v) {
  switch (size) {
    case 1:
      *p = static_cast<std::uint8_t>(v);
      return p + 1;
    case 2:
      put16(p, static_cast<std::uint16_t>(v));
      return p + 2;
    case 4:
      put32(p, static_cast<std::uint32_t>(v));
      return p + 4;
    case 8:
      put64(p, static_cast<std::uint64_t>(v));
      return p + 8;
    default:
      return p;
  }
}

// One NOP instruction of `n` bytes (1..15), in the forms GNU as uses for code alignment.
inline std::uint8_t* put_nop(std::uint8_t* p, unsigned n) {
  static constexpr std::uint8_t kNops[10][10] = {
      {},
      {0x90},
      {0x66, 0x90},
      {0x0F, 0x1F, 0x00},
      {0x0F, 0x1F, 0x40, 0x00},
      {0x0F, 0x1F, 0x44, 0x00, 0x00},
      {0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00},
      {0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00},
      {0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
      {0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
  };
  if (n <= 9) {
    std::memcpy(p, kNops[n], n);
    return p + n;
  }
  // 10..15 bytes: extra 66 prefixes and a CS override in front of the 8-byte form.
  unsigned prefixes = n - 9;  // 66 x prefixes, then 2E
  for (unsigned i = 0; i < prefixes; ++i) *p++ = 0x66;
  *p++ = 0x2E;
  std::memcpy(p, kNops[8], 8);
  return p + 8;
}

// Padding of `n` bytes as NOP instructions of at most 11 bytes each (longer NOPs decode slowly
// on some cores).
inline std::uint8_t* put_nops(std::uint8_t* p, unsigned n) {
  while (n > 0) {
    unsigned k = n > 11 ? 11 : n;
    p = put_nop(p, k);
    n -= k;
  }
  return p;
}

}  // namespace jitkit::x64::detail
