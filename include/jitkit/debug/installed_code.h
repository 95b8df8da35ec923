// jitkit/debug/installed_code.h — naming and listing code that install::install() put in a zone.
//
// Registering: the function's name (InstallOptions::name), its instruction bytes
// (code_size(), not the address slots and constants after them) and its block as the extent.
// The frame shape is read from the code itself unless given: detect_frame() recognizes the
// frame-pointer convention (`push rbp; mov rbp, rsp` at the start, `pop rbp`/`leave` before each
// `ret`) and leaf code that never moves rsp; anything else gets no CFI (gdb then falls back to
// its own prologue analysis), and callers that know better pass a FrameInfo.
//
//   JITKIT_TRY(auto fn, install::install(a, *zone, {.name = "add_one"}));
//   JITKIT_TRY(auto reg, debug::register_installed(fn));
//   std::puts(debug::listing(fn).c_str());
//
// Listings are Zydis disassembly (x64/disassemble.h), one line per instruction with address and
// bytes, and names: a `name:` line at the function start and at each given label; branch and
// RIP-relative targets named `<fn+0x1c>` from the CodeRegistry or, for host functions and data,
// from the dynamic symbol table (dladdr: link the program with -rdynamic to see its own symbols).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jitkit/base/result.h"
#include "jitkit/debug/code_registry.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/disassemble.h"

namespace jitkit::debug {

// The frame shape of `size` bytes of x86-64 code at `code` (decoded, not guessed): see above.
FrameInfo detect_frame(const void* code, std::size_t size);

// Adds `code` to `batch` under `name` (empty: code.name()). kInvalidArgument when both are empty.
[[nodiscard]] Status add_installed(SymbolBatch& batch, const install::InstalledCode& code,
                                   std::optional<FrameInfo> frame = std::nullopt,
                                   std::string_view name = {});
// A batch of one: registers `code` with the global CodeRegistry.
[[nodiscard]] Result<Registration> register_installed(const install::InstalledCode& code,
                                                      std::optional<FrameInfo> frame = std::nullopt);

struct ListingOptions {
  x64::Syntax syntax = x64::Syntax::kIntel;
  // Extra names inside the code (labels), printed as `name:` lines and used for branch targets.
  std::vector<std::pair<std::uintptr_t, std::string>> labels;
  // Name targets outside the listed code from the dynamic symbol table (dladdr).
  bool host_symbols = true;
};

// A listing of `size` bytes of code at `code`, headed by `name`.
std::string listing(std::string_view name, const void* code, std::size_t size,
                    const ListingOptions& options = {});
// A listing of installed code (its instructions, not its slots and constants).
std::string listing(const install::InstalledCode& code, const ListingOptions& options = {});

}  // namespace jitkit::debug
