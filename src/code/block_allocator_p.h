// src/code/block_allocator_p.h — the code zone's block allocator, as pure bookkeeping.
//
// It hands out runs of granules (the zone's allocation unit, 64 bytes by default) from a range
// of `capacity` granules and knows nothing of memory, protections or locks: the zone maps,
// commits, fills and locks around it. Keeping it pure lets the tests check it against a simple
// model, and keeps every byte of its metadata out of executable memory.
//
// Representation: two bitmaps over the granules, `used_` (allocated) and `start_` (first
// granule of a block), so that free() can verify that it receives exactly a block this
// allocator handed out. Allocation is first-fit from `hint_` (every granule below it is used),
// with a fast path for small blocks: per-size free lists of recently freed blocks (sizes 1 to
// kMaxCachedGranules). A list entry can go stale when first-fit later takes part of that hole,
// so a popped entry is re-checked against `used_` and dropped if stale; lists are capped so
// that stale entries cannot grow without bound.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace jitkit::code::internal {

class BlockAllocator {
 public:
  static constexpr std::size_t kNone = ~std::size_t{0};
  static constexpr std::size_t kMaxCachedGranules = 64;
  static constexpr std::size_t kMaxCachedPerSize = 512;

  explicit BlockAllocator(std::size_t capacity);

  // First granule of a newly allocated run of `n` granules whose index is a multiple of
  // `align` (a power of two), or kNone when no such run is free.
  std::size_t allocate(std::size_t n, std::size_t align);
  // True if [first, first + n) is exactly one allocated block.
  bool is_block(std::size_t first, std::size_t n) const;
  // Releases a block; is_block(first, n) must hold.
  void release(std::size_t first, std::size_t n);

  std::size_t capacity() const { return capacity_; }
  std::size_t used_granules() const { return used_granules_; }
  std::size_t block_count() const { return block_count_; }
  // Longest run of free granules (scans the bitmap: for statistics, not the fast path).
  std::size_t largest_free_run() const;
  bool is_used(std::size_t g) const { return test(used_, g); }

 private:
  static bool test(const std::vector<std::uint64_t>& bits, std::size_t i) {
    return (bits[i >> 6] >> (i & 63)) & 1;
  }
  bool range_free(std::size_t first, std::size_t n) const;
  void set_used(std::size_t first, std::size_t n, bool used);
  // First granule in [from, limit) whose used bit equals `value`, or `limit`.
  std::size_t find_bit(std::size_t from, std::size_t limit, bool value) const;
  void take(std::size_t first, std::size_t n);

  std::size_t capacity_;
  std::vector<std::uint64_t> used_;
  std::vector<std::uint64_t> start_;
  std::size_t hint_ = 0;
  std::size_t used_granules_ = 0;
  std::size_t block_count_ = 0;
  std::array<std::vector<std::uint32_t>, kMaxCachedGranules + 1> free_lists_;
};

}  // namespace jitkit::code::internal
