// src/debug/gdb_jit_interface.cpp — the one definition of __jit_debug_descriptor and
// __jit_debug_register_code in the process (see gdb_jit_interface_p.h).
#include "debug/gdb_jit_interface_p.h"

extern "C" {

// gdb sets a breakpoint on this function by name. It must stay a real, out-of-line function
// that the optimizer cannot merge, inline or drop: `noinline` keeps the call, `used` keeps the
// definition, and the empty asm with a memory clobber keeps the stores to the descriptor before
// the call (gdb reads them when the breakpoint hits; without the clobber the compiler could
// sink the stores past a call it sees has no effects).
__attribute__((noinline, used, visibility("default"))) void __jit_debug_register_code() {
  __asm__ volatile("" ::: "memory");
}

// version 1 is the only version gdb knows. gdb reads this by symbol name.
__attribute__((used, visibility("default")))
jit_descriptor __jit_debug_descriptor = {1, JIT_NOACTION, nullptr, nullptr};

}  // extern "C"

namespace jitkit::debug::detail {

void gdb_register(jit_code_entry* entry) {
  entry->prev_entry = nullptr;
  entry->next_entry = __jit_debug_descriptor.first_entry;
  if (entry->next_entry != nullptr) entry->next_entry->prev_entry = entry;
  __jit_debug_descriptor.first_entry = entry;
  __jit_debug_descriptor.relevant_entry = entry;
  __jit_debug_descriptor.action_flag = JIT_REGISTER_FN;
  __jit_debug_register_code();
  // Left in place by gdb; reset so that a debugger attaching later does not replay it.
  __jit_debug_descriptor.action_flag = JIT_NOACTION;
  __jit_debug_descriptor.relevant_entry = nullptr;
}

void gdb_unregister(jit_code_entry* entry) {
  if (entry->prev_entry != nullptr) {
    entry->prev_entry->next_entry = entry->next_entry;
  } else {
    __jit_debug_descriptor.first_entry = entry->next_entry;
  }
  if (entry->next_entry != nullptr) entry->next_entry->prev_entry = entry->prev_entry;
  // gdb finds the object it loaded for `entry` by the entry's address, so the entry must stay
  // valid until the call returns (the caller frees it afterwards).
  __jit_debug_descriptor.relevant_entry = entry;
  __jit_debug_descriptor.action_flag = JIT_UNREGISTER_FN;
  __jit_debug_register_code();
  __jit_debug_descriptor.action_flag = JIT_NOACTION;
  __jit_debug_descriptor.relevant_entry = nullptr;
}

}  // namespace jitkit::debug::detail
