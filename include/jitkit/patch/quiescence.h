// jitkit/patch/quiescence.h — when an old patch target may be freed: quiescent-state based
// reclamation (QSBR) for code.
//
// After Patcher::retarget() returns with Sync::kAllCores, no core newly fetches the old field,
// but a thread may still be inside the old target, or have fetched the old rel32 and be about to
// land there, or be preempted with a return address into it. patcher.h leaves the rule to the
// caller ("free only after every thread that could run it has passed a quiescent state"); this
// class is that rule as a mechanism.
//
// Each thread that runs patchable code registers a Participant and calls quiescent() where it
// holds no reference into reclaimable code (e.g. the top of an interpreter loop, between
// requests). A thread about to block for long goes offline() (and online() after) so that it does
// not hold reclamation up. The patcher, after the patch returned with Sync::kAllCores, calls
// synchronize(): it returns once every online participant has called quiescent() (or gone
// offline) after synchronize() started. The old target may then be freed.
//
//   // runner thread                         // patcher thread
//   auto me = domain.join();                 JITKIT_TRY(patcher.retarget(site, new_fn));
//   for (;;) { run_jit_code();               JITKIT_TRY(domain.synchronize(1s));
//              me->quiescent(); }            JITKIT_TRY(zone.free(old_block));
//
// Why it is enough: the retarget's release store and membarrier precede synchronize()'s epoch
// increment; a participant that reads the new epoch in quiescent() and runs the site afterwards
// fetches the new field (its core was serialized by the membarrier, or it was not running then
// and is serialized by the context switch). Anything it did before quiescent() — including
// running the old target — happens before its release store of the epoch, which synchronize()
// reads with acquire.
//
// quiescent() is two atomic operations and async-signal-safe; online()/offline() too.
// synchronize() takes a mutex and polls (yielding); it must not be called by a participant that
// is online (it would wait for itself).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "jitkit/base/result.h"

namespace jitkit::patch {

class QuiescenceDomain {
 public:
  class Participant {
   public:
    ~Participant();
    Participant(const Participant&) = delete;
    Participant& operator=(const Participant&) = delete;
    // "I hold no reference into reclaimable code now."
    void quiescent() noexcept {
      seen_.store(domain_->epoch_.load(std::memory_order_acquire), std::memory_order_release);
    }
    // Leave (and re-enter) the set of threads that synchronize() waits for.
    void offline() noexcept { seen_.store(kOffline, std::memory_order_release); }
    void online() noexcept { quiescent(); }

   private:
    friend class QuiescenceDomain;
    explicit Participant(QuiescenceDomain& d) : domain_(&d) {}
    static constexpr std::uint64_t kOffline = 0;
    QuiescenceDomain* domain_;
    std::atomic<std::uint64_t> seen_{kOffline};
  };

  QuiescenceDomain() = default;
  QuiescenceDomain(const QuiescenceDomain&) = delete;
  QuiescenceDomain& operator=(const QuiescenceDomain&) = delete;
  // All participants must have been destroyed first.
  ~QuiescenceDomain() = default;

  // Registers the calling thread, online. The handle unregisters on destruction.
  std::unique_ptr<Participant> join();

  // Waits until every online participant has passed a quiescent state that started after this
  // call. Fails with kInvalidState, naming how many participants lag, after `timeout`.
  Status synchronize(std::chrono::nanoseconds timeout = std::chrono::hours(24));

  std::size_t participants() const;

 private:
  void leave(Participant* p);
  std::atomic<std::uint64_t> epoch_{1};
  mutable std::mutex mutex_;  // guards participants_ and serializes synchronize()
  std::vector<Participant*> participants_;
};

}  // namespace jitkit::patch
