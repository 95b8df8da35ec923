// jitkit/code/x86_64/trap_fill.h — the byte that fills code memory nobody may run.
//
// Code zones fill fresh and freed bytes with it, so that a jump into a stale or unallocated
// block traps (SIGTRAP) instead of running leftovers. The patcher writes the same byte as the
// first step of its breakpoint protocol, and its trap handler recognizes it.
#pragma once

#include <cstdint>

namespace jitkit::code::x86_64 {

// int3: a one-byte breakpoint, so any byte offset into filled memory traps.
inline constexpr std::uint8_t kInt3 = 0xCC;

}  // namespace jitkit::code::x86_64
