// jitkit/x64/registers.h — typed x86-64 registers and condition codes.
//
// Every register width is its own type: `Gp8`, `Gp16`, `Gp32`, `Gp64` and `Xmm`. The assembler's
// instruction overloads take matching types, so a width mismatch such as `mov(rax, ecx)` has no
// overload and fails to compile. A register is one byte (its hardware number 0..15), so operands
// are passed in registers and copied for free.
//
// The 8-bit registers come in two flavours that the encoding cannot mix: `spl bpl sil dil` and
// `r8b..r15b` need a REX prefix, `ah ch dh bh` exist only without one. Using both kinds in one
// instruction (or `ah` with a memory operand that needs REX) is a sticky assembler error.
#pragma once

#include <cstdint>
#include <string_view>

namespace jitkit::x64 {

// A general-purpose register of `Bits` width; `id` is the hardware number (0 = rax ... 15 = r15).
template <unsigned Bits>
struct Gp {
  static constexpr unsigned kBits = Bits;
  static constexpr unsigned kBytes = Bits / 8;
  std::uint8_t id;
  constexpr bool operator==(const Gp&) const = default;
};

using Gp16 = Gp<16>;
using Gp32 = Gp<32>;
using Gp64 = Gp<64>;

// An 8-bit register. `high` selects ah/ch/dh/bh (hardware numbers 4..7 without REX).
struct Gp8 {
  static constexpr unsigned kBits = 8;
  static constexpr unsigned kBytes = 1;
  std::uint8_t id;
  bool high = false;
  constexpr bool operator==(const Gp8&) const = default;
};

// An SSE register xmm0..xmm15.
struct Xmm {
  std::uint8_t id;
  constexpr bool operator==(const Xmm&) const = default;
};

// The other widths of a general-purpose register (same hardware number).
constexpr Gp64 to_gp64(Gp32 r) { return Gp64{r.id}; }
constexpr Gp32 to_gp32(Gp64 r) { return Gp32{r.id}; }
constexpr Gp16 to_gp16(Gp64 r) { return Gp16{r.id}; }
constexpr Gp8 to_gp8(Gp64 r) { return Gp8{r.id, false}; }

inline constexpr Gp64 rax{0}, rcx{1}, rdx{2}, rbx{3}, rsp{4}, rbp{5}, rsi{6}, rdi{7}, r8{8}, r9{9}, r10{10},
    r11{11}, r12{12}, r13{13}, r14{14}, r15{15};
inline constexpr Gp32 eax{0}, ecx{1}, edx{2}, ebx{3}, esp{4}, ebp{5}, esi{6}, edi{7}, r8d{8}, r9d{9},
    r10d{10}, r11d{11}, r12d{12}, r13d{13}, r14d{14}, r15d{15};
inline constexpr Gp16 ax{0}, cx{1}, dx{2}, bx{3}, sp{4}, bp{5}, si{6}, di{7}, r8w{8}, r9w{9}, r10w{10},
    r11w{11}, r12w{12}, r13w{13}, r14w{14}, r15w{15};
inline constexpr Gp8 al{0}, cl{1}, dl{2}, bl{3}, spl{4}, bpl{5}, sil{6}, dil{7}, r8b{8}, r9b{9}, r10b{10},
    r11b{11}, r12b{12}, r13b{13}, r14b{14}, r15b{15};
inline constexpr Gp8 ah{4, true}, ch{5, true}, dh{6, true}, bh{7, true};
inline constexpr Xmm xmm0{0}, xmm1{1}, xmm2{2}, xmm3{3}, xmm4{4}, xmm5{5}, xmm6{6}, xmm7{7}, xmm8{8}, xmm9{9},
    xmm10{10}, xmm11{11}, xmm12{12}, xmm13{13}, xmm14{14}, xmm15{15};

// Names as Intel syntax spells them ("rax", "r12d", "ah", "xmm3").
std::string_view name(Gp64 r);
std::string_view name(Gp32 r);
std::string_view name(Gp16 r);
std::string_view name(Gp8 r);
std::string_view name(Xmm r);

// Condition codes of jcc / setcc / cmovcc, numbered as the encoding's low nibble.
enum class Cond : std::uint8_t {
  kO = 0,
  kNO = 1,
  kB = 2,
  kC = 2,
  kNAE = 2,  // unsigned <
  kAE = 3,
  kNB = 3,
  kNC = 3,  // unsigned >=
  kE = 4,
  kZ = 4,  // ==
  kNE = 5,
  kNZ = 5,  // !=
  kBE = 6,
  kNA = 6,  // unsigned <=
  kA = 7,
  kNBE = 7,  // unsigned >
  kS = 8,
  kNS = 9,
  kP = 10,
  kPE = 10,
  kNP = 11,
  kPO = 11,
  kL = 12,
  kNGE = 12,  // signed <
  kGE = 13,
  kNL = 13,  // signed >=
  kLE = 14,
  kNG = 14,  // signed <=
  kG = 15,
  kNLE = 15,  // signed >
};

// The condition that holds exactly when `c` does not.
constexpr Cond negate(Cond c) { return static_cast<Cond>(static_cast<std::uint8_t>(c) ^ 1); }

// "e", "ne", "l", ... (the suffix of jcc/setcc/cmovcc).
std::string_view name(Cond c);

}  // namespace jitkit::x64
