// jitkit/install/install.h — from an assembled buffer to running code in a code zone.
//
//   x64::Assembler a;  ... emit ...
//   JITKIT_TRY(install::InstalledCode code, install::install(a, *zone));
//   auto fn = code.entry<int(int)>();
//
// install() allocates a block of the assembler's size upper bound in the zone, lays the code out
// for that final address (Assembler::encode: jump relaxation, host-address forms, label and
// address fixups), copies the bytes in through the zone's write path (CodeZone::write, never by
// making live pages writable), makes the block executable, and records what later modules need:
// label addresses, patch sites at their installed addresses (install::PatchSite, patch_site.h:
// the instruction, its patched field and the padding in front of it), and the form chosen for
// every host-address operand.
//
// Code that has a sticky assembler error, an unbound referenced label or an unreachable host
// address is refused with that error; nothing is allocated then (or it is freed again).
//
// InstalledCode does not own its block: the code stays installed until the caller passes
// `block()` to CodeZone::free (after making sure no thread can still run it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/install/patch_site.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::install {

struct InstallOptions {
  // A name for listings, perf maps and debugger registration (debug/).
  std::string name;
  // Who may run the code as soon as install() returns (see code::Visibility).
  code::Visibility visibility = code::Visibility::kThisThread;
};

class InstalledCode {
 public:
  InstalledCode() = default;

  const code::CodeBlock& block() const { return block_; }
  std::uintptr_t start() const { return reinterpret_cast<std::uintptr_t>(block_.exec); }
  // Bytes of instructions (slots and the constant pool follow them).
  std::size_t code_size() const { return code_size_; }
  // Bytes of instructions, address slots and constants.
  std::size_t used_size() const { return used_size_; }
  const std::string& name() const { return name_; }

  // The code start as a function pointer: entry<int(int)>() has type int (*)(int).
  template <typename Fn>
  std::add_pointer_t<std::remove_pointer_t<Fn>> entry() const {
    return reinterpret_cast<std::add_pointer_t<std::remove_pointer_t<Fn>>>(block_.exec);
  }
  // A label's installed address; 0 for a label that was never bound.
  std::uintptr_t label_address(x64::Label label) const;
  // The label's offset from start(); EncodedCode::kUnbound if unbound.
  std::uint32_t label_offset(x64::Label label) const;

  // The patch sites in emission order (PatchSiteId::index), ready for patch::Patcher.
  const std::vector<PatchSite>& sites() const { return sites_; }
  const PatchSite& site(x64::PatchSiteId id) const { return sites_[id.index]; }
  // Every host-address operand and the form chosen for it (rip-relative, absolute, slot, ...).
  const std::vector<x64::HostOperandChoice>& host_operands() const { return host_operands_; }

 private:
  friend Result<InstalledCode> install(const x64::Assembler&, code::CodeZone&, const InstallOptions&);
  code::CodeBlock block_;
  std::size_t code_size_ = 0;
  std::size_t used_size_ = 0;
  std::string name_;
  std::vector<std::uint32_t> label_offsets_;
  std::vector<PatchSite> sites_;
  std::vector<x64::HostOperandChoice> host_operands_;
};

// Installs the assembler's code into `zone`. Only reads the assembler (hence const): it may be
// installed again, e.g. into another zone, or reset() and reused.
Result<InstalledCode> install(const x64::Assembler& assembler, code::CodeZone& zone,
                              const InstallOptions& options = {});

}  // namespace jitkit::install
