// src/code/sync_p.h — test seam of sync.h.
#pragma once

namespace jitkit::code::internal {

// When non-zero, serialize_all_cores() fails as if membarrier had returned this errno, so that
// the "unavailable membarrier" report can be tested on a kernel that has it. 0 restores.
void simulate_membarrier_errno(int errnum) noexcept;

}  // namespace jitkit::code::internal
