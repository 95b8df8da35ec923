// src/x64/layout.cpp — from the emitted buffer and its items to final bytes at a base address.
//
// encode(base):
//   1. host-address items get their form (RIP-relative, absolute, moffs, slot, scratch, ...).
//      RIP-relative is chosen only when the target is within rel32 reach of both ends of the
//      largest block the code can occupy ([base, base + size_upper_bound())), so that no later
//      layout change can invalidate the choice: form sizes never feed back into the choice.
//   2. jump items start short; each pass lays the items out (alignment padding computed at its
//      current offset) and grows every short jump whose displacement does not fit. Jumps only
//      grow, so the loop ends; when no jump grows, every short jump was checked against the
//      exact final layout.
//   3. the buffer is copied with the items expanded, address slots and constants appended, and
//      the fixups, labels, sites and host-operand choices resolved against the final offsets.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "assembler_p.h"

namespace jitkit::x64 {
namespace {
using namespace enc;
using H = Assembler::HostInsn;

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

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
  std::uint8_t tmp[48];
  std::uint8_t* end = put_host(tmp, h, form, 0, 0);
  return end ? static_cast<unsigned>(end - tmp) : 0;
}

namespace {
// Every form an item might end up in, for the size upper bound.
constexpr HostForm kAllForms[] = {HostForm::kRipRelative, HostForm::kAbsolute32,  HostForm::kMoffs64,
                                  HostForm::kAddressSlot, HostForm::kImm64ToDest, HostForm::kScratchRegister};
}  // namespace

std::size_t AssemblerAccess::upper_bound(const Assembler& a) {
  std::size_t size = static_cast<std::size_t>(a.cur_ - a.buf_);
  for (const Assembler::Item& it : a.items_) {
    switch (it.kind) {
      case ItemKind::kJmp:
        size += 5;
        break;
      case ItemKind::kJcc:
        size += 6;
        break;
      case ItemKind::kAlign:
        size += it.ref - 1;
        break;
      case ItemKind::kHost: {
        unsigned m = 0;
        for (HostForm f : kAllForms) m = std::max(m, host_size(a.host_insns_[it.ref], f));
        size += m;
        break;
      }
    }
  }
  size = align_up(size, 8) + 8u * a.slot_count_;
  size = align_up(size, a.pool_alignment_) + a.pool_.size();
  return size;
}

Status AssemblerAccess::encode(const Assembler& a, std::uint64_t base, EncodedCode& out) {
  using LS = Assembler::LabelState;
  if (a.error_) {
    return Error(a.error_->code(),
                 "assembler: refusing to encode code with an error: " + a.error_->message());
  }
  const std::size_t req = a.required_alignment();
  if (base % req != 0) {
    return Error(ErrorCode::kInvalidArgument, "assembler: base address " + hex(base) + " is not aligned to " +
                                                  std::to_string(req) +
                                                  " bytes, which the code's alignment relies on");
  }
  const std::uint64_t upper = upper_bound(a);
  const std::uint64_t hi = base + upper;
  const auto& items = a.items_;
  const std::size_t n = items.size();
  std::vector<std::uint32_t> size(n, 0);
  std::vector<HostForm> form(n, HostForm::kRipRelative);

  // 1. Host-address forms.
  for (std::size_t i = 0; i < n; ++i) {
    if (items[i].kind != ItemKind::kHost) continue;
    const H& h = a.host_insns_[items[i].ref];
    HostForm f;
    if (reach(h.address, base, hi)) {
      f = HostForm::kRipRelative;
    } else if (h.op == HostOp::kCall || h.op == HostOp::kJmp) {
      f = HostForm::kAddressSlot;
    } else if (fits_signed<32>(static_cast<std::int64_t>(h.address))) {
      f = HostForm::kAbsolute32;
    } else if (h.op == HostOp::kLea) {
      f = HostForm::kImm64ToDest;
    } else if (h.moffs) {
      f = HostForm::kMoffs64;
    } else if (h.scratch != kNoReg && !h.scratch_conflict) {
      f = HostForm::kScratchRegister;
    } else {
      std::string why = h.text + ": host address " + hex(h.address) +
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
    unsigned s = host_size(h, f);
    if (s == 0) {
      return Error(ErrorCode::kInvalidArgument, "assembler: " + h.text + ": cannot be encoded in the " +
                                                    std::string(name(f)) +
                                                    " form (a high-byte register beside a REX prefix)");
    }
    form[i] = f;
    size[i] = s;
  }

  // 2. Jump relaxation.
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = items[i].kind;
    if (k != ItemKind::kJmp && k != ItemKind::kJcc) continue;
    const LS& L = a.labels_[items[i].ref];
    if (L.section != LS::kCode) {
      return Error(
          ErrorCode::kInvalidState,
          "assembler: jump to " + label_text(Label{items[i].ref}) +
              (L.section == LS::kUnbound ? ", which is never bound" : ", which is a constant, not code"));
    }
    size[i] = 2;
  }
  std::vector<std::uint32_t> prefix(n + 1, 0);
  auto label_final = [&](const LS& L) { return L.pos + prefix[L.items_before]; };
  for (;;) {
    for (std::size_t i = 0; i < n; ++i) {
      if (items[i].kind == ItemKind::kAlign) {
        std::uint32_t off = items[i].pos + prefix[i];
        std::uint32_t alignment = items[i].ref;
        size[i] = (alignment - ((off + items[i].skew) & (alignment - 1))) & (alignment - 1);
      }
      prefix[i + 1] = prefix[i] + size[i];
    }
    bool grew = false;
    for (std::size_t i = 0; i < n; ++i) {
      const auto k = items[i].kind;
      if ((k != ItemKind::kJmp && k != ItemKind::kJcc) || size[i] != 2) continue;
      std::int64_t from = static_cast<std::int64_t>(items[i].pos + prefix[i]) + 2;
      std::int64_t rel = static_cast<std::int64_t>(label_final(a.labels_[items[i].ref])) - from;
      if (!fits_signed<8>(rel)) {
        size[i] = k == ItemKind::kJcc ? 6 : 5;
        grew = true;
      }
    }
    if (!grew) break;
  }

  // 3. Sizes of the sections.
  const std::size_t buf_size = static_cast<std::size_t>(a.cur_ - a.buf_);
  const std::size_t code_size = buf_size + prefix[n];
  std::vector<std::uint32_t> slot_of(n, 0);
  std::uint32_t slots = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (items[i].kind == ItemKind::kHost && form[i] == HostForm::kAddressSlot) slot_of[i] = slots++;
  }
  // Slots and constants follow the code, naturally aligned; without them nothing is appended.
  const std::size_t slot_off = slots ? align_up(code_size, 8) : code_size;
  const std::size_t pool_off =
      a.pool_.empty() ? slot_off + 8u * slots : align_up(slot_off + 8u * slots, a.pool_alignment_);
  const std::size_t total = pool_off + a.pool_.size();
  if (total > upper) {
    return Error(ErrorCode::kInvalidState, "assembler: internal error: layout exceeds its upper bound");
  }

  out.base_address = base;
  out.code_size = code_size;
  out.bytes.resize(total);  // the code part is overwritten below; the rest is filled here
  out.label_offsets.clear();
  out.sites.clear();
  out.host_operands.clear();
  std::uint8_t* o = out.bytes.data();
  std::memset(o + code_size, 0xCC, total - code_size);  // int3 between code and slots

  // 4. Bytes: buffer segments with the items expanded between them.
  std::size_t src = 0;
  std::size_t dst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Assembler::Item& it = items[i];
    std::size_t seg = it.pos - src;
    std::memcpy(o + dst, a.buf_ + src, seg);
    src = it.pos;
    dst += seg;
    std::uint8_t* p = o + dst;
    switch (it.kind) {
      case ItemKind::kJmp:
      case ItemKind::kJcc: {
        std::int64_t target = label_final(a.labels_[it.ref]);
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
        std::uint8_t* end =
            put_host(p, a.host_insns_[it.ref], form[i], base + dst, base + slot_off + 8u * slot_of[i]);
        if (end != p + size[i]) {
          return Error(ErrorCode::kInvalidState, "assembler: internal error: host form size changed");
        }
        break;
      }
    }
    dst += size[i];
  }
  std::memcpy(o + dst, a.buf_ + src, buf_size - src);

  // Address slots and constants.
  for (std::size_t i = 0; i < n; ++i) {
    if (items[i].kind == ItemKind::kHost && form[i] == HostForm::kAddressSlot)
      put64(o + slot_off + 8u * slot_of[i], a.host_insns_[items[i].ref].address);
  }
  if (!a.pool_.empty()) std::memcpy(o + pool_off, a.pool_.data(), a.pool_.size());

  // 5. Labels.
  out.label_offsets.resize(a.labels_.size(), EncodedCode::kUnbound);
  for (std::size_t l = 0; l < a.labels_.size(); ++l) {
    const LS& L = a.labels_[l];
    if (L.section == LS::kCode)
      out.label_offsets[l] = label_final(L);
    else if (L.section == LS::kPool)
      out.label_offsets[l] = static_cast<std::uint32_t>(pool_off + L.pos);
  }
  auto unbound = [&](std::uint32_t l) {
    return Error(ErrorCode::kInvalidState,
                 "assembler: " + label_text(Label{l}) + " is referenced but never bound");
  };

  // 6. Fixups.
  std::size_t items_before = 0;
  for (const Assembler::Fixup& f : a.fixups_) {
    while (items_before < n && items[items_before].pos <= f.pos) ++items_before;
    const std::uint32_t F = f.pos + prefix[items_before];
    std::uint8_t* p = o + F;
    std::int64_t T = 0;
    if (f.kind != FixupKind::kHostRel32) {
      if (out.label_offsets[f.label] == EncodedCode::kUnbound) return unbound(f.label);
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
        if (out.label_offsets[l2] == EncodedCode::kUnbound) return unbound(l2);
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

  // 7. Patch sites.
  out.sites.reserve(a.sites_.size());
  for (const Assembler::SiteState& s : a.sites_) {
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
      if (out.label_offsets[s.label] == EncodedCode::kUnbound) return unbound(s.label);
      r.jump_rel32 = static_cast<std::int32_t>(static_cast<std::int64_t>(out.label_offsets[s.label]) -
                                               (static_cast<std::int64_t>(r.insn_offset) + 5));
    }
    out.sites.push_back(r);
  }

  // 8. Host-operand choices.
  for (std::size_t i = 0; i < n; ++i) {
    if (items[i].kind != ItemKind::kHost) continue;
    const H& h = a.host_insns_[items[i].ref];
    out.host_operands.push_back(HostOperandChoice{
        items[i].pos + prefix[i], static_cast<std::uint8_t>(size[i]), h.address, form[i], h.text});
  }
  return ok();
}

}  // namespace jitkit::x64
