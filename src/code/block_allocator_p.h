// src/code/block_allocator_p.h — the code zone's block allocator, as pure bookkeeping.
//
// It hands out runs of granules (the zone's allocation unit, 64 bytes by default) from a range
// of `capacity` granules and knows nothing of memory, protections or locks: the zone maps,
// commits, fills and locks around it. Keeping it pure lets the tests check it against a simple
// model, and keeps every byte of its metadata out of executable memory.
//
// Representation: bitmaps over the granules. `used_` marks granules that are not free in the
// bitmap sense, `start_` the first granule of each such block, so that free() can verify it
// receives exactly a block this allocator handed out. A block in `used_` is in one of three
// states: allocated (owned by a caller), retired (freed by the caller, waiting for the zone's
// batched int3 fill: not allocatable yet; marked in `pending_`), or cached (filled and ready,
// kept in a per-size cache for O(1) reuse; marked in `cached_`).
//
// allocate(): pops the per-size cache (no bitmap work) when possible, else first-fit over the
// bitmap from `hint_` (every granule below it is used), else drains the caches into the bitmap
// and tries first-fit again. retire() + release_retired() are the two halves of free().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace jitkit::code::detail {

class BlockAllocator {
 public:
  static constexpr std::size_t kNone = ~std::size_t{0};
  static constexpr std::size_t kMaxCachedGranules = 64;
  static constexpr std::size_t kMaxCachedPerSize = 1024;

  struct Run {
    std::uint32_t first, n;
  };

  explicit BlockAllocator(std::size_t capacity);

  // First granule of a newly allocated run of `n` granules whose index is a multiple of
  // `align` (a power of two), or kNone when no such run is free.
  std::size_t allocate(std::size_t n, std::size_t align);
  // True if [first, first + n) is exactly one block currently allocated to a caller.
  bool is_block(std::size_t first, std::size_t n) const;
  // Returns an allocated block to the free space at once (is_block must hold).
  void release(std::size_t first, std::size_t n);
  // Takes an allocated block out of use without making it allocatable yet (is_block must hold).
  void retire(std::size_t first, std::size_t n);
  const std::vector<Run>& retired() const { return retired_; }
  std::size_t retired_granules() const { return retired_granules_; }
  // Makes every retired block allocatable (into the per-size cache, or the bitmap).
  void release_retired();

  std::size_t capacity() const { return capacity_; }
  // Granules and blocks allocated to callers (retired and cached blocks are not counted).
  std::size_t used_granules() const { return bitmap_used_ - retired_granules_ - cached_granules_; }
  std::size_t block_count() const { return bitmap_blocks_ - retired_.size() - cached_blocks_; }
  // Longest run of allocatable granules, cached blocks included (scans: statistics only).
  std::size_t largest_free_run() const;
  // True if granule g is allocated to a caller or retired (not allocatable).
  bool is_unavailable(std::size_t g) const;

 private:
  static bool test(const std::vector<std::uint64_t>& bits, std::size_t i) {
    return (bits[i >> 6] >> (i & 63)) & 1;
  }
  static void set_bit(std::vector<std::uint64_t>& bits, std::size_t i, bool v) {
    if (v) {
      bits[i >> 6] |= std::uint64_t{1} << (i & 63);
    } else {
      bits[i >> 6] &= ~(std::uint64_t{1} << (i & 63));
    }
  }
  void set_used(std::size_t first, std::size_t n, bool used);
  // First granule in [from, limit) whose bit in `bits` equals `value`, or `limit`.
  static std::size_t find_bit(const std::vector<std::uint64_t>& bits, std::size_t from, std::size_t limit,
                              bool value);
  std::size_t first_fit(std::size_t n, std::size_t align);
  void bitmap_take(std::size_t first, std::size_t n);
  void bitmap_release(std::size_t first, std::size_t n);
  void drain_caches();

  std::size_t capacity_;
  std::vector<std::uint64_t> used_, start_, pending_, cached_;
  std::size_t hint_ = 0;
  std::size_t bitmap_used_ = 0, bitmap_blocks_ = 0;
  std::size_t cached_granules_ = 0, cached_blocks_ = 0;
  std::size_t retired_granules_ = 0;
  std::vector<Run> retired_;
  std::array<std::vector<std::uint32_t>, kMaxCachedGranules + 1> caches_;
};

}  // namespace jitkit::code::detail
