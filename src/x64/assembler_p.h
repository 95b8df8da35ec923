// src/x64/assembler_p.h — the assembler's private state and helpers.
//
// The buffer holds every instruction whose bytes are final at emission. What depends on the final
// layout is kept as an `Item` at a buffer position, occupying no buffer bytes:
//   - jumps to labels whose distance is not known yet (relaxed short -> near at encode),
//   - alignment padding emitted after such an item (its size depends on the item sizes),
//   - host-address instructions (their form depends on the final code address).
// Positions recorded elsewhere (labels, fixups, sites) are (buffer offset, number of items
// before). Their final offset is `pos + sum of the sizes of those items`, computed once per
// layout pass as a prefix sum.
#pragma once

#include <cstdint>
#include <string>

#include "encoding_p.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::x64 {

enum class ItemKind : std::uint8_t { kJmp, kJcc, kAlign, kHost };

struct Assembler::Item {
  std::uint32_t pos;  // buffer offset
  ItemKind kind;
  std::uint8_t cond;  // kJcc: condition
  std::uint8_t skew;  // kAlign: pad so that (offset + skew) % alignment == 0
  std::uint8_t unused = 0;
  std::uint32_t ref;  // kJmp/kJcc: label id; kAlign: alignment; kHost: host_insns_ index
};

enum class HostOp : std::uint8_t {
  kMem,   // an instruction with a [host] memory operand
  kCall,  // call host
  kJmp,   // jmp host
  kLea,   // lea r64, [host]
};

struct Assembler::HostInsn {
  HostOp op;
  std::uint8_t reg;       // ModRM.reg value (with encoding_p.h flags) for kMem/kLea
  std::uint8_t imm_size;  // bytes of immediate after the memory operand
  std::uint8_t moffs;     // 0, or the A0..A3 opcode of the equivalent moffs64 mov
  std::uint8_t scratch;   // allowed scratch register, or kNoReg
  bool lock;              // LOCK prefix precedes the instruction
  bool scratch_conflict;  // the scratch register is also an operand
  std::uint8_t rip_size;  // bytes of the RIP-relative form
  std::uint8_t max_size;  // bytes of the longest form it may take (size_upper_bound())
  std::uint32_t enc;      // packed opcode (encoding_p.h)
  std::int64_t imm;
  std::uint64_t address;
  // The instruction as written, for choices and errors: an index into the assembler's
  // host_texts_, or kNoText for kCall/kJmp, whose text ("call 0x7f...") host_text() derives from
  // the address when it is needed. A JIT's many host calls format and store no string (and the
  // items stay small) while emitting.
  std::uint32_t text;
  static constexpr std::uint32_t kNoText = 0xFFFFFFFFu;
};
// What a host-address instruction is shown as in messages and HostOperandChoice::text; `texts`
// is the assembler's host_texts_.
std::string host_text(const Assembler::HostInsn& h, const std::vector<std::string>& texts);

enum class FixupKind : std::uint8_t {
  kRel8,       // label - (field + 1)
  kRel32,      // label + addend - (field + 4 + trailing)
  kAbs64,      // base + label + addend
  kDiff32,     // label - label2 (label2 in aux)
  kHostRel32,  // host - (base + field + 4): fixed-size call/jmp sites to host addresses
};

// 16 bytes: one is pushed for most label references, so its size is emission bandwidth.
// The number of items before a fixup is not stored: fixups are recorded in buffer order, and the
// items before one are exactly those at a buffer position <= its field (an item sits between
// instructions, a field inside one or at the start of data), so encode() merges the two lists.
struct Assembler::Fixup {
  std::uint32_t pos;    // buffer offset of the field
  std::uint32_t label;  // target label; kHostRel32: low half of the host address
  std::int32_t addend;  // kRel32/kAbs64: added to the label; kDiff32: base label id;
                        // kHostRel32: high half of the host address
  FixupKind kind;
  std::uint8_t trailing;  // bytes between the field's end and the instruction's end
};

struct Assembler::LabelState {
  enum Section : std::uint8_t { kUnbound, kCode, kPool };
  std::uint32_t pos = 0;  // buffer offset (kCode) or pool offset (kPool)
  std::uint32_t items_before = 0;
  Section section = kUnbound;
};

struct Assembler::SiteState {
  PatchSiteKind kind;
  std::uint32_t pad_pos, pad_items;    // where the NOP padding begins
  std::uint32_t insn_pos, insn_items;  // the instruction
  std::uint8_t insn_size;
  std::uint8_t field_in_insn;  // field offset within the instruction
  std::uint8_t field_size;
  bool enabled;
  std::uint32_t label;  // jump/call target label, or Label::kInvalidId
  std::uint64_t host;   // host target when has_host
  bool has_host;
};

// Friend of Assembler: the emit and layout machinery.
struct AssemblerAccess {
  // Member access for the helpers in assembler.cpp / layout.cpp.
  static std::uint8_t*& cur(Assembler& a) { return a.cur_; }
  static std::uint8_t* buf(const Assembler& a) { return a.buf_; }
  static auto& items(Assembler& a) { return a.items_; }
  static const auto& items(const Assembler& a) { return a.items_; }
  static auto& host_insns(Assembler& a) { return a.host_insns_; }
  static const auto& host_insns(const Assembler& a) { return a.host_insns_; }
  static auto& host_texts(Assembler& a) { return a.host_texts_; }
  static const auto& host_texts(const Assembler& a) { return a.host_texts_; }
  static auto& fixups(Assembler& a) { return a.fixups_; }
  static auto& labels(Assembler& a) { return a.labels_; }
  static const auto& labels(const Assembler& a) { return a.labels_; }
  static auto& sites(Assembler& a) { return a.sites_; }
  static auto& pool(Assembler& a) { return a.pool_; }
  static std::uint8_t scratch(const Assembler& a) { return a.scratch_; }
  static std::uint32_t& lock_at(Assembler& a) { return a.lock_at_; }
  static std::uint32_t& max_alignment(Assembler& a) { return a.max_alignment_; }
  static std::uint32_t& pool_alignment(Assembler& a) { return a.pool_alignment_; }
  static std::uint32_t& slot_count(Assembler& a) { return a.slot_count_; }
  static std::uint32_t& items_bound(Assembler& a) { return a.items_bound_; }
  static void grow(Assembler& a, std::size_t need);
  static void ensure(Assembler& a, std::size_t n) {
    if (static_cast<std::size_t>(a.end_ - a.cur_) < n) grow(a, n);
  }
  static std::uint32_t pos(const Assembler& a) { return static_cast<std::uint32_t>(a.cur_ - a.buf_); }
  static std::uint32_t item_count(const Assembler& a) { return static_cast<std::uint32_t>(a.items_.size()); }
  static void fail(Assembler& a, ErrorCode code, std::string message);
  // The layout for `base` into `out`; the bytes go to `dst` (`capacity` bytes) when it is not
  // null, else into out.bytes. Returns the number of bytes.
  static Result<std::size_t> encode(const Assembler& a, std::uint64_t base, std::uint8_t* dst,
                                    std::size_t capacity, EncodedCode& out);
  static std::size_t upper_bound(const Assembler& a);
  static unsigned host_size(const Assembler::HostInsn& h, HostForm form);
  // The longest form `h` may take (for the size upper bound).
  static unsigned host_max_size(const Assembler::HostInsn& h);
  // Encodes one host-address instruction in `form` as if it started at `insn_addr`, with the
  // address slot (kAddressSlot) at `slot_addr`. Returns the end pointer (out has >= 32 bytes).
  static std::uint8_t* put_host(std::uint8_t* out, const Assembler::HostInsn& h, HostForm form,
                                std::uint64_t insn_addr, std::uint64_t slot_addr);
};

// Text of operands for messages ("qword [rbp+0x10]", "imm 0x2a", "r12d").
std::string mem_text(const Mem& m);
std::string imm_text(std::int64_t v);
std::string label_text(Label l);

}  // namespace jitkit::x64
