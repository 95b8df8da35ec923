// The one place where ic names the patch sites it edits and reads their addresses.
//
// InstalledCode::site(id) returns an install::PatchSite, which every patch::Patcher operation
// takes as it is; ic keeps it under the name SiteRef so that a later change of the site type is
// a change of this file only.
#pragma once

#include <cstdint>

#include "jitkit/install/install.h"
#include "jitkit/install/patch_site.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::ic::detail {

// A patchable instruction as the patcher addresses it.
using SiteRef = install::PatchSite;

inline SiteRef site_ref(const install::InstalledCode& code, x64::PatchSiteId id) { return code.site(id); }

// The address right after the instruction: for a call, its return address.
inline std::uintptr_t end_address(const SiteRef& s) {
  return reinterpret_cast<std::uintptr_t>(s.insn) + s.insn_size;
}
inline std::uintptr_t insn_address(const SiteRef& s) { return reinterpret_cast<std::uintptr_t>(s.insn); }
// Where the site's NOP padding starts (the instruction itself when it has none).
inline std::uintptr_t pad_address(const SiteRef& s) {
  return reinterpret_cast<std::uintptr_t>(s.pad != nullptr ? s.pad : s.insn);
}

}  // namespace jitkit::ic::detail
