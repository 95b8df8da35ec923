// The code zone's block allocator: bitmaps plus per-size free lists (see block_allocator_p.h).
#include "code/block_allocator_p.h"

#include <bit>
#include <cassert>

#include "jitkit/base/bits.h"

namespace jitkit::code::internal {

BlockAllocator::BlockAllocator(std::size_t capacity)
    : capacity_(capacity), used_((capacity + 63) / 64, 0), start_((capacity + 63) / 64, 0) {
  for (auto& list : free_lists_) list.reserve(64);
}

std::size_t BlockAllocator::find_bit(std::size_t from, std::size_t limit, bool value) const {
  std::size_t i = from;
  while (i < limit) {
    std::uint64_t word = used_[i >> 6];
    if (!value) word = ~word;
    word &= ~std::uint64_t{0} << (i & 63);  // ignore bits below i
    if (word != 0) {
      std::size_t hit = (i & ~std::size_t{63}) + static_cast<std::size_t>(std::countr_zero(word));
      return hit < limit ? hit : limit;
    }
    i = (i & ~std::size_t{63}) + 64;
  }
  return limit;
}

bool BlockAllocator::range_free(std::size_t first, std::size_t n) const {
  return find_bit(first, first + n, true) == first + n;
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

void BlockAllocator::take(std::size_t first, std::size_t n) {
  set_used(first, n, true);
  start_[first >> 6] |= std::uint64_t{1} << (first & 63);
  used_granules_ += n;
  ++block_count_;
  // Invariant: every granule below hint_ is used. Only advance it over what we just filled.
  if (first == hint_) hint_ = first + n;
}

std::size_t BlockAllocator::allocate(std::size_t n, std::size_t align) {
  if (n == 0 || n > capacity_ || !is_power_of_two(align)) return kNone;
  // Fast path: reuse a recently freed block of exactly this size.
  if (n <= kMaxCachedGranules) {
    auto& list = free_lists_[n];
    while (!list.empty()) {
      const std::size_t first = list.back();
      list.pop_back();
      if ((first & (align - 1)) == 0 && range_free(first, n)) {
        take(first, n);
        return first;
      }
      // Stale (first-fit took part of the hole) or misaligned for this request: drop it; the
      // bitmap still knows the space is free.
    }
  }
  // First fit from the lowest possibly-free granule.
  std::size_t i = hint_;
  while (true) {
    i = find_bit(i, capacity_, false);
    if (i >= capacity_) return kNone;
    i = align_up(i, align);
    if (i + n > capacity_) return kNone;
    const std::size_t busy = find_bit(i, i + n, true);
    if (busy == i + n) {
      take(i, n);
      return i;
    }
    i = busy + 1;
  }
}

bool BlockAllocator::is_block(std::size_t first, std::size_t n) const {
  if (n == 0 || first >= capacity_ || n > capacity_ - first) return false;
  if (!test(start_, first)) return false;
  if (find_bit(first, first + n, false) != first + n) return false;  // a hole inside
  // No other block starts inside, and the block ends exactly at first + n.
  for (std::size_t g = first + 1; g < first + n; ++g) {
    if ((g & 63) == 0 && first + n - g >= 64) {
      if (start_[g >> 6] != 0) return false;
      g += 63;
      continue;
    }
    if (test(start_, g)) return false;
  }
  const std::size_t next = first + n;
  return next == capacity_ || !test(used_, next) || test(start_, next);
}

void BlockAllocator::release(std::size_t first, std::size_t n) {
  assert(is_block(first, n));
  set_used(first, n, false);
  start_[first >> 6] &= ~(std::uint64_t{1} << (first & 63));
  used_granules_ -= n;
  --block_count_;
  if (first < hint_) hint_ = first;
  if (n <= kMaxCachedGranules && free_lists_[n].size() < kMaxCachedPerSize) {
    free_lists_[n].push_back(static_cast<std::uint32_t>(first));
  }
}

std::size_t BlockAllocator::largest_free_run() const {
  std::size_t best = 0;
  std::size_t i = 0;
  while (i < capacity_) {
    const std::size_t free_begin = find_bit(i, capacity_, false);
    if (free_begin >= capacity_) break;
    const std::size_t free_end = find_bit(free_begin, capacity_, true);
    best = std::max(best, free_end - free_begin);
    i = free_end;
  }
  return best;
}

}  // namespace jitkit::code::internal
