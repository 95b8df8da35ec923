// jitkit/base/format.h — the one way jitkit writes numbers into messages.
//
// Error messages, listings and diagnostics across the toolkit print addresses and raw values in
// one form, so that a reader can search a log for an address printed by any module:
//
//   hex(0)          -> "0x0"
//   hex(0x7f00)     -> "0x7f00"
//   hex(&object)    -> "0x55d0c3a1b2c0"
//
// Lower-case digits, always the 0x prefix, no padding. (printf's "%#llx" prints a bare "0" for
// zero, which is why no module formats addresses by hand.)
#pragma once

#include <cstdint>
#include <string>

namespace jitkit {

// `v` in lower-case hexadecimal with a 0x prefix.
std::string hex(std::uint64_t v);

// An address in the same form. (A template, so that a literal 0 still means the number.)
template <typename T>
std::string hex(T* p) {
  return hex(reinterpret_cast<std::uintptr_t>(p));
}

}  // namespace jitkit
