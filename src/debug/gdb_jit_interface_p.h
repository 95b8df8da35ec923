// src/debug/gdb_jit_interface_p.h — the GDB JIT interface, as the gdb manual ("JIT Compilation
// Interface") defines it: a descriptor holding a doubly linked list of in-memory object files,
// and a function gdb puts a breakpoint on. After changing the list, the program sets
// `action_flag` and `relevant_entry` and calls `__jit_debug_register_code()`; gdb, stopped there,
// reads the descriptor and loads or drops that one object.
//
// The symbols are defined exactly once in the process, in gdb_jit_interface.cpp. Only one action
// may be in flight: callers hold the CodeRegistry mutex around link/unlink + notify.
#pragma once

#include <cstdint>

extern "C" {

typedef enum { JIT_NOACTION = 0, JIT_REGISTER_FN, JIT_UNREGISTER_FN } jit_actions_t;

struct jit_code_entry {
  jit_code_entry* next_entry;
  jit_code_entry* prev_entry;
  const char* symfile_addr;
  std::uint64_t symfile_size;
};

struct jit_descriptor {
  std::uint32_t version;  // 1
  std::uint32_t action_flag;
  jit_code_entry* relevant_entry;
  jit_code_entry* first_entry;
};

extern jit_descriptor __jit_debug_descriptor;
void __jit_debug_register_code();

}  // extern "C"

namespace jitkit::debug::detail {

// Links `entry` at the head of the list and tells gdb (O(1)). Caller holds the registry lock.
void gdb_register(jit_code_entry* entry);
// Unlinks `entry` and tells gdb (O(1)). Caller holds the registry lock.
void gdb_unregister(jit_code_entry* entry);

}  // namespace jitkit::debug::detail
