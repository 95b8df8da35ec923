// The reference encoder of the differential test: GNU as (binutils), driven as a subprocess.
//
// `assemble_with_gnu_as` writes one source file (Intel syntax, noprefix), runs
// `as --64` on it and extracts the raw .text bytes with `objcopy -O binary -j .text`. One call
// assembles thousands of instructions: process start-up dominates otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jitkit/base/result.h"

namespace jitkit::x64::test_util {

// An absolute symbol handed to the linker (host addresses in the source refer to it by name, so
// that GNU as emits a relocation and ld resolves it for the final code address).
struct AbsoluteSymbol {
  std::string name;
  std::uint64_t value;
};

// Assembles `body` (lines of Intel-syntax assembly, `.intel_syntax noprefix` is prepended) and
// returns the bytes of .text. Without `link_base`, the bytes come straight from the object file
// (objcopy); with it, the object is linked by `ld -Ttext=<link_base>` with `symbols` defined, so
// RIP-relative and absolute references to those symbols are resolved as for code placed there.
// On failure the error holds the tools' diagnostics (as' line numbers count from 1 at `body`).
Result<std::vector<std::uint8_t>> assemble_with_gnu_as(const std::string& body, std::uint64_t link_base = 0,
                                                       const std::vector<AbsoluteSymbol>& symbols = {});

// True when `as` and `objcopy` can be run (checked once).
bool gnu_as_available();

}  // namespace jitkit::x64::test_util
