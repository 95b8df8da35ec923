// ic stress: max(4, 2 x cores) threads send through shared sites to receivers of rotating and
// random classes (heap objects and small integers, one selector some classes do not
// understand), while one thread forces transitions, invalidates by selector, class and method,
// flushes, and redefines methods — freeing each old method after its invalidation, so that a
// stale cache entry would jump into int3 fill and kill the test.
//
// Every result names the method that ran and its arguments. A redefinition races the sends it
// overlaps, so the check accepts the method that was current when the send started or any that
// replaced it while the send ran; a method replaced by a redefinition that had completed before
// the send started is a wrong answer.
//
// Duration per scenario: jitkit::test_util::stress_seconds() (2 s; JITKIT_STRESS_SECONDS=<s>).
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "ic/ic_world_p.h"
#include "support/stress_duration_p.h"

namespace jitkit::ic {
namespace {

using test_util::kSmallIntTag;
using test_util::World;

constexpr std::uint32_t kTags = 8;         // heap classes 0..7, plus small integers
constexpr std::uint32_t kSelectors = 3;    // selector 2 is not understood by classes 6 and 7
constexpr std::uint32_t kRedefinable = 2;  // selectors 0 and 1 get redefined

bool understood(std::uint32_t tag, std::uint32_t sel) { return !(sel == 2 && (tag == 6 || tag == 7)); }

// The methods each (tag, selector) had, with the mutation number that installed them.
class History {
 public:
  static constexpr std::size_t kCapacity = 1 << 14;
  struct Entry {
    std::atomic<std::uint64_t> from{0};
    std::atomic<std::uint64_t> id{0};
  };
  History() : entries_(kCapacity) {}
  bool append(std::uint64_t from, std::uint64_t id) {
    const std::size_t n = count_.load(std::memory_order_relaxed);
    if (n == kCapacity) return false;
    entries_[n].from.store(from, std::memory_order_relaxed);
    entries_[n].id.store(id, std::memory_order_relaxed);
    count_.store(n + 1, std::memory_order_release);
    return true;
  }
  // Whether method `id` may answer a send that started when mutations up to `completed` had
  // finished and ended before mutation `started` + 1 began.
  bool acceptable(std::uint64_t id, std::uint64_t completed, std::uint64_t started) const {
    const std::size_t n = count_.load(std::memory_order_acquire);
    for (std::size_t k = n; k-- > 0;) {
      if (entries_[k].id.load(std::memory_order_relaxed) != id) continue;
      if (entries_[k].from.load(std::memory_order_relaxed) > started) return false;
      return k + 1 == n || entries_[k + 1].from.load(std::memory_order_relaxed) > completed;
    }
    return false;
  }

 private:
  std::vector<Entry> entries_;
  std::atomic<std::size_t> count_{0};
};

struct Scenario {
  const char* name;
  std::size_t max_pic_cases;
  unsigned table_buckets_log2;
};

void run(const Scenario& sc) {
  EngineOptions options;
  options.max_pic_cases = sc.max_pic_cases;
  options.table_buckets_log2 = sc.table_buckets_log2;
  World w(options);
  ASSERT_TRUE(w.ok());
  std::array<std::array<History, kSelectors>, kTags + 1> history;
  auto tag_index = [](std::uint32_t tag) { return tag == kSmallIntTag ? kTags : tag; };
  std::vector<std::uint32_t> tags;
  for (std::uint32_t t = 0; t < kTags; ++t) tags.push_back(t);
  tags.push_back(kSmallIntTag);
  for (std::uint32_t t : tags) {
    for (std::uint32_t s = 0; s < kSelectors; ++s) {
      if (!understood(t, s)) continue;
      const int m = w.define(t, s);
      history[tag_index(t)][s].append(0, w.method(m).id);
    }
  }
  // Two sites per selector, shared by every thread.
  std::vector<World::Caller> callers;
  std::vector<std::uint32_t> caller_selector;
  for (std::uint32_t s = 0; s < kSelectors; ++s) {
    for (int k = 0; k < 2; ++k) {
      callers.push_back(w.make_caller(s));
      caller_selector.push_back(s);
    }
  }
  std::vector<std::uint64_t> receivers;  // by tag index
  for (std::uint32_t t = 0; t < kTags; ++t) receivers.push_back(World::ref(w.object(t)));
  receivers.push_back(test_util::small_int(12345));

  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> wrong{0};
  std::atomic<int> reported{0};

  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads = std::max(4u, 2 * hw);
  std::vector<std::thread> senders;
  for (unsigned t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      auto me = w.engine().quiescence().join();
      std::mt19937_64 rng(t * 7919 + 1);
      const bool rotating = t % 2 == 0;
      std::uint64_t local_calls = 0;
      for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const std::size_t c = rotating ? i % callers.size() : rng() % callers.size();
        const std::size_t ti = rotating ? (i / callers.size()) % (kTags + 1) : rng() % (kTags + 1);
        const std::uint32_t tag = tags[ti];
        const std::uint32_t sel = caller_selector[c];
        const std::uint64_t a0 = i % 100000;
        const std::uint64_t a1 = t;
        const std::uint64_t c0 = completed.load(std::memory_order_acquire);
        const std::uint64_t r = callers[c].fn(receivers[ti], a0, a1);
        const std::uint64_t s1 = started.load(std::memory_order_acquire);
        me->quiescent();  // no frame in generated code here
        ++local_calls;
        bool good;
        if (!understood(tag, sel)) {
          good = r == test_util::nu_result(sel, tag, a0);
        } else {
          good = (r & ((std::uint64_t{1} << 48) - 1)) == a0 * 1000 + a1 &&
                 history[ti][sel].acceptable(r >> 48, c0, s1);
        }
        if (!good) {
          wrong.fetch_add(1);
          if (reported.fetch_add(1) < 5) {
            std::fprintf(stderr,
                         "wrong: tag %u sel %u args %llu,%llu -> id %llu payload %llu "
                         "(mutations completed %llu, started %llu)\n",
                         tag, sel, static_cast<unsigned long long>(a0), static_cast<unsigned long long>(a1),
                         static_cast<unsigned long long>(r >> 48),
                         static_cast<unsigned long long>(r & ((std::uint64_t{1} << 48) - 1)),
                         static_cast<unsigned long long>(c0), static_cast<unsigned long long>(s1));
          }
        }
      }
      calls.fetch_add(local_calls);
    });
  }

  // The mutator: not a participant (it waits for grace periods).
  std::mt19937_64 rng(42);
  std::array<std::uint64_t, 6> actions{};
  std::uint64_t failures = 0;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(jitkit::test_util::stress_seconds());
  while (std::chrono::steady_clock::now() < deadline) {
    const unsigned action = static_cast<unsigned>(rng() % 6);
    const std::uint32_t tag = tags[rng() % tags.size()];
    Status s = ok();
    switch (action) {
      case 0:
        if (understood(tag, caller_selector[0])) {
          s = w.engine().link(callers[rng() % 2].site, tag);
        }
        break;
      case 1:
        s = w.engine().invalidate_selector(static_cast<std::uint32_t>(rng() % kSelectors));
        break;
      case 2:
        s = w.engine().invalidate_tag(tag);
        break;
      case 3:
        s = w.engine().flush_all();
        break;
      default: {  // redefine (tag, sel): new method, invalidate and free the old one
        const auto sel = static_cast<std::uint32_t>(rng() % kRedefinable);
        const int old_index = w.method_index(tag, sel);
        const int fresh = w.add_method();
        const std::uint64_t v = started.load() + 1;
        if (!history[tag_index(tag)][sel].append(v, w.method(fresh).id)) break;
        started.store(v, std::memory_order_release);
        w.set(tag, sel, fresh);
        const auto old = w.method(old_index);
        s = w.engine().invalidate_method(old.entries);
        if (s) s = w.engine().retire(old.block);
        if (s) s = w.engine().reclaim();
        completed.store(v, std::memory_order_release);
        break;
      }
    }
    if (!s) {
      ++failures;
      ADD_FAILURE() << "mutator action " << action << ": " << s.error().message();
      break;
    }
    ++actions[action];
    // Some sends run between mutations, so that sites get linked again.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop.store(true);
  for (auto& t : senders) t.join();

  const EngineStats st = w.engine().stats();
  std::printf(
      "%s: %u threads, %llu sends, %llu wrong; mutator: %llu links, %llu selector / %llu "
      "class invalidations, %llu flushes, %llu redefinitions\n",
      sc.name, threads, static_cast<unsigned long long>(calls.load()),
      static_cast<unsigned long long>(wrong.load()), static_cast<unsigned long long>(actions[0]),
      static_cast<unsigned long long>(actions[1]), static_cast<unsigned long long>(actions[2]),
      static_cast<unsigned long long>(actions[3]), static_cast<unsigned long long>(actions[4] + actions[5]));
  std::printf(
      "  engine: %llu misses, %llu ->mono, %llu ->pic, %llu pic extends, %llu ->mega, "
      "%llu table fills, %llu evictions, %llu not understood, %llu uncached, %llu grace "
      "periods, %llu stubs freed, %llu methods freed\n",
      static_cast<unsigned long long>(st.misses), static_cast<unsigned long long>(st.unlinked_to_mono),
      static_cast<unsigned long long>(st.mono_to_pic), static_cast<unsigned long long>(st.pic_extend),
      static_cast<unsigned long long>(st.pic_to_mega), static_cast<unsigned long long>(st.table_fills),
      static_cast<unsigned long long>(st.table_evictions), static_cast<unsigned long long>(st.not_understood),
      static_cast<unsigned long long>(st.uncached), static_cast<unsigned long long>(st.grace_periods),
      static_cast<unsigned long long>(st.stubs_freed), static_cast<unsigned long long>(st.code_freed));
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(failures, 0u);
  EXPECT_GT(calls.load(), 0u);
  EXPECT_GT(st.mono_to_pic + st.pic_to_mega, 0u) << "the sends must drive sites through states";
  EXPECT_GT(st.code_freed, 0u) << "old methods must have been freed while sends ran";
}

TEST(IcStressTest, SendsStayCorrectWhileSitesTransitionAndInvalidate) { run({"pic6", kDefaultPicCases, 11}); }

TEST(IcStressTest, SmallPicsAndATinyTableStressOpenPicsAndEvictions) { run({"pic2-table16", 2, 4}); }

}  // namespace
}  // namespace jitkit::ic
