// src/patch/quiescence.cpp — quiescent-state based reclamation (see jitkit/patch/quiescence.h).
#include "jitkit/patch/quiescence.h"

#include <algorithm>
#include <string>
#include <thread>

namespace jitkit::patch {

QuiescenceDomain::Participant::~Participant() {
  offline();  // first, so that a synchronize() in progress (holding the mutex) stops waiting for us
  domain_->leave(this);
}

std::unique_ptr<QuiescenceDomain::Participant> QuiescenceDomain::join() {
  std::unique_ptr<Participant> p(new Participant(*this));
  p->quiescent();  // online from now on
  std::lock_guard<std::mutex> lock(mutex_);
  participants_.push_back(p.get());
  return p;
}

void QuiescenceDomain::leave(Participant* p) {
  std::lock_guard<std::mutex> lock(mutex_);
  participants_.erase(std::remove(participants_.begin(), participants_.end(), p), participants_.end());
}

std::size_t QuiescenceDomain::participants() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return participants_.size();
}

Status QuiescenceDomain::synchronize(std::chrono::nanoseconds timeout) {
  std::lock_guard<std::mutex> lock(mutex_);
  // seq_cst: ordered after the caller's patch (its release store and membarrier), so a
  // participant that reads this epoch can no longer fetch the old field.
  const std::uint64_t target = epoch_.fetch_add(1) + 1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (Participant* p : participants_) {
    for (;;) {
      const std::uint64_t seen = p->seen_.load(std::memory_order_acquire);
      if (seen == Participant::kOffline || seen >= target) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        std::size_t lagging = 0;
        for (Participant* q : participants_) {
          const std::uint64_t s = q->seen_.load(std::memory_order_acquire);
          lagging += s != Participant::kOffline && s < target;
        }
        return Error(ErrorCode::kInvalidState,
                     "patch: quiescence: " + std::to_string(lagging) + " of " +
                         std::to_string(participants_.size()) +
                         " participants passed no quiescent state before the timeout; the old "
                         "code may still be running and must not be freed");
      }
      std::this_thread::yield();
    }
  }
  return ok();
}

}  // namespace jitkit::patch
