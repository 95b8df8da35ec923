// The differential test's instance model and comparison (see instance_p.h).
#include "x64/differential/instance_p.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "jitkit/x64/disassemble.h"
#include "x64/differential/gnu_as_p.h"

namespace jitkit::x64::test_util {
namespace {

const char* size_keyword(int bytes) {
  switch (bytes) {
    case 1:
      return "byte ptr ";
    case 2:
      return "word ptr ";
    case 4:
      return "dword ptr ";
    case 8:
      return "qword ptr ";
    case 16:
      return "xmmword ptr ";
    default:
      return "";
  }
}

std::string signed_term(std::int64_t v) {
  if (v >= 0) return "+" + std::to_string(v);
  return "-" + std::to_string(std::uint64_t{0} - static_cast<std::uint64_t>(v));
}

std::string mem_text(const MemSpec& m) {
  std::string s = size_keyword(m.size_bytes);
  s += "[";
  if (m.host == MemSpec::Host::kRip || m.host == MemSpec::Host::kSlot) {
    s += "rip+" + m.host_symbol;
  } else if (m.host != MemSpec::Host::kNone) {
    s += m.host_symbol;
  } else if (m.rip_label) {
    s += "rip+" + m.label_name;
    if (m.disp != 0) s += signed_term(m.disp);
  } else {
    bool any = false;
    if (m.base != MemSpec::kNone) {
      s += gp_name(64, m.base);
      any = true;
    }
    if (m.index != MemSpec::kNone) {
      if (any) s += "+";
      s += gp_name(64, m.index) + "*" + std::to_string(m.scale);
      any = true;
    }
    if (!any) {
      s += std::to_string(m.disp);  // absolute [disp32]
    } else if (m.disp != 0) {
      s += signed_term(m.disp);
    }
  }
  s += "]";
  return s;
}

std::string op_text(const OpSpec& op) {
  switch (op.kind) {
    case OpSpec::Kind::kReg:
      return op.reg;
    case OpSpec::Kind::kMem:
      return mem_text(op.mem);
    case OpSpec::Kind::kImm:
      return op.text_override.empty() ? std::to_string(op.imm) : op.text_override;
    case OpSpec::Kind::kLabel:
      return op.host_symbol.empty() ? op.label_name : op.host_symbol;
  }
  return {};
}

std::uint64_t mask_bits(std::uint64_t v, int bits) {
  return bits >= 64 ? v : (v & ((std::uint64_t{1} << bits) - 1));
}

// Empty when `d` (decoded at `address`) is the instruction `in` means; otherwise what differs.
std::string semantic_diff(const Instance& in, const DecodedInstruction& d, std::uint64_t address,
                          const EncodedCode& code, std::uint64_t base) {
  const std::string& want_mnemonic = in.zydis_mnemonic.empty() ? in.mnemonic : in.zydis_mnemonic;
  if (d.mnemonic != want_mnemonic) {
    return "decodes as '" + d.text + "' (mnemonic " + d.mnemonic + ", want " + want_mnemonic + ")";
  }
  if (!in.prefix.empty() && d.text.rfind(in.prefix + " ", 0) != 0) {
    return "decodes as '" + d.text + "' without the " + in.prefix + " prefix";
  }
  if (in.zydis_operandless) {
    if (!d.operands.empty()) return "decodes as '" + d.text + "', want no operands";
    return {};
  }
  if (d.operands.size() != in.ops.size()) {
    return "decodes as '" + d.text + "' with " + std::to_string(d.operands.size()) + " operands, want " +
           std::to_string(in.ops.size());
  }
  const std::uint64_t next = address + d.length;
  auto label_address = [&](Label l) -> std::uint64_t {
    if (!l.valid() || l.id >= code.label_offsets.size() ||
        code.label_offsets[l.id] == EncodedCode::kUnbound) {
      return ~std::uint64_t{0};
    }
    return base + code.label_offsets[l.id];
  };
  auto operand_diff = [&](const OpSpec& want, const DecodedOperand& got) -> std::string {
    switch (want.kind) {
      case OpSpec::Kind::kReg:
        if (got.kind != DecodedOperand::Kind::kRegister || got.reg != want.reg) {
          return "register operand is not " + want.reg;
        }
        return {};
      case OpSpec::Kind::kMem: {
        if (got.kind != DecodedOperand::Kind::kMemory) return "operand is not memory";
        const MemSpec& m = want.mem;
        if (m.size_bytes != 0 && got.size_bits != m.size_bytes * 8) {
          return "memory size " + std::to_string(got.size_bits) + " bits, want " +
                 std::to_string(m.size_bytes * 8);
        }
        switch (m.host) {
          case MemSpec::Host::kNone:
            break;
          case MemSpec::Host::kRip:
            if (got.base != "rip" || !got.index.empty()) return "host operand is not rip-relative";
            if (next + static_cast<std::uint64_t>(got.displacement) != m.host_address) {
              return "rip-relative host operand does not reach the host address";
            }
            return {};
          case MemSpec::Host::kAbs:
          case MemSpec::Host::kMoffs:
            if (!got.base.empty() || !got.index.empty()) return "host operand is not absolute";
            if (static_cast<std::uint64_t>(got.displacement) != m.host_address) {
              return "absolute host operand is not the host address";
            }
            return {};
          case MemSpec::Host::kSlot: {
            if (got.base != "rip" || !got.index.empty()) return "slot operand is not rip-relative";
            const std::uint64_t slot = next + static_cast<std::uint64_t>(got.displacement);
            if (slot < base || slot + 8 > base + code.bytes.size()) return "slot outside the code";
            std::uint64_t value = 0;
            std::memcpy(&value, code.bytes.data() + (slot - base), 8);
            if (value != m.host_address) return "address slot does not hold the host address";
            return {};
          }
        }
        if (m.rip_label) {
          if (got.base != "rip" || !got.index.empty()) return "memory operand is not rip-relative";
          const std::uint64_t target = next + static_cast<std::uint64_t>(got.displacement);
          if (target != label_address(m.label) + static_cast<std::uint64_t>(m.disp)) {
            return "rip-relative target differs from label " + m.label_name;
          }
          return {};
        }
        const std::string want_base = m.base == MemSpec::kNone ? "" : gp_name(64, m.base);
        const std::string want_index = m.index == MemSpec::kNone ? "" : gp_name(64, m.index);
        if (got.base != want_base) return "memory base '" + got.base + "', want '" + want_base + "'";
        if (got.index != want_index) {
          return "memory index '" + got.index + "', want '" + want_index + "'";
        }
        if (!want_index.empty() && got.scale != m.scale) return "memory scale differs";
        if (got.displacement != m.disp) {
          return "displacement " + std::to_string(got.displacement) + ", want " + std::to_string(m.disp);
        }
        return {};
      }
      case OpSpec::Kind::kImm:
        if (got.kind != DecodedOperand::Kind::kImmediate || got.is_relative) {
          return "operand is not an immediate";
        }
        if (mask_bits(static_cast<std::uint64_t>(got.immediate), want.imm_compare_bits) !=
            mask_bits(static_cast<std::uint64_t>(want.imm), want.imm_compare_bits)) {
          return "immediate " + std::to_string(got.immediate) + ", want " + std::to_string(want.imm);
        }
        return {};
      case OpSpec::Kind::kLabel:
        if (got.kind != DecodedOperand::Kind::kImmediate || !got.is_relative) {
          return "operand is not a relative branch target";
        }
        if (!want.host_symbol.empty()) {
          if (got.target != want.host_address) return "branch target is not the host address";
          return {};
        }
        if (got.target != label_address(want.label)) {
          return "branch target differs from label " + want.label_name;
        }
        return {};
    }
    return "unknown operand kind";
  };
  std::string diff;
  for (std::size_t i = 0; i < in.ops.size() && diff.empty(); ++i) {
    diff = operand_diff(in.ops[i], d.operands[i]);
  }
  if (!diff.empty() && in.operands_commute && in.ops.size() == 2) {
    if (operand_diff(in.ops[0], d.operands[1]).empty() && operand_diff(in.ops[1], d.operands[0]).empty()) {
      diff.clear();
    }
  }
  if (!diff.empty()) return "decodes as '" + d.text + "': " + diff;
  return {};
}

}  // namespace

OpSpec reg_op(const std::string& name, int bits) {
  OpSpec op;
  op.kind = OpSpec::Kind::kReg;
  op.reg = name;
  op.bits = bits;
  return op;
}
OpSpec mem_op(const MemSpec& m) {
  OpSpec op;
  op.kind = OpSpec::Kind::kMem;
  op.mem = m;
  return op;
}
OpSpec imm_op(std::int64_t value, int compare_bits) {
  OpSpec op;
  op.kind = OpSpec::Kind::kImm;
  op.imm = value;
  op.imm_compare_bits = compare_bits;
  return op;
}
OpSpec label_op(Label l, const std::string& name) {
  OpSpec op;
  op.kind = OpSpec::Kind::kLabel;
  op.label = l;
  op.label_name = name;
  return op;
}

const std::string& gp_name(int bits, int id, bool high8) {
  static const std::array<std::string, 16> k64 = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                                  "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  static const std::array<std::string, 16> k32 = {"eax",  "ecx",  "edx",  "ebx", "esp",  "ebp",
                                                  "esi",  "edi",  "r8d",  "r9d", "r10d", "r11d",
                                                  "r12d", "r13d", "r14d", "r15d"};
  static const std::array<std::string, 16> k16 = {"ax",   "cx",   "dx",   "bx",  "sp",   "bp",
                                                  "si",   "di",   "r8w",  "r9w", "r10w", "r11w",
                                                  "r12w", "r13w", "r14w", "r15w"};
  static const std::array<std::string, 16> k8 = {"al",   "cl",   "dl",   "bl",  "spl",  "bpl",
                                                 "sil",  "dil",  "r8b",  "r9b", "r10b", "r11b",
                                                 "r12b", "r13b", "r14b", "r15b"};
  static const std::array<std::string, 4> kHigh = {"ah", "ch", "dh", "bh"};
  if (bits == 8 && high8) return kHigh[static_cast<std::size_t>(id - 4)];
  const auto i = static_cast<std::size_t>(id);
  return bits == 64 ? k64[i] : bits == 32 ? k32[i] : bits == 16 ? k16[i] : k8[i];
}

std::string xmm_name(int id) { return "xmm" + std::to_string(id); }

std::string hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 3);
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) s.push_back(' ');
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}

std::string Instance::text() const {
  switch (kind) {
    case Kind::kBind:
      return label_name + ":";
    case Kind::kData: {
      std::string s = ".byte ";
      for (std::size_t i = 0; i < data.size(); ++i) {
        if (i != 0) s += ",";
        s += std::to_string(data[i]);
      }
      return s;
    }
    case Kind::kInsn:
      break;
  }
  std::string s = prefix.empty() ? mnemonic : prefix + " " + mnemonic;
  if (!gnu_prefix.empty()) s = gnu_prefix + " " + s;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    s += i == 0 ? " " : ", ";
    s += op_text(ops[i]);
  }
  return s;
}

Batch::Batch(std::string name, bool has_relaxable_jumps)
    : name_(std::move(name)), has_relaxable_jumps_(has_relaxable_jumps), a_(1 << 20) {}

void Batch::add(Instance instance, const std::function<void(Assembler&)>& emit) {
  instance.kind = Instance::Kind::kInsn;
  instance.buffer_begin = a_.buffer_size();
  emit(a_);
  instance.buffer_end = a_.buffer_size();
  instances_.push_back(std::move(instance));
  ++insn_count_;
}

void Batch::add_leading(Instance instance) {
  instance.kind = Instance::Kind::kInsn;
  instance.buffer_begin = instance.buffer_end = a_.buffer_size();
  instances_.push_back(std::move(instance));
  ++insn_count_;
}

Label Batch::new_label(const std::string&) { return a_.new_label(); }

void Batch::bind(Label l, const std::string& name) {
  a_.bind(l);
  Instance in;
  in.kind = Instance::Kind::kBind;
  in.label = l;
  in.label_name = name;
  instances_.push_back(std::move(in));
}

Label Batch::bind_new(const std::string& name) {
  Label l = a_.new_label();
  bind(l, name);
  return l;
}

void Batch::data(const std::vector<std::uint8_t>& bytes) {
  a_.bytes(bytes.data(), bytes.size());
  Instance in;
  in.kind = Instance::Kind::kData;
  in.data = bytes;
  instances_.push_back(std::move(in));
}

std::size_t Batch::check(std::vector<Mismatch>* out) const {
  auto batch_failure = [&](const std::string& reason) {
    out->push_back(Mismatch{name_, "", "", "", reason});
    return std::size_t{0};
  };
  if (!a_.ok()) return batch_failure("assembler error: " + a_.error()->message());
  auto encoded = a_.encode(base_);
  if (!encoded) return batch_failure("encode failed: " + encoded.error().message());

  // Address slots are laid out by our encoder; GNU's side names them through symbols placed
  // where our slots are (the slot's contents are checked separately, in semantic_diff).
  std::vector<AbsoluteSymbol> symbols;
  for (const auto& [name, value] : symbols_) symbols.push_back({name, value});
  {
    std::size_t po = 0;
    for (const Instance& in : instances_) {
      if (in.kind == Instance::Kind::kData) po += in.data.size();
      if (in.kind != Instance::Kind::kInsn) continue;
      auto od = decode_one(encoded->bytes.data() + po, po < encoded->code_size ? encoded->code_size - po : 0,
                           base_ + po);
      if (!od) break;  // reported by the main pass
      for (const OpSpec& op : in.ops) {
        if (op.kind == OpSpec::Kind::kMem && op.mem.host == MemSpec::Host::kSlot) {
          for (const DecodedOperand& d : od->operands) {
            if (d.kind == DecodedOperand::Kind::kMemory && d.base == "rip") {
              symbols.push_back(
                  {op.mem.host_symbol, base_ + po + od->length + static_cast<std::uint64_t>(d.displacement)});
            }
          }
        }
      }
      po += od->length;
    }
  }

  std::string source;
  source.reserve(instances_.size() * 40);
  for (const Instance& in : instances_) {
    source += in.text();
    source += '\n';
  }
  // JITKIT_ASM_DUMP_DIR=<dir>: keep each batch's GNU source and our disassembly, for debugging.
  if (const char* dir = std::getenv("JITKIT_ASM_DUMP_DIR"); dir != nullptr && *dir != '\0') {
    std::string file = name_;
    for (char& c : file) {
      if (c == '/' || c == ' ') c = '_';
    }
    std::ofstream(std::string(dir) + "/" + file + ".s") << source;
    std::ofstream(std::string(dir) + "/" + file + ".ours.txt")
        << disassemble(encoded->bytes.data(), encoded->bytes.size(), base_);
  }
  auto gnu = link_ ? assemble_with_gnu_as(source, base_, symbols) : assemble_with_gnu_as(source);
  if (!gnu) return batch_failure(gnu.error().message());

  const std::uint8_t* ours = encoded->bytes.data();
  const std::size_t ours_size = encoded->code_size;
  const std::uint8_t* theirs = gnu->data();
  const std::size_t theirs_size = gnu->size();
  std::size_t po = 0;
  std::size_t pg = 0;
  std::size_t compared = 0;
  for (const Instance& in : instances_) {
    if (in.kind == Instance::Kind::kBind) continue;
    if (in.kind == Instance::Kind::kData) {
      const std::size_t n = in.data.size();
      if (po + n > ours_size || pg + n > theirs_size ||
          !std::equal(in.data.begin(), in.data.end(), ours + po) ||
          !std::equal(in.data.begin(), in.data.end(), theirs + pg)) {
        out->push_back(Mismatch{name_, in.text(), "", "", "filler bytes differ"});
      }
      po += n;
      pg += n;
      continue;
    }
    ++compared;
    auto report = [&](std::size_t our_len, std::size_t gnu_len, const std::string& reason) {
      out->push_back(
          Mismatch{name_, in.text(), hex(ours + po, std::min(our_len, ours_size - std::min(po, ours_size))),
                   hex(theirs + pg, std::min(gnu_len, theirs_size - std::min(pg, theirs_size))), reason});
    };
    auto od = decode_one(ours + po, po < ours_size ? ours_size - po : 0, base_ + po);
    auto gd = decode_one(theirs + pg, pg < theirs_size ? theirs_size - pg : 0, base_ + pg);
    if (!gd) {
      report(od ? od->length : 4, 4, "GNU as' bytes do not decode; stream lost, batch abandoned");
      return compared;
    }
    if (!od) {
      const std::size_t appended = in.buffer_end - in.buffer_begin;
      report(has_relaxable_jumps_ ? 4 : appended, gd->length,
             "our bytes do not decode: " + od.error().message());
      if (has_relaxable_jumps_ || appended == 0) return compared;  // cannot resynchronise
      po += appended;
      pg += gd->length;
      continue;
    }
    std::string reason;
    const bool same_bytes =
        od->length == gd->length && std::equal(ours + po, ours + po + od->length, theirs + pg);
    if (!same_bytes && !in.gnu_differs_ok) {
      reason = "bytes differ from GNU as";
      // An earlier length difference moves every later instruction; label displacements then
      // differ as a consequence only. Say so, so that the root cause is easy to find.
      if (po != pg) {
        reason += " (layout already shifted by " +
                  std::to_string(static_cast<long long>(po) - static_cast<long long>(pg)) +
                  " bytes by an earlier mismatch)";
      }
    }
    if (std::string diff = semantic_diff(in, *od, base_ + po, *encoded, base_); !diff.empty()) {
      reason += (reason.empty() ? "" : "; ") + std::string("ours ") + diff;
    }
    if (in.gnu_differs_ok && !same_bytes) {
      if (std::string diff = semantic_diff(in, *gd, base_ + pg, *encoded, base_); !diff.empty()) {
        reason += (reason.empty() ? "" : "; ") + std::string("GNU ") + diff;
      }
    }
    if (!has_relaxable_jumps_ && in.buffer_end - in.buffer_begin != od->length) {
      reason += (reason.empty() ? "" : "; ") + std::string("the call appended ") +
                std::to_string(in.buffer_end - in.buffer_begin) + " bytes, decoded length " +
                std::to_string(od->length);
    }
    if (!reason.empty()) report(od->length, gd->length, reason);
    po += od->length;
    pg += gd->length;
  }
  if (po != ours_size || pg != theirs_size) {
    out->push_back(Mismatch{name_, "", "", "",
                            "stream sizes differ after the last instance: ours " + std::to_string(po) + "/" +
                                std::to_string(ours_size) + ", GNU " + std::to_string(pg) + "/" +
                                std::to_string(theirs_size)});
  }
  return compared;
}

}  // namespace jitkit::x64::test_util
