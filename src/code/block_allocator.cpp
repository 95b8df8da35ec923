// The code zone's block allocator: bitmaps plus per-size caches (see block_allocator_p.h).
#include "code/block_allocator_p.h"

#include <algorithm>
#include <bit>
#include <cassert>

#include "jitkit/base/bits.h"

namespace jitkit::code::detail {

BlockAllocator::BlockAllocator(std::size_t capacity)
    : capacity_(capacity),
      used_((capacity + 63) / 64, 0),
      start_((capacity + 63) / 64, 0),
      pending_((capacity + 63) / 64, 0),
      cached_((capacity + 63) / 64, 0) {
  for (auto& cache : caches_) cache.reserve(64);
  retired_.reserve(256);
}

std::size_t BlockAllocator::find_bit(const std::vector<std::uint64_t>& bits, std::size_t from,
                                     std::size_t limit, bool value) {
  std::size_t i = from;
  while (i < limit) {
    std::uint64_t word = bits[i >> 6];
    if (!value) word = ~word;
    word &= ~std::uint64_t{0} << (i & 63);  // ignore bits below i
    if (word != 0) {
      const std::size_t hit = (i & ~std::size_t{63}) + static_cast<std::size_t>(std::countr_zero(word));
      return hit < limit ? hit : limit;
    }
    i = (i & ~std::size_t{63}) + 64;
  }
  return limit;
}

void BlockAllocator::set_used(std::size_t first, std::size_t n, bool used) {
  std::size_t i = first;
  const std::size_t end = first + n;
  while (i < end) {
    const std::size_t bit = i & 63;
    const std::size_t count = std::min<std::size_t>(64 - bit, end - i);
    const std::uint64_t mask = (count == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << count) - 1)) << bit;
    if (used) {
      used_[i >> 6] |= mask;
    } else {
      used_[i >> 6] &= ~mask;
    }
    i += count;
  }
}

void BlockAllocator::bitmap_take(std::size_t first, std::size_t n) {
  set_used(first, n, true);
  set_bit(start_, first, true);
  bitmap_used_ += n;
  ++bitmap_blocks_;
  // Invariant: every granule below hint_ is used. Only advance it over what we just filled.
  if (first == hint_) hint_ = first + n;
}

void BlockAllocator::bitmap_release(std::size_t first, std::size_t n) {
  set_used(first, n, false);
  set_bit(start_, first, false);
  bitmap_used_ -= n;
  --bitmap_blocks_;
  if (first < hint_) hint_ = first;
}

std::size_t BlockAllocator::first_fit(std::size_t n, std::size_t align) {
  std::size_t i = hint_;
  while (true) {
    i = find_bit(used_, i, capacity_, false);
    if (i >= capacity_) return kNone;
    i = align_up(i, align);
    if (i + n > capacity_) return kNone;
    const std::size_t busy = find_bit(used_, i, i + n, true);
    if (busy == i + n) {
      bitmap_take(i, n);
      return i;
    }
    i = busy + 1;
  }
}

void BlockAllocator::drain_caches() {
  for (std::size_t n = 1; n <= kMaxCachedGranules; ++n) {
    for (std::uint32_t first : caches_[n]) {
      set_bit(cached_, first, false);
      bitmap_release(first, n);
    }
    caches_[n].clear();
  }
  cached_granules_ = 0;
  cached_blocks_ = 0;
}

std::size_t BlockAllocator::allocate(std::size_t n, std::size_t align) {
  if (n == 0 || n > capacity_ || !is_power_of_two(align)) return kNone;
  // Fast path: a filled block of exactly this size, still marked used in the bitmap.
  if (n <= kMaxCachedGranules && !caches_[n].empty() && is_aligned(caches_[n].back(), align)) {
    const std::size_t first = caches_[n].back();
    caches_[n].pop_back();
    set_bit(cached_, first, false);
    cached_granules_ -= n;
    --cached_blocks_;
    return first;
  }
  std::size_t first = first_fit(n, align);
  if (first == kNone && cached_blocks_ != 0) {
    // Cached blocks may be fragments of the run we need: give them back and retry.
    drain_caches();
    first = first_fit(n, align);
  }
  return first;
}

bool BlockAllocator::is_block(std::size_t first, std::size_t n) const {
  if (n == 0 || first >= capacity_ || n > capacity_ - first) return false;
  if (!test(start_, first) || test(pending_, first) || test(cached_, first)) return false;
  if (find_bit(used_, first, first + n, false) != first + n) return false;      // a hole inside
  if (find_bit(start_, first + 1, first + n, true) != first + n) return false;  // another block inside
  // The block ends exactly at first + n: the next granule is free or starts another block.
  const std::size_t next = first + n;
  return next == capacity_ || !test(used_, next) || test(start_, next);
}

void BlockAllocator::release(std::size_t first, std::size_t n) {
  assert(is_block(first, n));
  bitmap_release(first, n);
}

void BlockAllocator::retire(std::size_t first, std::size_t n) {
  assert(is_block(first, n));
  set_bit(pending_, first, true);
  retired_.push_back(Run{static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(n)});
  retired_granules_ += n;
}

void BlockAllocator::release_retired() {
  for (const Run& r : retired_) {
    set_bit(pending_, r.first, false);
    retired_granules_ -= r.n;
    if (r.n <= kMaxCachedGranules && caches_[r.n].size() < kMaxCachedPerSize) {
      caches_[r.n].push_back(r.first);
      set_bit(cached_, r.first, true);
      cached_granules_ += r.n;
      ++cached_blocks_;
    } else {
      bitmap_release(r.first, r.n);
    }
  }
  retired_.clear();
}

bool BlockAllocator::is_unavailable(std::size_t g) const {
  if (!test(used_, g)) return false;
  // Walk back to the start of the block holding g and ask whether that block is cached.
  std::size_t s = g;
  while (!test(start_, s)) --s;
  return !test(cached_, s);
}

std::size_t BlockAllocator::largest_free_run() const {
  std::vector<std::uint64_t> avail = used_;  // 1 = unavailable
  for (std::size_t n = 1; n <= kMaxCachedGranules; ++n) {
    for (std::uint32_t first : caches_[n]) {
      for (std::size_t g = first; g < first + n; ++g) avail[g >> 6] &= ~(std::uint64_t{1} << (g & 63));
    }
  }
  std::size_t best = 0;
  std::size_t i = 0;
  while (i < capacity_) {
    const std::size_t free_begin = find_bit(avail, i, capacity_, false);
    if (free_begin >= capacity_) break;
    const std::size_t free_end = find_bit(avail, free_begin, capacity_, true);
    best = std::max(best, free_end - free_begin);
    i = free_end;
  }
  return best;
}

}  // namespace jitkit::code::detail
