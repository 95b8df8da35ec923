// src/x64/layout.cpp — from the emitted buffer and its items to final bytes at a base address.
//
// encode(base) runs the phases of a `Layout`, in this order:
//   size_items            each host-address item gets its form (RIP-relative, absolute, moffs,
//                         slot, scratch, ...), decided by the address alone, and its slot; each
//                         jump to a label starts short, or near when it cannot reach
//   relax_jumps           short jumps that do not reach grow, until none does
//   place_slots_and_pool  the code's size fixes where the address slots and constants go
//   prepare_records       the output emptied of a previous encode's records
//   write_code            the buffer copied out with every item's final bytes in between (and
//                         each host-address operand's form recorded), the slots' addresses and
//                         the constants after the code
//   resolve_labels        every label's final offset
//   apply_fixups          label and host references inside instructions
//   record_sites          the patch sites at their final offsets
#include <algorithm>
#include <cstring>

#include "assembler_p.h"
#include "jitkit/base/format.h"
#include "thread_slot_p.h"

namespace jitkit::x64 {
namespace {
using namespace detail;  // the encoding helpers of encoding_p.h
using H = Assembler::HostInsn;

// `target` reachable by a rel32 from every address in [lo, hi].
bool reach(std::uint64_t target, std::uint64_t lo, std::uint64_t hi) {
  return fits_signed<32>(signed_distance(lo, target)) && fits_signed<32>(signed_distance(hi, target));
}

// The memory-operand instruction of `h` with address `a`, lock prefix first; for kRip the
// displacement is fixed up relative to the instruction's end.
std::uint8_t* put_mem_insn(std::uint8_t* out, const H& h, const Addr& a, std::uint64_t insn_addr,
                           std::uint64_t target) {
  std::uint8_t* start = out;
  std::uint8_t* p = out;
  std::uint32_t e = h.enc;
  if (h.lock) {
    if (e & kOpSize16) {  // 66 F0, the order GNU as uses
      *p++ = 0x66;
      e &= ~kOpSize16;
    }
    *p++ = 0xF0;
  }
  p = put_mem(p, e, h.reg, a);
  if (!p) return nullptr;
  std::uint8_t* disp = p - 4;
  p = put_imm(p, h.imm_size, h.imm);
  if (a.mode == Addr::kRip) {
    std::uint64_t end = insn_addr + static_cast<std::uint64_t>(p - start);
    put32(disp, static_cast<std::uint32_t>(signed_distance(end, target)));
  }
  return p;
}
}  // namespace

std::uint8_t* AssemblerAccess::put_host(std::uint8_t* out, const H& h, HostForm form, std::uint64_t insn_addr,
                                        std::uint64_t slot_addr) {
  const Addr rip{Addr::kRip, kNoReg, kNoReg, 0, 0};
  const Addr abs{Addr::kAbs32, kNoReg, kNoReg, 0, static_cast<std::int32_t>(h.address)};
  switch (h.op) {
    case HostOp::kCall:
    case HostOp::kJmp: {
      bool call = h.op == HostOp::kCall;
      if (form == HostForm::kRipRelative) {
        out[0] = call ? 0xE8 : 0xE9;
        put32(out + 1, static_cast<std::uint32_t>(signed_distance(insn_addr + 5, h.address)));
        return out + 5;
      }
      if (form == HostForm::kAddressSlot) {
        out[0] = 0xFF;
        out[1] = call ? 0x15 : 0x25;  // ModRM: mod 00, reg /2 or /4, rm 101 (RIP)
        put32(out + 2, static_cast<std::uint32_t>(signed_distance(insn_addr + 6, slot_addr)));
        return out + 6;
      }
      return nullptr;
    }
    case HostOp::kLea:
      if (form == HostForm::kImm64ToDest) {
        std::uint8_t* p = put_o(out, 0xB8 | kW, h.reg);
        if (!p) return nullptr;
        put64(p, h.address);
        return p + 8;
      }
      [[fallthrough]];
    case HostOp::kMem:
      switch (form) {
        case HostForm::kRipRelative:
          return put_mem_insn(out, h, rip, insn_addr, h.address);
        case HostForm::kAbsolute32:
          return put_mem_insn(out, h, abs, insn_addr, h.address);
        case HostForm::kMoffs64: {
          if (!h.moffs) return nullptr;
          std::uint8_t* p = put_head(out, (h.enc & kOpSize16) | h.moffs, (h.enc & kW) ? 8 : 0);
          put64(p, h.address);
          return p + 8;
        }
        case HostForm::kScratchRegister: {
          if (h.scratch == kNoReg) return nullptr;
          std::uint8_t* p = put_o(out, 0xB8 | kW, h.scratch);
          if (!p) return nullptr;
          put64(p, h.address);
          p += 8;
          const Addr through{Addr::kRegs, h.scratch, kNoReg, 0, 0};
          return put_mem_insn(p, h, through, 0, 0);
        }
        default:
          return nullptr;
      }
  }
  return nullptr;
}

unsigned AssemblerAccess::host_size(const H& h, HostForm form) {
  if (form == HostForm::kRipRelative) return h.rip_size;  // measured when it was emitted
  std::uint8_t tmp[48];
  std::uint8_t* end = put_host(tmp, h, form, 0, 0);
  return end ? static_cast<unsigned>(end - tmp) : 0;
}

namespace {
// Every form an item might end up in, for the size upper bound.
constexpr HostForm kAllForms[] = {HostForm::kRipRelative, HostForm::kAbsolute32,  HostForm::kMoffs64,
                                  HostForm::kAddressSlot, HostForm::kImm64ToDest, HostForm::kScratchRegister};
}  // namespace

unsigned AssemblerAccess::host_max_size(const H& h) {
  unsigned m = 0;
  for (HostForm f : kAllForms) {
    std::uint8_t tmp[48];
    std::uint8_t* end = put_host(tmp, h, f, 0, 0);
    if (end) m = std::max(m, static_cast<unsigned>(end - tmp));
  }
  return m;
}

// The items' largest sizes are summed as they are emitted (items_bound_): O(1), where summing
// them here made every install() walk the items twice (once for the block, once in encode).
std::size_t AssemblerAccess::upper_bound(const Assembler& a) {
  std::size_t size = static_cast<std::size_t>(a.cur_ - a.buf_) + a.items_bound_;
  size = align_up(size, 8) + 8u * a.slot_count_;
  size = align_up(size, a.pool_alignment_) + a.pool_.size();
  return size;
}

std::string host_text(const H& h, const std::vector<std::string>& texts) {
  if (h.text != H::kNoText) return texts[h.text];
  // "call 0x..." / "jmp 0x..." as insn() writes them (hex(): lower case, no leading zeros), built
  // in place: one allocation per text, which every encode makes for every host call.
  static constexpr char kDigits[] = "0123456789abcdef";
  char text[32];
  char* end = text + sizeof text;
  char* p = end;
  std::uint64_t v = h.address;
  do {
    *--p = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  *--p = 'x';
  *--p = '0';
  const std::string_view mnemonic = h.op == HostOp::kCall ? "call " : "jmp ";
  p -= mnemonic.size();
  std::memcpy(p, mnemonic.data(), mnemonic.size());
  return std::string(p, end);
}

namespace {
using LS = Assembler::LabelState;

Error unbound_label(std::uint32_t label) {
  return Error(ErrorCode::kInvalidState,
               "assembler: " + label_text(Label{label}) + " is referenced but never bound");
}

bool is_jump(ItemKind k) { return k == ItemKind::kJmp || k == ItemKind::kJcc; }

// The form of a host-address instruction for code somewhere in [base, hi): the first of
// RIP-relative, address slot (call/jmp), absolute disp32, imm64 into the destination (lea),
// moffs64, scratch register that can encode it. Only the address decides, never the layout.
Result<HostForm> host_form(const H& h, const std::vector<std::string>& texts, std::uint64_t base,
                           std::uint64_t hi) {
  if (reach(h.address, base, hi)) return HostForm::kRipRelative;
  if (h.op == HostOp::kCall || h.op == HostOp::kJmp) return HostForm::kAddressSlot;
  if (fits_signed<32>(static_cast<std::int64_t>(h.address))) return HostForm::kAbsolute32;
  if (h.op == HostOp::kLea) return HostForm::kImm64ToDest;
  if (h.moffs) return HostForm::kMoffs64;
  if (h.scratch != kNoReg && !h.scratch_conflict) return HostForm::kScratchRegister;
  std::string why = host_text(h, texts) + ": host address " + hex(h.address) +
                    " is not within ±2 GiB of the code at [" + hex(base) + ", " + hex(hi) +
                    ") and does not fit in 32 bits sign-extended; ";
  if (h.scratch != kNoReg) {
    why += "the allowed scratch register " + std::string(name(Gp64{h.scratch})) +
           " is an operand of this instruction";
  } else {
    why +=
        "this instruction has no moffs64 form and no scratch register was allowed "
        "(Assembler::allow_scratch)";
  }
  return Error(ErrorCode::kOutOfRange, "assembler: " + why);
}

// The per-item arrays of a Layout, kept per thread so that encoding many functions does not
// allocate them again each time.
struct LayoutScratch {
  std::vector<std::uint32_t> size;
  std::vector<HostForm> form;
  std::vector<std::uint32_t> prefix;
  std::vector<std::uint32_t> slot_of;
};

// One encode() run over the assembler's state (read only) for one base address. The phases run in
// the order they are declared; each one uses what the ones before it decided. Each walk over the
// items does everything that can be done at that point, so the items are walked once to size
// them, once per relaxation pass, and once to write them.
struct Layout {
  // The assembler's state.
  const std::uint8_t* buf;
  std::size_t buf_size;
  const std::vector<Assembler::Item>& items;
  const std::vector<H>& host_insns;
  const std::vector<std::string>& host_texts;
  const std::vector<Assembler::Fixup>& fixups;
  const std::vector<LS>& labels;
  const std::vector<Assembler::SiteState>& sites;
  const std::vector<std::uint8_t>& pool;
  std::uint32_t pool_alignment;
  // Where the code goes: base, and the end of the largest block it can occupy.
  std::uint64_t base;
  std::uint64_t upper;
  std::uint64_t hi;
  // Per item: its final size, its host form (kHost), its address slot (kAddressSlot); and the
  // prefix sums of the sizes, by which every buffer position becomes a final offset. The arrays
  // belong to the thread's LayoutScratch (reused by the next encode).
  std::vector<std::uint32_t>& size;
  std::vector<HostForm>& form;
  std::vector<std::uint32_t>& prefix;
  std::vector<std::uint32_t>& slot_of;
  // Sections: code, then the address slots, then the constant pool.
  std::size_t code_size = 0;
  std::uint32_t slots = 0;
  std::size_t slot_off = 0;
  std::size_t pool_off = 0;
  std::size_t total = 0;

  std::size_t item_count() const { return items.size(); }
  std::uint32_t final_offset(const LS& label) const { return label.pos + prefix[label.items_before]; }

  Status size_items();
  void relax_jumps();
  Status place_slots_and_pool();
  void prepare_records(EncodedCode& out) const;
  Status write_code(std::uint8_t* o, EncodedCode& out) const;
  void resolve_labels(EncodedCode& out) const;
  Status apply_fixups(std::uint8_t* o, const EncodedCode& out) const;
  Status record_sites(EncodedCode& out) const;
};

// Every item's first size:
//  - A host-address item gets its form, the size that form takes and, for kAddressSlot, its slot
//    (numbered in item order). RIP-relative is chosen only when the target is within rel32 reach
//    of both ends of [base, hi), so that no later layout change can invalidate the choice: form
//    sizes never feed back into it.
//  - A jump to a label (which must be bound in the code) starts in its 2-byte short form, unless
//    the distance in the buffer alone already rules it out. Items only add bytes, so for a
//    forward jump (its label after the item) the final displacement is at least the buffer
//    distance L.pos - pos, and for a backward one it is at most L.pos - pos - 2. A jump whose
//    bound is outside rel8 would be grown by the first relaxation pass anyway (that pass sees
//    every item at its smallest size): starting it near gives the same layout one pass sooner.
//    A JIT's jumps to out-of-line slow paths are mostly of this kind.
//  - Alignment padding is sized by relax_jumps(), at its offset.
Status Layout::size_items() {
  for (std::size_t i = 0; i < item_count(); ++i) {
    const Assembler::Item& it = items[i];
    switch (it.kind) {
      case ItemKind::kHost: {
        const H& h = host_insns[it.ref];
        JITKIT_TRY(HostForm f, host_form(h, host_texts, base, hi));
        unsigned s = AssemblerAccess::host_size(h, f);
        if (s == 0) {
          return Error(ErrorCode::kInvalidArgument, "assembler: " + host_text(h, host_texts) +
                                                        ": cannot be encoded in the " + std::string(name(f)) +
                                                        " form (a high-byte register beside a REX prefix)");
        }
        form[i] = f;
        size[i] = s;
        if (f == HostForm::kAddressSlot) slot_of[i] = slots++;
        break;
      }
      case ItemKind::kJmp:
      case ItemKind::kJcc: {
        const LS& L = labels[it.ref];
        if (L.section != LS::kCode) {
          return Error(
              ErrorCode::kInvalidState,
              "assembler: jump to " + label_text(Label{it.ref}) +
                  (L.section == LS::kUnbound ? ", which is never bound" : ", which is a constant, not code"));
        }
        const std::int64_t distance = static_cast<std::int64_t>(L.pos) - static_cast<std::int64_t>(it.pos);
        const bool forward = L.items_before > i;
        const bool far = forward ? distance > 127 : distance - 2 < -128;
        size[i] = far ? (it.kind == ItemKind::kJcc ? 6 : 5) : 2;
        break;
      }
      case ItemKind::kAlign:
        break;
    }
  }
  return ok();
}

// Each pass lays the items out (alignment padding computed at its current offset) and grows every
// short jump whose displacement does not fit. Jumps only grow, so the loop ends; when no jump grows,
// every short jump was checked against the exact final layout.
void Layout::relax_jumps() {
  const std::size_t n = item_count();
  for (;;) {
    bool any_short = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (items[i].kind == ItemKind::kAlign) {
        const std::uint32_t from = items[i].pos + prefix[i] + items[i].skew;
        size[i] = static_cast<std::uint32_t>(align_up(from, items[i].ref) - from);
      } else if (size[i] == 2 && is_jump(items[i].kind)) {
        any_short = true;
      }
      prefix[i + 1] = prefix[i] + size[i];
    }
    if (!any_short) break;
    bool grew = false;
    for (std::size_t i = 0; i < n; ++i) {
      const auto k = items[i].kind;
      if (!is_jump(k) || size[i] != 2) continue;
      std::int64_t from = static_cast<std::int64_t>(items[i].pos + prefix[i]) + 2;
      std::int64_t rel = static_cast<std::int64_t>(final_offset(labels[items[i].ref])) - from;
      if (!fits_signed<8>(rel)) {
        size[i] = k == ItemKind::kJcc ? 6 : 5;
        grew = true;
      }
    }
    if (!grew) break;
  }
}

// The code's final size, and after it the address slots and the constant pool, each naturally
// aligned; without slots or constants nothing is appended.
Status Layout::place_slots_and_pool() {
  code_size = buf_size + prefix[item_count()];
  slot_off = slots ? align_up(code_size, 8) : code_size;
  pool_off = pool.empty() ? slot_off + 8u * slots : align_up(slot_off + 8u * slots, pool_alignment);
  total = pool_off + pool.size();
  if (total > upper) {
    return Error(ErrorCode::kInvalidState, "assembler: internal error: layout exceeds its upper bound");
  }
  return ok();
}

// `out` emptied of a previous encode's records.
void Layout::prepare_records(EncodedCode& out) const {
  out.base_address = base;
  out.code_size = code_size;
  out.label_offsets.clear();
  out.sites.clear();
  out.host_operands.clear();
}

// All `total` bytes at `o`: the buffer's segments copied to their final offsets with each item's
// final bytes between them (and each host-address item's choice recorded), int3 between the code
// and the slots, the slots' addresses, the constants.
Status Layout::write_code(std::uint8_t* o, EncodedCode& out) const {
  out.host_operands.reserve(host_insns.size());
  std::size_t src = 0;
  std::size_t dst = 0;
  for (std::size_t i = 0; i < item_count(); ++i) {
    const Assembler::Item& it = items[i];
    std::size_t seg = it.pos - src;
    std::memcpy(o + dst, buf + src, seg);
    src = it.pos;
    dst += seg;
    std::uint8_t* p = o + dst;
    switch (it.kind) {
      case ItemKind::kJmp:
      case ItemKind::kJcc: {
        std::int64_t target = final_offset(labels[it.ref]);
        std::int64_t end = static_cast<std::int64_t>(dst + size[i]);
        std::int64_t rel = target - end;
        if (size[i] == 2) {
          p[0] = it.kind == ItemKind::kJcc ? static_cast<std::uint8_t>(0x70 | it.cond) : 0xEB;
          p[1] = static_cast<std::uint8_t>(rel);
        } else if (it.kind == ItemKind::kJcc) {
          p[0] = 0x0F;
          p[1] = static_cast<std::uint8_t>(0x80 | it.cond);
          put32(p + 2, static_cast<std::uint32_t>(rel));
        } else {
          p[0] = 0xE9;
          put32(p + 1, static_cast<std::uint32_t>(rel));
        }
        break;
      }
      case ItemKind::kAlign:
        put_nops(p, size[i]);
        break;
      case ItemKind::kHost: {
        const H& h = host_insns[it.ref];
        const std::size_t slot = slot_off + 8u * slot_of[i];
        std::uint8_t* end = AssemblerAccess::put_host(p, h, form[i], base + dst, base + slot);
        if (end != p + size[i]) {
          return Error(ErrorCode::kInvalidState, "assembler: internal error: host form size changed");
        }
        if (form[i] == HostForm::kAddressSlot) put64(o + slot, h.address);
        out.host_operands.push_back(HostOperandChoice{static_cast<std::uint32_t>(dst),
                                                      static_cast<std::uint8_t>(size[i]), h.address, form[i],
                                                      host_text(h, host_texts)});
        break;
      }
    }
    dst += size[i];
  }
  std::memcpy(o + dst, buf + src, buf_size - src);
  // int3 from the code's end to the first slot (alignment), and between the slots and the pool.
  std::memset(o + code_size, 0xCC, slot_off - code_size);
  std::memset(o + slot_off + 8u * slots, 0xCC, pool_off - (slot_off + 8u * slots));
  if (!pool.empty()) std::memcpy(o + pool_off, pool.data(), pool.size());
  return ok();
}

// The final offset of every label: in the code, or in the constant pool; kUnbound otherwise.
void Layout::resolve_labels(EncodedCode& out) const {
  out.label_offsets.resize(labels.size());
  for (std::size_t l = 0; l < labels.size(); ++l) {
    const LS& L = labels[l];
    if (L.section == LS::kCode)
      out.label_offsets[l] = final_offset(L);
    else if (L.section == LS::kPool)
      out.label_offsets[l] = static_cast<std::uint32_t>(pool_off + L.pos);
    else
      out.label_offsets[l] = EncodedCode::kUnbound;
  }
}

// The label and host-address references inside instructions, written against the final offsets.
Status Layout::apply_fixups(std::uint8_t* o, const EncodedCode& out) const {
  std::size_t items_before = 0;
  for (const Assembler::Fixup& f : fixups) {
    while (items_before < item_count() && items[items_before].pos <= f.pos) ++items_before;
    const std::uint32_t F = f.pos + prefix[items_before];
    std::uint8_t* p = o + F;
    std::int64_t T = 0;
    if (f.kind != FixupKind::kHostRel32) {
      if (out.label_offsets[f.label] == EncodedCode::kUnbound) return unbound_label(f.label);
      T = out.label_offsets[f.label];
    }
    switch (f.kind) {
      case FixupKind::kRel8: {
        std::int64_t rel = T - (static_cast<std::int64_t>(F) + 1);
        if (!fits_signed<8>(rel)) {
          return Error(ErrorCode::kOutOfRange, "assembler: short jump to " + label_text(Label{f.label}) +
                                                   " at offset " + std::to_string(F - 1) +
                                                   " does not reach (distance " + std::to_string(rel) + ")");
        }
        *p = static_cast<std::uint8_t>(rel);
        break;
      }
      case FixupKind::kRel32:
        put32(p, static_cast<std::uint32_t>(T + f.addend - (static_cast<std::int64_t>(F) + 4 + f.trailing)));
        break;
      case FixupKind::kAbs64:
        put64(p, base + static_cast<std::uint64_t>(T + f.addend));
        break;
      case FixupKind::kDiff32: {
        auto l2 = static_cast<std::uint32_t>(f.addend);
        if (out.label_offsets[l2] == EncodedCode::kUnbound) return unbound_label(l2);
        put32(p, static_cast<std::uint32_t>(T - static_cast<std::int64_t>(out.label_offsets[l2])));
        break;
      }
      case FixupKind::kHostRel32: {
        const std::uint64_t host =
            (static_cast<std::uint64_t>(static_cast<std::uint32_t>(f.addend)) << 32) | f.label;
        std::int64_t rel = signed_distance(base + F + 4, host);
        if (!fits_signed<32>(rel)) {
          return Error(ErrorCode::kOutOfRange,
                       "assembler: patchable call/jmp site at offset " + std::to_string(F - 1) +
                           " targets host address " + hex(host) +
                           ", which is not within rel32 reach of the code at " + hex(base) +
                           " (place the code zone near it: ZoneOptions::near)");
        }
        put32(p, static_cast<std::uint32_t>(rel));
        break;
      }
    }
  }
  return ok();
}

// One PatchSiteRecord per site, at its final offsets, with the rel32 of its initial target.
Status Layout::record_sites(EncodedCode& out) const {
  out.sites.reserve(sites.size());
  for (const Assembler::SiteState& s : sites) {
    PatchSiteRecord r{};
    r.kind = s.kind;
    r.insn_offset = s.insn_pos + prefix[s.insn_items];
    r.insn_size = s.insn_size;
    r.field_offset = r.insn_offset + s.field_in_insn;
    r.field_size = s.field_size;
    r.pad_offset = s.pad_pos + prefix[s.pad_items];
    r.enabled = s.enabled;
    if (s.has_host) {
      r.jump_rel32 = static_cast<std::int32_t>(signed_distance(base + r.insn_offset + 5, s.host));
    } else if (s.label != Label::kInvalidId) {
      if (out.label_offsets[s.label] == EncodedCode::kUnbound) return unbound_label(s.label);
      r.jump_rel32 = static_cast<std::int32_t>(static_cast<std::int64_t>(out.label_offsets[s.label]) -
                                               (static_cast<std::int64_t>(r.insn_offset) + 5));
    }
    out.sites.push_back(r);
  }
  return ok();
}

}  // namespace

// The bytes go to `dst` (capacity bytes) when given, else into out.bytes.
Result<std::size_t> AssemblerAccess::encode(const Assembler& a, std::uint64_t base, std::uint8_t* dst,
                                            std::size_t capacity, EncodedCode& out) {
  if (a.error_) {
    return Error(a.error_->code(),
                 "assembler: refusing to encode code with an error: " + a.error_->message());
  }
  const std::size_t req = a.required_alignment();
  if (!is_aligned(base, req)) {
    return Error(ErrorCode::kInvalidArgument, "assembler: base address " + hex(base) + " is not aligned to " +
                                                  std::to_string(req) +
                                                  " bytes, which the code's alignment relies on");
  }
  const std::uint64_t upper = upper_bound(a);
  const std::size_t n = a.items_.size();
  LayoutScratch own;  // only when the thread's scratch is gone (a destructor at thread exit)
  LayoutScratch* scratch = detail::thread_slot<LayoutScratch>();
  if (scratch == nullptr) scratch = &own;
  scratch->size.assign(n, 0);
  scratch->form.assign(n, HostForm::kRipRelative);
  scratch->prefix.assign(n + 1, 0);
  scratch->slot_of.assign(n, 0);
  Layout layout{.buf = a.buf_,
                .buf_size = static_cast<std::size_t>(a.cur_ - a.buf_),
                .items = a.items_,
                .host_insns = a.host_insns_,
                .host_texts = a.host_texts_,
                .fixups = a.fixups_,
                .labels = a.labels_,
                .sites = a.sites_,
                .pool = a.pool_,
                .pool_alignment = a.pool_alignment_,
                .base = base,
                .upper = upper,
                .hi = base + upper,
                .size = scratch->size,
                .form = scratch->form,
                .prefix = scratch->prefix,
                .slot_of = scratch->slot_of};
  JITKIT_TRY(layout.size_items());
  layout.relax_jumps();
  JITKIT_TRY(layout.place_slots_and_pool());
  layout.prepare_records(out);
  if (dst == nullptr) {
    out.bytes.resize(layout.total);
    dst = out.bytes.data();
  } else {
    out.bytes.clear();
    if (capacity < layout.total) {
      return Error(ErrorCode::kInvalidArgument, "assembler: encoding needs " + std::to_string(layout.total) +
                                                    " bytes, the destination has " +
                                                    std::to_string(capacity));
    }
  }
  JITKIT_TRY(layout.write_code(dst, out));
  layout.resolve_labels(out);
  JITKIT_TRY(layout.apply_fixups(dst, out));
  JITKIT_TRY(layout.record_sites(out));
  return layout.total;
}

}  // namespace jitkit::x64
