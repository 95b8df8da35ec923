// jitkit/x64/operands.h — memory operands, labels and host addresses.
//
// Operands are small value types, built by free functions that read like Intel syntax:
//
//   dword_ptr(rax, rcx, 4, 8)      dword [rax + rcx*4 + 8]
//   qword_ptr(rsp, 16)             qword [rsp + 16]
//   qword_ptr(no_base, rcx, 8, 64) qword [rcx*8 + 64]        (no base register: SIB + disp32)
//   qword_ptr(label)               qword [rip + label]       (code or constant-pool data)
//   dword_ptr(abs(&counter))       dword [&counter]          (host data, anywhere)
//
// The size (byte/word/dword/qword/xmmword) is part of the operand. `ptr(...)` builds an unsized
// operand whose size comes from the register operand of the instruction; an instruction with no
// register operand (e.g. `mov(ptr(rax), 1)`) needs a sized one, or it is a sticky error.
//
// `HostAddress` names host data or a host function by its address. Where the generated code will
// live is only known at install, so the assembler keeps such instructions re-encodable and picks
// the shortest correct form then (see assembler.h, "Host addresses").
#pragma once

#include <cstdint>

#include "jitkit/x64/registers.h"

namespace jitkit::x64 {

// A position in the code, bound with Assembler::bind. Plain id; valid only with the Assembler
// that made it.
struct Label {
  static constexpr std::uint32_t kInvalidId = 0xFFFFFFFFu;
  std::uint32_t id = kInvalidId;
  constexpr bool valid() const { return id != kInvalidId; }
  constexpr bool operator==(const Label&) const = default;
};

// The address of host data or a host function.
struct HostAddress {
  std::uint64_t address = 0;
};

// abs(p): the host address of an object or a function, for memory operands and call/jmp targets.
inline HostAddress abs(const volatile void* p) { return HostAddress{reinterpret_cast<std::uint64_t>(p)}; }
template <typename R, typename... Args>
HostAddress abs(R (*fn)(Args...)) {
  return HostAddress{reinterpret_cast<std::uint64_t>(fn)};
}
inline constexpr HostAddress abs_address(std::uint64_t address) { return HostAddress{address}; }

// Marker for a memory operand without a base register: qword_ptr(no_base, rcx, 8, disp).
struct NoBase {};
inline constexpr NoBase no_base{};

// A memory operand. Build it with the *_ptr functions below rather than field by field.
struct Mem {
  enum class Kind : std::uint8_t {
    kRegs,   // [base + index*scale + disp]; base and/or index may be absent
    kLabel,  // [rip + label]
    kHost,   // [host address], resolved at install
  };
  static constexpr std::uint8_t kNoReg = 0xFF;
  static constexpr std::uint8_t kBadScale = 0xFF;

  std::int64_t disp = 0;                    // kRegs: displacement (int32 range); kHost: the address
  std::uint32_t label = Label::kInvalidId;  // kLabel: label id
  std::uint8_t base = kNoReg;               // hardware number or kNoReg
  std::uint8_t index = kNoReg;              // hardware number or kNoReg (rsp cannot be an index)
  std::uint8_t scale_log2 = 0;              // 0..3, or kBadScale (a sticky error when used)
  std::uint8_t size = 0;                    // bytes: 0 (unsized), 1, 2, 4, 8, 16
  Kind kind = Kind::kRegs;

  // The same address with another operand size.
  constexpr Mem sized(std::uint8_t bytes) const {
    Mem m = *this;
    m.size = bytes;
    return m;
  }
  // The same address moved by `delta` bytes (kRegs and kHost; kLabel is sticky-error-free too:
  // the delta is added to the label's address).
  constexpr Mem offset(std::int32_t delta) const {
    Mem m = *this;
    m.disp += delta;
    return m;
  }
};

namespace detail {
constexpr std::uint8_t scale_to_log2(int scale) {
  return scale == 1 ? 0 : scale == 2 ? 1 : scale == 4 ? 2 : scale == 8 ? 3 : Mem::kBadScale;
}
constexpr Mem make_mem(std::uint8_t size, std::uint8_t base, std::uint8_t index, int scale,
                       std::int32_t disp) {
  Mem m;
  m.disp = disp;
  m.base = base;
  m.index = index;
  m.scale_log2 = index == Mem::kNoReg ? 0 : scale_to_log2(scale);
  m.size = size;
  return m;
}
constexpr Mem make_label_mem(std::uint8_t size, Label l, std::int32_t disp) {
  Mem m;
  m.kind = Mem::Kind::kLabel;
  m.label = l.id;
  m.disp = disp;
  m.size = size;
  return m;
}
constexpr Mem make_host_mem(std::uint8_t size, HostAddress a) {
  Mem m;
  m.kind = Mem::Kind::kHost;
  m.disp = static_cast<std::int64_t>(a.address);
  m.size = size;
  return m;
}
}  // namespace detail

// One family of builders per operand size; `ptr` is unsized.
#define JITKIT_X64_MEM_BUILDERS(fn, bytes)                                        \
  constexpr Mem fn(Gp64 base, std::int32_t disp = 0) {                            \
    return detail::make_mem(bytes, base.id, Mem::kNoReg, 1, disp);                \
  }                                                                               \
  constexpr Mem fn(Gp64 base, Gp64 index, int scale = 1, std::int32_t disp = 0) { \
    return detail::make_mem(bytes, base.id, index.id, scale, disp);               \
  }                                                                               \
  constexpr Mem fn(NoBase, Gp64 index, int scale, std::int32_t disp = 0) {        \
    return detail::make_mem(bytes, Mem::kNoReg, index.id, scale, disp);           \
  }                                                                               \
  constexpr Mem fn(Label label, std::int32_t disp = 0) {                          \
    return detail::make_label_mem(bytes, label, disp);                            \
  }                                                                               \
  constexpr Mem fn(HostAddress address) { return detail::make_host_mem(bytes, address); }

JITKIT_X64_MEM_BUILDERS(ptr, 0)
JITKIT_X64_MEM_BUILDERS(byte_ptr, 1)
JITKIT_X64_MEM_BUILDERS(word_ptr, 2)
JITKIT_X64_MEM_BUILDERS(dword_ptr, 4)
JITKIT_X64_MEM_BUILDERS(qword_ptr, 8)
JITKIT_X64_MEM_BUILDERS(xmmword_ptr, 16)
#undef JITKIT_X64_MEM_BUILDERS

// [rip + label] without a size (named as in INTERFACES.md).
constexpr Mem ptr_rip(Label label, std::int32_t disp = 0) { return detail::make_label_mem(0, label, disp); }
// An absolute 32-bit address [disp32] (no base, no index); the address must fit in 32 bits
// sign-extended. For arbitrary host addresses use abs() instead, which picks the form at install.
constexpr Mem abs32_ptr(std::uint8_t size, std::int32_t address) {
  return detail::make_mem(size, Mem::kNoReg, Mem::kNoReg, 1, address);
}

}  // namespace jitkit::x64
