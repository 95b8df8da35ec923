// src/x64/thread_slot_p.h — one object of a type per thread, for storage that the assembler
// keeps between uses instead of allocating it again (a destroyed Assembler's buffers for the
// next one, the layout's per-item arrays between encodes).
//
// Usable from any destructor, including static ones that run after the thread's own
// thread_local objects are gone: the slot itself is trivially destructible, and once the object
// was freed at thread exit thread_slot() answers nullptr (callers then use storage of their own).
#pragma once

namespace jitkit::x64::detail {

template <class T>
T* thread_slot() {
  struct Slot {
    T* value = nullptr;
    bool gone = false;
  };
  static thread_local constinit Slot slot;
  if (slot.value == nullptr && !slot.gone) {
    // Constructed when control first gets here in a thread; destroyed at that thread's exit.
    struct Owner {
      ~Owner() {
        delete slot.value;
        slot.value = nullptr;
        slot.gone = true;
      }
    };
    static thread_local Owner owner;
    slot.value = new T();
  }
  return slot.value;
}

}  // namespace jitkit::x64::detail
