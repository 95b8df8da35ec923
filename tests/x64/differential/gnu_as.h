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

namespace jitkit::x64::testing {

// Assembles `body` (lines of Intel-syntax assembly, `.intel_syntax noprefix` is prepended) and
// returns the bytes of .text. On failure the error holds GNU as' diagnostics, whose line numbers
// count from 1 at the first line of `body`.
Result<std::vector<std::uint8_t>> assemble_with_gnu_as(const std::string& body);

// True when `as` and `objcopy` can be run (checked once).
bool gnu_as_available();

}  // namespace jitkit::x64::testing
