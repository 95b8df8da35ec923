// jitkit/debug/perf.h — perf's two ways of naming JIT code: the map file and jitdump.
//
// Both are opt-in and fed by the CodeRegistry (code_registry.h) for every function registered
// after they are enabled (labels and data symbols are not written: perf only names code).
//
// perf map  /tmp/perf-<pid>.map, one "START SIZE name" line per function. perf report reads it
//           for samples in ANONYMOUS executable mappings only. Code in a dual-mapped zone runs
//           from a file mapping ("/memfd:jitkit-code (deleted)"), which perf (6.1 at least) never
//           looks up in the map file: use jitdump for dual-mapped zones (perf_map_covers() says
//           which case an address is in).
// jitdump   jit-<pid>.dump in a directory (default /tmp, JITKIT_JITDUMP_DIR overrides): the file
//           header, then one JIT_CODE_LOAD record per function carrying a copy of its code bytes,
//           timestamped with CLOCK_MONOTONIC. The file is also mmap'ed PROT_READ|PROT_EXEC once:
//           that mmap event in perf.data is how `perf inject --jit` finds it. perf inject then
//           writes one small ELF per function (jitted-<pid>-<n>.so, in the same directory) and
//           adds mmap events for them, which override the memfd mapping: this works under dual
//           mapping.
//             perf record -k mono -e cpu-clock -o perf.data ./prog
//             perf inject --jit -i perf.data -o perf.jit.data
//             perf report -i perf.jit.data
//
// Environment (read once, when the global CodeRegistry is first used):
//   JITKIT_PERF_MAP=1     enable the map file      JITKIT_JITDUMP=1      enable jitdump
//   JITKIT_JITDUMP_DIR=d  directory of jit-<pid>.dump (and of perf inject's .so files)
//   JITKIT_GDB_JIT=0      do not register with gdb (saves the ELF building)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "jitkit/base/result.h"

namespace jitkit::debug {

// Starts writing /tmp/perf-<pid>.map (appending if it exists). Idempotent.
[[nodiscard]] Status enable_perf_map();
// Starts writing <dir>/jit-<pid>.dump (empty dir: $JITKIT_JITDUMP_DIR, else /tmp). Idempotent:
// a second call with another directory fails with kInvalidState.
[[nodiscard]] Status enable_jitdump(std::string_view dir = {});
// Flushes and closes both files (a JIT_CODE_CLOSE record ends the jitdump). Later
// registrations are no longer written until enabled again.
void disable_perf_outputs();

bool perf_map_enabled();
bool jitdump_enabled();
// Paths of the files being written (empty when disabled).
std::string perf_map_path();
std::string jitdump_path();

// True if perf would look `address` up in the perf map file: it lies in an anonymous
// executable mapping of this process (reads /proc/self/maps; for diagnostics and tests).
// False for file-backed mappings, including a dual-mapped zone's memfd view.
[[nodiscard]] Result<bool> perf_map_covers(std::uintptr_t address);

}  // namespace jitkit::debug
