// src/patch/trap_table_p.h — the process-wide table of breakpoints in flight, shared between the
// patcher (which publishes it around a breakpoint round) and the SIGTRAP handler (which reads
// it). Private to the patch module.
//
// Protocol (every operation seq_cst):
//   publish(t): table = t; generation++          — BEFORE any int3 of the round is written
//   retire():   table = null; generation++; wait until no handler is in flight; then the
//               caller may delete t               — AFTER the round's last serialization
//   handler:    in_flight++; repeat { g1 = generation; t = table; byte = *insn; g2 = generation }
//               until g1 == g2; decide; in_flight--
// A handler that read an int3 of ours while the table was unchanged (g1 == g2) finds it in t:
// the table was published before that int3 was written and is retired only after it was
// replaced. in_flight keeps a table alive while a handler may still read it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "patch/x86_64/insn_p.h"

namespace jitkit::patch::detail {

struct TrapEntry {
  std::uintptr_t insn;  // executable address of the int3 (first byte of the edit)
  x86_64::Emulation emulation;
};

struct TrapTable {
  std::vector<TrapEntry> entries;  // sorted by insn, unique
};

// Serializes breakpoint rounds process-wide: there is one table.
std::mutex& breakpoint_round_mutex();

void publish_trap_table(const TrapTable* table);
void retire_trap_table();

// How many ranges register_patch_range has room for.
int max_patch_ranges();
// Address ranges in which a trap whose int3 has disappeared is restarted rather than forwarded
// (the executable ranges of zones that have a Patcher). Fixed capacity; returns false if full.
bool register_patch_range(std::uintptr_t begin, std::uintptr_t end);
void unregister_patch_range(std::uintptr_t begin, std::uintptr_t end);

}  // namespace jitkit::patch::detail
