// src/debug/installed_code.cpp — registration and listings of installed code
// (installed_code.h). Frame detection decodes instructions with x64::decode_one, so a byte
// that merely looks like `push rbp` inside another instruction is never mistaken for one.
#include "jitkit/debug/installed_code.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>

#include "jitkit/base/format.h"

namespace jitkit::debug {
namespace {

bool is_reg(const x64::DecodedOperand& op, const char* name) {
  return op.kind == x64::DecodedOperand::Kind::kRegister && op.reg == name;
}

// True if the instruction changes rsp other than through call/ret (whose effects belong to the
// callee's frame or end this one).
bool moves_rsp(const x64::DecodedInstruction& insn) {
  const std::string& m = insn.mnemonic;
  if (m == "push" || m == "pop" || m == "pushfq" || m == "popfq" || m == "enter" || m == "leave") {
    return true;
  }
  if (!insn.operands.empty() && is_reg(insn.operands[0], "rsp")) return true;  // sub/add/mov/lea rsp
  return false;
}

}  // namespace

FrameInfo detect_frame(const void* code, std::size_t size) {
  const auto* bytes = static_cast<const std::uint8_t*>(code);
  auto base = reinterpret_cast<std::uint64_t>(code);
  std::vector<std::pair<std::uint32_t, x64::DecodedInstruction>> insns;
  for (std::size_t off = 0; off < size;) {
    auto insn = x64::decode_one(bytes + off, size - off, base + off);
    if (!insn) return FrameInfo::none();  // data or garbage inside: do not describe it
    std::uint8_t len = insn->length;
    insns.emplace_back(static_cast<std::uint32_t>(off), std::move(*insn));
    off += len;
  }
  if (insns.empty()) return FrameInfo::none();

  // Frame-pointer convention: push rbp; mov rbp, rsp; ... (pop rbp | leave); ret ...
  if (insns.size() >= 2 && insns[0].second.mnemonic == "push" && !insns[0].second.operands.empty() &&
      is_reg(insns[0].second.operands[0], "rbp") && insns[1].second.mnemonic == "mov" &&
      insns[1].second.operands.size() == 2 && is_reg(insns[1].second.operands[0], "rbp") &&
      is_reg(insns[1].second.operands[1], "rsp")) {
    std::uint32_t push_end = insns[1].first;
    std::uint32_t mov_end = insns.size() > 2 ? insns[2].first : static_cast<std::uint32_t>(size);
    std::vector<std::uint32_t> gone;
    for (std::size_t i = 2; i + 1 < insns.size(); ++i) {
      const auto& m = insns[i].second;
      bool pops_rbp = (m.mnemonic == "pop" && !m.operands.empty() && is_reg(m.operands[0], "rbp")) ||
                      m.mnemonic == "leave";
      // Only a teardown directly followed by ret is an epilogue the rows can describe.
      if (pops_rbp && insns[i + 1].second.mnemonic == "ret") gone.push_back(insns[i + 1].first);
    }
    return FrameInfo::frame_pointer(push_end, mov_end, std::move(gone));
  }
  // Leaf: rsp never moves, so CFA = rsp+8 at every instruction.
  bool leaf = std::none_of(insns.begin(), insns.end(), [](const auto& p) { return moves_rsp(p.second); });
  return leaf ? FrameInfo::leaf() : FrameInfo::none();
}

Status add_installed(SymbolBatch& batch, const install::InstalledCode& code, std::optional<FrameInfo> frame,
                     std::string_view name) {
  std::string n(name.empty() ? std::string_view(code.name()) : name);
  if (n.empty()) {
    return Error(ErrorCode::kInvalidArgument, "debug: installed code at " + hex(code.start()) +
                                                  " has no name (set InstallOptions::name or pass one)");
  }
  if (code.code_size() == 0) {
    return Error(ErrorCode::kInvalidArgument, "debug: installed code '" + n + "' is empty");
  }
  FrameInfo f = frame ? std::move(*frame) : detect_frame(code.block().exec, code.code_size());
  batch.add_function(std::move(n), code.block().exec, code.code_size(), std::move(f), code.block().size);
  return ok();
}

Result<Registration> register_installed(const install::InstalledCode& code, std::optional<FrameInfo> frame) {
  SymbolBatch batch;
  JITKIT_TRY(add_installed(batch, code, std::move(frame)));
  return CodeRegistry::global().add(std::move(batch));
}

namespace {

// The registry's name for an address, else the dynamic symbol table's (host code and data).
std::optional<std::string> name_of(std::uint64_t address, bool host_symbols) {
  if (auto s = CodeRegistry::global().symbolize(address)) return s;
  if (host_symbols) {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(address), &info) != 0 && info.dli_sname != nullptr) {
      auto sym = reinterpret_cast<std::uintptr_t>(info.dli_saddr);
      if (address == sym) return std::string(info.dli_sname);
      return std::string(info.dli_sname) + "+" + hex(address - sym);
    }
  }
  return std::nullopt;
}

// [slots_begin, slots_end): 8-byte address slots after installed code (may be empty).
std::string listing_impl(std::string_view name, const void* code, std::size_t size,
                         const ListingOptions& options, std::uintptr_t slots_begin,
                         std::uintptr_t slots_end) {
  auto begin = reinterpret_cast<std::uintptr_t>(code);
  std::uintptr_t end = begin + size;
  std::string fn_name(name);
  x64::DisassembleOptions dis;
  dis.syntax = options.syntax;
  dis.label_lines = true;
  // Inside the listed code only exact names (the start, the labels) answer, so that `name:`
  // lines appear where they belong and not above every instruction. Outside it, targets are
  // named "fn+0x1c" from the registry, or from the dynamic symbol table for host code.
  dis.symbolizer = [&](std::uint64_t address) -> std::optional<std::string> {
    if (address == begin) return fn_name;
    for (const auto& [at, label] : options.labels) {
      if (at == address) return label;
    }
    if (address >= begin && address < end) return std::nullopt;
    if (address >= slots_begin && address + 8 <= slots_end) {
      // An address slot (`call [rip+slot]` to a far host function): name what the slot holds,
      // which is what the instruction reaches.
      std::uint64_t target = 0;
      std::memcpy(&target, reinterpret_cast<const void*>(address), 8);
      std::optional<std::string> to = name_of(target, options.host_symbols);
      return "slot -> " + (to ? *to : hex(target));
    }
    return name_of(address, options.host_symbols);
  };
  return x64::disassemble(code, size, begin, dis);
}

}  // namespace

std::string listing(std::string_view name, const void* code, std::size_t size,
                    const ListingOptions& options) {
  return listing_impl(name, code, size, options, 0, 0);
}

std::string listing(const install::InstalledCode& code, const ListingOptions& options) {
  std::string name = code.name().empty() ? "code@" + hex(code.start()) : code.name();
  return listing_impl(name, code.block().exec, code.code_size(), options, code.start() + code.code_size(),
                      code.start() + code.used_size());
}

}  // namespace jitkit::debug
