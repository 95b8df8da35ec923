// Private: the set of rseq areas in use by live threads (glibc's or jitkit's), so that freeing
// a JIT-emitted section can clear every rseq_cs that still points at its descriptor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "jitkit/rseq/rseq.h"

namespace jitkit::rseq::detail {

class Registry {
 public:
  void add(RseqArea* area);
  void remove(RseqArea* area);     // at thread exit, before the area's memory goes away
  void keep_only(RseqArea* area);  // in a forked child
  // Atomically replaces rseq_cs == descriptor by 0 in every area; returns how many it cleared.
  std::size_t clear_pointers_to(std::uint64_t descriptor);
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::vector<RseqArea*> areas_;
};

Registry& registry();

}  // namespace jitkit::rseq::detail
