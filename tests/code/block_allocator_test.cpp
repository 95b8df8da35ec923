// The block allocator against a simple model: random allocate / free / batch-release
// sequences, checking placement, alignment, exact-block validation, statistics and that an
// allocation fails only when the model has no suitable free run either.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "code/block_allocator_p.h"

namespace jitkit::code::detail {
namespace {

struct Model {
  explicit Model(std::size_t capacity) : owner(capacity, 0) {}
  std::vector<int> owner;  // 0 free, > 0 allocated block id, -1 retired (freed, not reusable yet)

  bool has_free_run(std::size_t n, std::size_t align) const {
    for (std::size_t i = 0; i + n <= owner.size(); i += align) {
      bool ok = true;
      for (std::size_t j = i; j < i + n && ok; ++j) ok = owner[j] == 0;
      if (ok) return true;
    }
    return false;
  }
  std::size_t largest_free_run() const {
    std::size_t best = 0, cur = 0;
    for (int o : owner) {
      cur = o == 0 ? cur + 1 : 0;
      best = std::max(best, cur);
    }
    return best;
  }
  std::size_t count_allocated() const {
    return static_cast<std::size_t>(std::count_if(owner.begin(), owner.end(), [](int o) { return o > 0; }));
  }
};

void run_random_sequence(std::size_t capacity, unsigned seed, int steps) {
  BlockAllocator a(capacity);
  Model m(capacity);
  std::mt19937 rng(seed);
  std::map<int, std::pair<std::size_t, std::size_t>> live;  // id -> (first, n)
  std::vector<std::pair<std::size_t, std::size_t>> retired;
  int next_id = 1;
  for (int step = 0; step < steps; ++step) {
    const unsigned op = rng() % 100;
    if (op < 55) {
      // Mostly small blocks (the per-size caches), sometimes large ones (first fit).
      const std::size_t n = (rng() % 4 == 0) ? 1 + rng() % 120 : 1 + rng() % 6;
      const std::size_t align = std::size_t{1} << (rng() % 4);
      const std::size_t first = a.allocate(n, align);
      if (first == BlockAllocator::kNone) {
        ASSERT_FALSE(m.has_free_run(n, align)) << "allocator failed although the model has room, step "
                                               << step << " n=" << n << " align=" << align;
        continue;
      }
      ASSERT_EQ(first % align, 0u);
      ASSERT_LE(first + n, capacity);
      for (std::size_t g = first; g < first + n; ++g) {
        ASSERT_EQ(m.owner[g], 0) << "granule " << g << " handed out twice, step " << step;
        m.owner[g] = next_id;
      }
      live[next_id++] = {first, n};
    } else if (op < 95 && !live.empty()) {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      const auto [first, n] = it->second;
      ASSERT_TRUE(a.is_block(first, n));
      ASSERT_FALSE(a.is_block(first, n + 1));
      if (n > 1) {
        ASSERT_FALSE(a.is_block(first, n - 1)) << "a shorter size must not validate";
        ASSERT_FALSE(a.is_block(first + 1, n - 1));
      }
      a.retire(first, n);
      ASSERT_FALSE(a.is_block(first, n)) << "a retired block is no longer freeable (double free)";
      for (std::size_t g = first; g < first + n; ++g) m.owner[g] = -1;
      retired.push_back({first, n});
      live.erase(it);
    } else {
      ASSERT_EQ(a.retired().size(), retired.size());
      a.release_retired();
      for (const auto& [first, n] : retired) {
        for (std::size_t g = first; g < first + n; ++g) m.owner[g] = 0;
      }
      retired.clear();
    }
    ASSERT_EQ(a.used_granules(), m.count_allocated()) << "step " << step;
    ASSERT_EQ(a.block_count(), live.size());
    if (step % 64 == 0) {
      ASSERT_EQ(a.largest_free_run(), m.largest_free_run()) << "step " << step;
      for (std::size_t g = 0; g < capacity; ++g) ASSERT_EQ(a.is_unavailable(g), m.owner[g] != 0) << g;
    }
  }
}

TEST(BlockAllocator, RandomSequencesMatchTheModel) {
  for (unsigned seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    run_random_sequence(seed % 2 ? 1000 : 4096, seed, 6000);
    if (HasFatalFailure()) return;
  }
}

TEST(BlockAllocator, TinyCapacityEdges) {
  BlockAllocator a(3);
  EXPECT_EQ(a.allocate(4, 1), BlockAllocator::kNone);
  EXPECT_EQ(a.allocate(0, 1), BlockAllocator::kNone);
  EXPECT_EQ(a.allocate(1, 3), BlockAllocator::kNone) << "alignment must be a power of two";
  EXPECT_EQ(a.allocate(3, 1), 0u);
  EXPECT_EQ(a.allocate(1, 1), BlockAllocator::kNone);
  EXPECT_TRUE(a.is_block(0, 3));
  a.release(0, 3);
  EXPECT_EQ(a.largest_free_run(), 3u);
  EXPECT_EQ(a.allocate(1, 2), 0u);
  EXPECT_EQ(a.allocate(1, 2), 2u);
  EXPECT_EQ(a.allocate(1, 2), BlockAllocator::kNone);
  EXPECT_EQ(a.allocate(1, 1), 1u);
}

TEST(BlockAllocator, FreedSmallBlocksAreReusedFirst) {
  BlockAllocator a(1000);
  const std::size_t x = a.allocate(2, 1);
  const std::size_t y = a.allocate(2, 1);
  a.retire(x, 2);
  EXPECT_NE(a.allocate(2, 1), x) << "a retired block waits for its batch";
  a.release_retired();
  EXPECT_EQ(a.allocate(2, 1), x);
  EXPECT_TRUE(a.is_block(y, 2));
}

}  // namespace
}  // namespace jitkit::code::detail
