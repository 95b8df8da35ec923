// src/code/spin_lock_p.h — the code zone's lock: short critical sections, no system call.
//
// allocate() and free() hold the lock for a few bitmap operations (tens of nanoseconds). A
// test-and-test-and-set spin lock costs one atomic exchange when uncontended, about half of an
// uncontended pthread mutex. Contended waiters spin on a plain load (no cache-line ping-pong),
// then yield the CPU so that a preempted holder can run on a machine with few cores.
#pragma once

#include <atomic>

#include <sched.h>

namespace jitkit::code::detail {

class SpinLock {
 public:
  void lock() noexcept {
    // acquire: the critical section's reads see the previous holder's writes.
    while (locked_.exchange(true, std::memory_order_acquire)) {
      int spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();  // lets the sibling hyper-thread run while we wait
#endif
        } else {
          sched_yield();
          spins = 0;
        }
      }
    }
  }
  // release: publishes the critical section's writes to the next holder.
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace jitkit::code::detail
