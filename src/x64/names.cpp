// src/x64/names.cpp — register, condition and operand names for messages and listings.
#include <string>

#include "assembler_p.h"
#include "jitkit/base/format.h"

namespace jitkit::x64 {
namespace {
constexpr const char* kGp64[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                 "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
constexpr const char* kGp32[] = {"eax", "ecx", "edx",  "ebx",  "esp",  "ebp",  "esi",  "edi",
                                 "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"};
constexpr const char* kGp16[] = {"ax",  "cx",  "dx",   "bx",   "sp",   "bp",   "si",   "di",
                                 "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"};
constexpr const char* kGp8[] = {"al",  "cl",  "dl",   "bl",   "spl",  "bpl",  "sil",  "dil",
                                "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"};
constexpr const char* kGp8High[] = {"ah", "ch", "dh", "bh"};
constexpr const char* kXmm[] = {"xmm0", "xmm1", "xmm2",  "xmm3",  "xmm4",  "xmm5",  "xmm6",  "xmm7",
                                "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"};
constexpr const char* kCond[] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
                                 "s", "ns", "p", "np", "l", "ge", "le", "g"};
}  // namespace

std::string_view name(Gp64 r) { return kGp64[r.id & 15]; }
std::string_view name(Gp32 r) { return kGp32[r.id & 15]; }
std::string_view name(Gp16 r) { return kGp16[r.id & 15]; }
std::string_view name(Gp8 r) { return r.high ? kGp8High[r.id & 3] : kGp8[r.id & 15]; }
std::string_view name(Xmm r) { return kXmm[r.id & 15]; }
std::string_view name(Cond c) { return kCond[static_cast<unsigned>(c) & 15]; }

std::string_view name(HostForm f) {
  switch (f) {
    case HostForm::kRipRelative:
      return "rip-relative";
    case HostForm::kAbsolute32:
      return "absolute disp32";
    case HostForm::kMoffs64:
      return "moffs64 (mov rax/eax <-> [imm64])";
    case HostForm::kAddressSlot:
      return "8-byte address slot ([rip+slot])";
    case HostForm::kImm64ToDest:
      return "mov r64, imm64 into the destination";
    case HostForm::kScratchRegister:
      return "mov scratch, imm64 + [scratch]";
  }
  return "?";
}

std::string imm_text(std::int64_t v) {
  if (v < 0) return "imm -" + hex(0 - static_cast<std::uint64_t>(v));
  return "imm " + hex(static_cast<std::uint64_t>(v));
}

std::string label_text(Label l) {
  if (!l.valid()) return "L?";
  return "L" + std::to_string(l.id);
}

std::string mem_text(const Mem& m) {
  std::string s;
  switch (m.size) {
    case 1:
      s = "byte ";
      break;
    case 2:
      s = "word ";
      break;
    case 4:
      s = "dword ";
      break;
    case 8:
      s = "qword ";
      break;
    case 16:
      s = "xmmword ";
      break;
    default:
      break;
  }
  s += '[';
  if (m.kind == Mem::Kind::kHost) return s + hex(static_cast<std::uint64_t>(m.disp)) + "]";
  bool any = false;
  if (m.kind == Mem::Kind::kLabel) {
    s += "rip+" + label_text(Label{m.label});
    any = true;
  } else {
    if (m.base != Mem::kNoReg) {
      s += kGp64[m.base & 15];
      any = true;
    }
    if (m.index != Mem::kNoReg) {
      if (any) s += '+';
      s += kGp64[m.index & 15];
      if (m.scale_log2 == Mem::kBadScale)
        s += "*?";
      else if (m.scale_log2)
        s += "*" + std::to_string(1 << m.scale_log2);
      any = true;
    }
  }
  if (m.disp != 0 || !any) {
    if (m.disp < 0)
      s += "-" + hex(0 - static_cast<std::uint64_t>(m.disp));
    else
      s += (any ? "+" : "") + hex(static_cast<std::uint64_t>(m.disp));
  }
  return s + "]";
}

}  // namespace jitkit::x64
