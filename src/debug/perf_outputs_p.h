// src/debug/perf_outputs_p.h — how the CodeRegistry feeds the perf files (perf.h).
#pragma once

#include <span>

#include "jitkit/debug/code_registry.h"
#include "jitkit/debug/perf.h"

namespace jitkit::debug::detail {

// Appends the batch's functions to the enabled perf outputs (map lines, JIT_CODE_LOAD records).
void perf_record_functions(std::span<const Symbol> symbols);
// Cheap check so that registering with perf disabled costs one lock, not a loop.
bool perf_any_enabled();

}  // namespace jitkit::debug::detail
