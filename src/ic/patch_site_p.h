// The one place where ic turns an installed patch site into what the patcher takes.
//
// install and patch are converging on a single site type; until then every conversion from
// install::InstalledSite to patch::PatchSite in ic goes through these helpers, so the switch is
// a change of this file only.
#pragma once

#include <cstdint>

#include "jitkit/install/install.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::ic::detail {

// A patchable instruction as the patcher addresses it.
using SiteRef = patch::PatchSite;

inline SiteRef site_ref(const install::InstalledCode& code, x64::PatchSiteId id) {
  return patch::site_from(code.site(id));
}

// The address right after the instruction: for a call, its return address.
inline std::uintptr_t end_address(const SiteRef& s) {
  return reinterpret_cast<std::uintptr_t>(s.insn) + s.insn_size;
}
inline std::uintptr_t insn_address(const SiteRef& s) { return reinterpret_cast<std::uintptr_t>(s.insn); }

}  // namespace jitkit::ic::detail
