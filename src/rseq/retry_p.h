// Private: the one retry loop behind every per-CPU operation's slow path (percpu.cpp), also
// used by the delay-injected copies of the operations in the tests (test_hooks_p.h), so that
// both retry exactly alike.
#pragma once

#include <sched.h>

#include "jitkit/rseq/percpu.h"
#include "jitkit/rseq/rseq.h"
#include "jitkit/rseq/section.h"

namespace jitkit::rseq::detail {

// The calling thread's area, registering it on first use (null: this thread takes the fallback).
inline RseqArea* area_for_slow_path() {
  RseqArea* area = tls_area;
  return area != nullptr ? area : ensure_registered().area;
}

// Retries one operation's critical section, `section(area) -> Attempt`, after the fast path's
// attempt gave `first` (kNotAttempted when the thread had no area then). An abort is counted
// and retried at once; a slot locked by a cross-CPU operation is retried after a yield (the
// owner finishes in bounded time). At most kMaxAttempts attempts in all, the fast path's
// included. Returns the outcome that settles the operation (kCommitted, kMismatch, kEmpty), or,
// for the caller's fallback, kAborted / kLocked when the attempts ran out, or kNotAttempted
// when the thread has no area.
template <typename Section>
Attempt retry_section(Attempt first, Section&& section) {
  Attempt a = first;
  int attempts = first == Attempt::kNotAttempted ? 0 : 1;
  RseqArea* area = nullptr;
  for (;;) {
    if (a == Attempt::kAborted) {
      count_abort();
    } else if (a == Attempt::kLocked) {
      sched_yield();
    } else if (a != Attempt::kNotAttempted) {
      return a;
    }
    if (attempts == kMaxAttempts) return a;
    if (area == nullptr) {
      area = area_for_slow_path();
      if (area == nullptr) return Attempt::kNotAttempted;
    }
    a = section(area);
    ++attempts;
  }
}

}  // namespace jitkit::rseq::detail
