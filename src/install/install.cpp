// src/install/install.cpp — places an assembler's code into a code zone.
//
// Order matters: the block is allocated first (at the size upper bound) because the final layout
// depends on the final address (RIP-relative reach of host addresses, absolute label addresses in
// jump tables); then the code is encoded for exactly that address into the zone's write path, and
// only then made executable. The bytes are never written through an executable mapping, and
// nothing can run them before make_executable returns. Where the zone has a writable view of the
// block (dual-mapped and RWX zones: CodeZone::writable) the assembler writes the bytes straight
// into it; otherwise (toggled zones) they are encoded into memory and copied with
// CodeZone::write.
#include "jitkit/install/install.h"

#include <algorithm>

namespace jitkit::install {
namespace {

// The record's offsets made into executable addresses of code installed at `start`.
PatchSite installed_site(const x64::PatchSiteRecord& r, std::uint8_t* start) {
  PatchSite site;
  site.kind = r.kind;
  site.insn = start + r.insn_offset;
  site.insn_size = r.insn_size;
  site.field = start + r.field_offset;
  site.field_size = r.field_size;
  site.pad = start + r.pad_offset;
  if (r.kind == x64::PatchSiteKind::kStaticKey) {
    // The jump a disabled key keeps aside is E9 + jump_rel32, relative to the end of its 5 bytes.
    site.key_target = site.insn + r.insn_size + r.jump_rel32;
  }
  return site;
}

}  // namespace

std::uintptr_t InstalledCode::label_address(x64::Label label) const {
  std::uint32_t off = label_offset(label);
  return off == x64::EncodedCode::kUnbound ? 0 : start() + off;
}

std::uint32_t InstalledCode::label_offset(x64::Label label) const {
  if (label.id >= label_offsets_.size()) return x64::EncodedCode::kUnbound;
  return label_offsets_[label.id];
}

Result<InstalledCode> install(const x64::Assembler& assembler, code::CodeZone& zone,
                              const InstallOptions& options) {
  // Built only for an error: installing is a JIT's hot path.
  auto what = [&] { return options.name.empty() ? std::string("install") : "install " + options.name; };
  if (assembler.error()) {
    return Error(assembler.error()->code(),
                 what() + ": refusing code with an assembler error: " + assembler.error()->message());
  }
  const std::size_t size = std::max<std::size_t>(assembler.size_upper_bound(), 1);
  const std::size_t alignment = std::max<std::size_t>(assembler.required_alignment(), 16);
  auto block = zone.allocate(size, alignment);
  if (!block) return std::move(block).error().context(what());

  // On any failure below the block goes back to the zone; nobody has seen its address yet.
  auto give_back = [&](Error e) -> Error {
    (void)zone.free(*block);
    return std::move(e).context(what());
  };
  const auto base = reinterpret_cast<std::uintptr_t>(block->exec);
  x64::EncodedCode encoded;
  std::size_t used = 0;
  if (std::uint8_t* view = zone.writable(block->exec); view != nullptr) {
    auto written = assembler.encode_to(base, view, block->size, encoded);
    if (!written) return give_back(std::move(written).error());
    used = *written;
  } else {
    if (auto st = assembler.encode_into(base, encoded); !st) return give_back(std::move(st).error());
    if (encoded.bytes.size() > block->size) {
      return give_back(Error(ErrorCode::kInvalidState, "encoded code is larger than its upper bound"));
    }
    if (auto st = zone.write(block->exec, encoded.bytes.data(), encoded.bytes.size()); !st) {
      return give_back(std::move(st).error());
    }
    used = encoded.bytes.size();
  }
  if (auto st = zone.make_executable(*block, options.visibility); !st) {
    return give_back(std::move(st).error());
  }

  InstalledCode code;
  code.block_ = *block;
  code.code_size_ = encoded.code_size;
  code.used_size_ = used;
  code.name_ = options.name;
  code.label_offsets_ = std::move(encoded.label_offsets);
  code.sites_.reserve(encoded.sites.size());
  for (const x64::PatchSiteRecord& r : encoded.sites) {
    code.sites_.push_back(installed_site(r, block->exec));
  }
  code.host_operands_ = std::move(encoded.host_operands);
  return code;
}

}  // namespace jitkit::install
