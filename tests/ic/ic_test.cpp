// ic: every transition and fall-through of a send site, the PIC filled to exactly N and N+1
// going megamorphic, not-understood sends, invalidation in each form (with the stale code freed
// and int3-filled, so reaching it would trap), stub names and listings, and the errors of bad
// configurations. Each send's result says which method ran and with which arguments.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "ic/engine_p.h"
#include "ic/ic_world_p.h"
#include "jitkit/code/x86_64/trap_fill.h"
#include "jitkit/debug/code_registry.h"

namespace jitkit::ic {
namespace {

using test_util::kSmallIntTag;
using test_util::method_result;
using test_util::nu_result;
using test_util::small_int;
using test_util::World;
using namespace jitkit::x64;

constexpr std::uint32_t kArea = 0;
constexpr std::uint32_t kPerimeter = 1;
constexpr std::uint32_t kScale = 2;

EngineOptions with_cases(std::size_t n) {
  EngineOptions o;
  o.max_pic_cases = n;
  return o;
}

TEST(IcSendTest, UnlinkedSiteLinksMonomorphicOnFirstSendAndHitsAfterwards) {
  World w;
  ASSERT_TRUE(w.ok());
  const int circle = w.define(0, kArea);
  auto caller = w.make_caller(kArea);
  auto info = w.engine().site(caller.site);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->kind, SiteKind::kUnlinked);
  EXPECT_EQ(info->call_target, w.engine().miss_stub());

  auto* c = w.object(0);
  EXPECT_EQ(caller.fn(World::ref(c), 7, 9), method_result(w.method(circle).id, 7, 9));
  info = w.engine().site(caller.site);
  EXPECT_EQ(info->kind, SiteKind::kMonomorphic);
  ASSERT_EQ(info->cases.size(), 1u);
  EXPECT_EQ(info->cases[0].tag, 0u);
  EXPECT_EQ(info->call_target, w.method(circle).entries.checked_entry);
  EXPECT_EQ(w.engine().stats().unlinked_to_mono, 1u);

  const auto misses = w.engine().stats().misses;
  for (std::uint64_t i = 0; i < 100; ++i) {
    ASSERT_EQ(caller.fn(World::ref(c), i, i + 1), method_result(w.method(circle).id, i, i + 1));
  }
  EXPECT_EQ(w.engine().stats().misses, misses) << "monomorphic hits must not miss";
}

TEST(IcSendTest, CheckedEntryMismatchGoesPolymorphicAndBothClassesHit) {
  World w;
  ASSERT_TRUE(w.ok());
  const int circle = w.define(0, kArea);
  const int square = w.define(1, kArea);
  auto caller = w.make_caller(kArea);
  auto* c = w.object(0);
  auto* s = w.object(1);
  EXPECT_EQ(caller.fn(World::ref(c), 1, 2), method_result(w.method(circle).id, 1, 2));
  // The checked entry of circle's method sees a square: miss, then a PIC of two cases.
  EXPECT_EQ(caller.fn(World::ref(s), 3, 4), method_result(w.method(square).id, 3, 4));
  auto info = w.engine().site(caller.site);
  EXPECT_EQ(info->kind, SiteKind::kPolymorphic);
  ASSERT_EQ(info->cases.size(), 2u);
  EXPECT_EQ(info->cases[0].tag, 0u);
  EXPECT_EQ(info->cases[1].tag, 1u);
  EXPECT_EQ(w.engine().stats().mono_to_pic, 1u);
  EXPECT_EQ(w.engine().stats().live_pics, 1u);

  const auto misses = w.engine().stats().misses;
  for (std::uint64_t i = 0; i < 50; ++i) {
    ASSERT_EQ(caller.fn(World::ref(c), i, 5), method_result(w.method(circle).id, i, 5));
    ASSERT_EQ(caller.fn(World::ref(s), 5, i), method_result(w.method(square).id, 5, i));
  }
  EXPECT_EQ(w.engine().stats().misses, misses);
}

TEST(IcSendTest, PicFillsToExactlyNThenTheNextClassGoesMegamorphic) {
  constexpr std::size_t kN = 4;
  World w(with_cases(kN));
  ASSERT_TRUE(w.ok());
  std::vector<int> methods;
  std::vector<test_util::Object*> objs;
  for (std::uint32_t t = 0; t < kN + 3; ++t) {
    methods.push_back(w.define(t, kArea));
    objs.push_back(w.object(t));
  }
  auto caller = w.make_caller(kArea);
  for (std::uint32_t t = 0; t < kN; ++t) {
    ASSERT_EQ(caller.fn(World::ref(objs[t]), t, 11), method_result(w.method(methods[t]).id, t, 11));
    auto info = w.engine().site(caller.site);
    if (t == 0) {
      EXPECT_EQ(info->kind, SiteKind::kMonomorphic);
    } else {
      EXPECT_EQ(info->kind, SiteKind::kPolymorphic);
      EXPECT_EQ(info->cases.size(), t + 1);
    }
  }
  EXPECT_EQ(w.engine().stats().pic_extend, kN - 2);
  // Class N+1: the PIC is full, the site goes megamorphic.
  ASSERT_EQ(caller.fn(World::ref(objs[kN]), 1, 1), method_result(w.method(methods[kN]).id, 1, 1));
  auto info = w.engine().site(caller.site);
  EXPECT_EQ(info->kind, SiteKind::kMegamorphic);
  EXPECT_TRUE(info->cases.empty());
  EXPECT_EQ(w.engine().stats().pic_to_mega, 1u);
  EXPECT_EQ(w.engine().stats().live_open_pics, 1u);
  EXPECT_EQ(w.engine().stats().live_pics, 0u);
  // The PIC's cases were moved into the table: the old classes hit without a miss; a new class
  // misses once (table fill) and hits after.
  auto misses = w.engine().stats().misses;
  for (std::uint32_t t = 0; t <= kN; ++t) {
    ASSERT_EQ(caller.fn(World::ref(objs[t]), 2, t), method_result(w.method(methods[t]).id, 2, t));
  }
  EXPECT_EQ(w.engine().stats().misses, misses);
  ASSERT_EQ(caller.fn(World::ref(objs[kN + 1]), 3, 3), method_result(w.method(methods[kN + 1]).id, 3, 3));
  EXPECT_EQ(w.engine().stats().misses, misses + 1);
  ASSERT_EQ(caller.fn(World::ref(objs[kN + 1]), 4, 4), method_result(w.method(methods[kN + 1]).id, 4, 4));
  EXPECT_EQ(w.engine().stats().misses, misses + 1);
  // The replaced PIC is freed after a grace period.
  ASSERT_TRUE(w.engine().reclaim());
  EXPECT_EQ(w.engine().stats().stubs_freed, 1u);
  for (std::uint32_t t = 0; t < kN + 2; ++t) {
    ASSERT_EQ(caller.fn(World::ref(objs[t]), 9, 9), method_result(w.method(methods[t]).id, 9, 9));
  }
}

TEST(IcSendTest, DefaultPicHoldsSixCasesAsInCog) {
  World w;
  ASSERT_TRUE(w.ok());
  auto caller = w.make_caller(kArea);
  for (std::uint32_t t = 0; t < 7; ++t) {
    const int m = w.define(t, kArea);
    ASSERT_EQ(caller.fn(World::ref(w.object(t)), t, 0), method_result(w.method(m).id, t, 0));
    EXPECT_EQ(w.engine().site(caller.site)->kind,
              t == 0 ? SiteKind::kMonomorphic : (t < 6 ? SiteKind::kPolymorphic : SiteKind::kMegamorphic));
  }
}

TEST(IcSendTest, SmallIntegersAndHeapObjectsAreDistinctClasses) {
  World w;
  ASSERT_TRUE(w.ok());
  const int obj_area = w.define(2, kArea);
  const int int_area = w.define(kSmallIntTag, kArea);
  auto caller = w.make_caller(kArea);
  EXPECT_EQ(caller.fn(small_int(21), 1, 2), method_result(w.method(int_area).id, 1, 2));
  EXPECT_EQ(caller.fn(World::ref(w.object(2)), 3, 4), method_result(w.method(obj_area).id, 3, 4));
  EXPECT_EQ(caller.fn(small_int(-5), 5, 6), method_result(w.method(int_area).id, 5, 6));
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kPolymorphic);
}

TEST(IcSendTest, NotUnderstoodCallsTheVmHandlerWithReceiverSelectorAndArguments) {
  World w;
  ASSERT_TRUE(w.ok());
  const int circle = w.define(0, kArea);
  auto caller = w.make_caller(kPerimeter);  // nobody understands perimeter
  auto* c = w.object(0);
  EXPECT_EQ(caller.fn(World::ref(c), 42, 17), nu_result(kPerimeter, 0, 42));
  EXPECT_EQ(w.not_understood_calls(), 1u);
  EXPECT_EQ(w.last_nu_receiver(), World::ref(c));
  EXPECT_EQ(w.last_nu_arg1(), 17u);
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kUnlinked);
  EXPECT_EQ(w.engine().stats().not_understood, 1u);
  // At a linked site too: a class that does not understand falls through to the handler.
  auto area = w.make_caller(kArea);
  EXPECT_EQ(area.fn(World::ref(c), 1, 1), method_result(w.method(circle).id, 1, 1));
  EXPECT_EQ(area.fn(small_int(3), 8, 1), nu_result(kArea, kSmallIntTag, 8));
  EXPECT_EQ(area.fn(World::ref(c), 2, 2), method_result(w.method(circle).id, 2, 2));
  EXPECT_EQ(w.engine().site(area.site)->kind, SiteKind::kMonomorphic);
}

TEST(IcSendTest, SiteEmittedButNeverAttachedStillCompletesItsSends) {
  World w;
  ASSERT_TRUE(w.ok());
  const int circle = w.define(0, kArea);
  Assembler a;
  a.push(rbp);
  a.mov(rbp, rsp);
  ASSERT_TRUE(w.engine().emit_send(a, kArea));
  a.pop(rbp);
  a.ret();
  auto code = install::install(a, w.zone(), {.name = "unattached"});
  ASSERT_TRUE(code);
  auto fn = code->entry<test_util::CallerFn>();
  EXPECT_EQ(fn(World::ref(w.object(0)), 4, 5), method_result(w.method(circle).id, 4, 5));
  EXPECT_EQ(w.engine().stats().uncached, 1u);
}

TEST(IcSendTest, ForcedLinkDoesWhatAMissWould) {
  World w(with_cases(2));
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 4; ++t) w.define(t, kArea);
  auto caller = w.make_caller(kArea);
  ASSERT_TRUE(w.engine().link(caller.site, 0));
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kMonomorphic);
  ASSERT_TRUE(w.engine().link(caller.site, 1));
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kPolymorphic);
  ASSERT_TRUE(w.engine().link(caller.site, 2));
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kMegamorphic);
  auto bad = w.engine().link(caller.site, 9);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("does not understand area"), std::string::npos)
      << bad.error().message();
  for (std::uint32_t t = 0; t < 4; ++t) {
    EXPECT_EQ(caller.fn(World::ref(w.object(t)), t, 1),
              method_result(w.method(w.method_index(t, kArea)).id, t, 1));
  }
}

TEST(IcSendTest, ManySitesOfOneSelectorShareOneOpenPic) {
  World w(with_cases(1));
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 3; ++t) w.define(t, kScale);
  auto a = w.make_caller(kScale);
  auto b = w.make_caller(kScale);
  for (std::uint32_t t = 0; t < 3; ++t) {
    ASSERT_EQ(a.fn(World::ref(w.object(t)), 1, t), w.expected(t, kScale, 1, t));
    ASSERT_EQ(b.fn(World::ref(w.object(t)), 2, t), w.expected(t, kScale, 2, t));
  }
  EXPECT_EQ(w.engine().site(a.site)->kind, SiteKind::kMegamorphic);
  EXPECT_EQ(w.engine().site(a.site)->call_target, w.engine().site(b.site)->call_target);
  EXPECT_EQ(w.engine().stats().live_open_pics, 1u);
}

TEST(IcSendTest, ThreadsMissingTogetherAtOneSiteAllGetTheirMethodAndOneConsistentPic) {
  World w;
  ASSERT_TRUE(w.ok());
  constexpr std::uint32_t kClasses = 6;  // exactly the default PIC size
  std::vector<test_util::Object*> objs;
  for (std::uint32_t t = 0; t < kClasses; ++t) {
    w.define(t, kArea);
    objs.push_back(w.object(t));
  }
  auto caller = w.make_caller(kArea);
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> wrong{0};
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < 2 * kClasses; ++t) {
    threads.emplace_back([&, t] {
      const std::uint32_t tag = t % kClasses;
      ready.fetch_add(1);
      while (ready.load() < static_cast<int>(2 * kClasses)) {
      }
      for (std::uint64_t i = 0; i < 2000; ++i) {
        if (caller.fn(World::ref(objs[tag]), i, t) != w.expected(tag, kArea, i, t)) wrong++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0u);
  auto info = w.engine().site(caller.site);
  ASSERT_EQ(info->kind, SiteKind::kPolymorphic);
  std::set<std::uint32_t> tags;
  for (const auto& c : info->cases) {
    tags.insert(c.tag);
    EXPECT_EQ(c.unchecked_entry, w.method(w.method_index(c.tag, kArea)).entries.unchecked_entry);
  }
  EXPECT_EQ(tags.size(), kClasses) << "each class cached once";
  EXPECT_EQ(w.engine().stats().unlinked_to_mono, 1u);
  EXPECT_EQ(w.engine().stats().mono_to_pic, 1u);
  EXPECT_EQ(w.engine().stats().pic_extend, kClasses - 2);
}

// --- Invalidation ------------------------------------------------------------------------------

TEST(IcInvalidateTest, ByMethodUnlinksEverySiteAndSlotLeadingToIt) {
  World w(with_cases(2));
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 4; ++t) w.define(t, kArea);
  auto mono = w.make_caller(kArea);
  auto pic = w.make_caller(kArea);
  auto mega = w.make_caller(kArea);
  auto send_all = [&](test_util::CallerFn fn, std::vector<std::uint32_t> tags, std::uint64_t a0) {
    for (auto t : tags) ASSERT_EQ(fn(World::ref(w.object(t)), a0, t), w.expected(t, kArea, a0, t));
  };
  send_all(mono.fn, {0}, 1);
  send_all(pic.fn, {1, 0}, 1);
  send_all(mega.fn, {2, 3, 0}, 1);
  ASSERT_EQ(w.engine().site(mono.site)->kind, SiteKind::kMonomorphic);
  ASSERT_EQ(w.engine().site(pic.site)->kind, SiteKind::kPolymorphic);
  ASSERT_EQ(w.engine().site(mega.site)->kind, SiteKind::kMegamorphic);

  const int old_index = w.method_index(0, kArea);
  const auto old = w.method(old_index);
  const int fresh = w.define(0, kArea);                    // the VM changes its method first...
  ASSERT_TRUE(w.engine().invalidate_method(old.entries));  // ...then invalidates
  ASSERT_TRUE(w.engine().retire(old.block));
  ASSERT_TRUE(w.engine().reclaim());
  EXPECT_EQ(w.engine().stats().code_freed, 1u);
  EXPECT_EQ(*old.block.exec, code::x86_64::kInt3) << "the old method is freed and trap-filled";

  EXPECT_EQ(w.engine().site(mono.site)->kind, SiteKind::kUnlinked);
  EXPECT_EQ(w.engine().site(pic.site)->kind, SiteKind::kUnlinked);
  EXPECT_EQ(w.engine().site(mega.site)->kind, SiteKind::kMegamorphic);  // its slot was cleared
  EXPECT_GE(w.engine().stats().table_slots_cleared, 1u);
  // Every path now reaches the new method (reaching the old one would trap).
  for (int round = 0; round < 2; ++round) {
    send_all(mono.fn, {0}, 2);
    send_all(pic.fn, {1, 0}, 2);
    send_all(mega.fn, {2, 3, 0}, 2);
  }
  EXPECT_EQ(mono.fn(World::ref(w.object(0)), 5, 5), method_result(w.method(fresh).id, 5, 5));
  EXPECT_EQ(w.engine().site(mono.site)->kind, SiteKind::kMonomorphic) << "relinked after cooling";
  EXPECT_EQ(w.engine().site(mono.site)->cases[0].checked_entry, w.method(fresh).entries.checked_entry);
}

TEST(IcInvalidateTest, BySelectorUnlinksOnlyThatSelectorsSitesAndSlots) {
  World w(with_cases(1));
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 3; ++t) {
    w.define(t, kArea);
    w.define(t, kScale);
  }
  auto area = w.make_caller(kArea);
  auto scale = w.make_caller(kScale);
  auto scale_mega = w.make_caller(kScale);
  ASSERT_EQ(area.fn(World::ref(w.object(0)), 1, 1), w.expected(0, kArea, 1, 1));
  ASSERT_EQ(scale.fn(World::ref(w.object(1)), 1, 1), w.expected(1, kScale, 1, 1));
  for (std::uint32_t t = 0; t < 3; ++t) {
    ASSERT_EQ(scale_mega.fn(World::ref(w.object(t)), 1, t), w.expected(t, kScale, 1, t));
  }
  const auto cleared = w.engine().stats().table_slots_cleared;
  // Redefine scale for class 1.
  const auto old = w.method(w.method_index(1, kScale));
  w.define(1, kScale);
  ASSERT_TRUE(w.engine().invalidate_selector(kScale));
  ASSERT_TRUE(w.engine().retire(old.block));
  ASSERT_TRUE(w.engine().reclaim());
  EXPECT_EQ(w.engine().site(area.site)->kind, SiteKind::kMonomorphic);
  EXPECT_EQ(w.engine().site(scale.site)->kind, SiteKind::kUnlinked);
  EXPECT_EQ(w.engine().stats().table_slots_cleared, cleared + 3);
  for (std::uint32_t t = 0; t < 3; ++t) {
    ASSERT_EQ(scale_mega.fn(World::ref(w.object(t)), 2, t), w.expected(t, kScale, 2, t));
    ASSERT_EQ(scale.fn(World::ref(w.object(t)), 2, t), w.expected(t, kScale, 2, t));
  }
  ASSERT_EQ(area.fn(World::ref(w.object(0)), 3, 3), w.expected(0, kArea, 3, 3));
}

TEST(IcInvalidateTest, ByClassTagUnlinksSitesCachingThatClass) {
  World w(with_cases(3));
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 5; ++t) w.define(t, kArea);
  auto with_1 = w.make_caller(kArea);
  auto without_1 = w.make_caller(kArea);
  auto mega = w.make_caller(kArea);
  for (std::uint32_t t : {0u, 1u})
    ASSERT_EQ(with_1.fn(World::ref(w.object(t)), 1, t), w.expected(t, kArea, 1, t));
  for (std::uint32_t t : {0u, 2u})
    ASSERT_EQ(without_1.fn(World::ref(w.object(t)), 1, t), w.expected(t, kArea, 1, t));
  for (std::uint32_t t = 0; t < 5; ++t)
    ASSERT_EQ(mega.fn(World::ref(w.object(t)), 1, t), w.expected(t, kArea, 1, t));
  ASSERT_EQ(w.engine().site(mega.site)->kind, SiteKind::kMegamorphic);

  // Class 1 changes its superclass: its area now comes from class 3.
  w.set(1, kArea, w.method_index(3, kArea));
  ASSERT_TRUE(w.engine().invalidate_tag(1));
  EXPECT_EQ(w.engine().site(with_1.site)->kind, SiteKind::kUnlinked);
  EXPECT_EQ(w.engine().site(without_1.site)->kind, SiteKind::kPolymorphic);
  for (int round = 0; round < 2; ++round) {
    for (std::uint32_t t = 0; t < 5; ++t) {
      ASSERT_EQ(with_1.fn(World::ref(w.object(t)), 2, t), w.expected(t, kArea, 2, t));
      ASSERT_EQ(mega.fn(World::ref(w.object(t)), 2, t), w.expected(t, kArea, 2, t));
    }
  }
  EXPECT_EQ(mega.fn(World::ref(w.object(1)), 0, 0),
            method_result(w.method(w.method_index(3, kArea)).id, 0, 0));
}

TEST(IcInvalidateTest, FlushAllUnlinksEverythingAndFreesEveryPic) {
  World w(with_cases(2));
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 3; ++t) w.define(t, kArea);
  std::vector<World::Caller> callers;
  for (int i = 0; i < 4; ++i) callers.push_back(w.make_caller(kArea));
  for (std::size_t i = 0; i < callers.size(); ++i) {
    for (std::uint32_t t = 0; t <= i && t < 3; ++t) {
      ASSERT_EQ(callers[i].fn(World::ref(w.object(t)), i, t), w.expected(t, kArea, i, t));
    }
  }
  EXPECT_EQ(w.engine().stats().live_pics, 1u);
  ASSERT_TRUE(w.engine().flush_all());
  EXPECT_EQ(w.engine().stats().live_pics, 0u);
  EXPECT_GE(w.engine().stats().stubs_freed, 2u);  // the PIC and the PIC replaced by the open PIC
  for (auto& c : callers) {
    auto info = w.engine().site(c.site);
    EXPECT_EQ(info->kind, SiteKind::kUnlinked);
    EXPECT_FALSE(info->cooling) << "the flush waited for its grace period";
    for (std::uint32_t t = 0; t < 3; ++t) {
      ASSERT_EQ(c.fn(World::ref(w.object(t)), 7, t), w.expected(t, kArea, 7, t));
    }
  }
}

TEST(IcInvalidateTest, CoolingSiteCompletesSendsUncachedUntilTheGracePeriod) {
  EngineOptions o;
  o.grace_timeout = std::chrono::milliseconds(50);
  World w(o);
  ASSERT_TRUE(w.ok());
  w.define(0, kArea);
  auto caller = w.make_caller(kArea);
  ASSERT_EQ(caller.fn(World::ref(w.object(0)), 1, 1), w.expected(0, kArea, 1, 1));
  // A participant that does not pass a quiescent state holds the grace period up.
  auto lagging = w.engine().quiescence().join();
  auto status = w.engine().invalidate_selector(kArea);
  ASSERT_FALSE(status) << "the grace period cannot end while a participant lags";
  EXPECT_NE(status.error().message().find("ic: grace period"), std::string::npos) << status.error().message();
  auto info = w.engine().site(caller.site);
  EXPECT_EQ(info->kind, SiteKind::kUnlinked);
  EXPECT_TRUE(info->cooling);
  const auto uncached = w.engine().stats().uncached;
  ASSERT_EQ(caller.fn(World::ref(w.object(0)), 2, 2), w.expected(0, kArea, 2, 2));
  EXPECT_EQ(w.engine().stats().uncached, uncached + 1);
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kUnlinked) << "not linked while cooling";
  lagging->offline();
  ASSERT_TRUE(w.engine().reclaim());
  EXPECT_FALSE(w.engine().site(caller.site)->cooling);
  ASSERT_EQ(caller.fn(World::ref(w.object(0)), 3, 3), w.expected(0, kArea, 3, 3));
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kMonomorphic);
}

// --- Names, listings -----------------------------------------------------------------------

TEST(IcDetachTest, ReturnAddressIndexAgreesWithAMapThroughInsertsAndDeletesInsideClusters) {
  detail::ReturnAddressIndex index;
  std::unordered_map<std::uintptr_t, std::uint32_t> reference;
  std::mt19937_64 rng(42);
  // Few distinct keys at a high load: long clusters, and deletions inside them.
  std::vector<std::uintptr_t> keys;
  for (int i = 0; i < 700; ++i)
    keys.push_back(0x7f0000001000u + 5u * static_cast<std::uintptr_t>(rng() % 100000));
  for (std::uint32_t step = 0; step < 200000; ++step) {
    const std::uintptr_t key = keys[rng() % keys.size()];
    if (rng() % 2 == 0) {
      const bool added = reference.emplace(key, step).second;
      ASSERT_EQ(index.insert(key, step), added) << "step " << step;
    } else {
      reference.erase(key);
      index.erase(key);
    }
    if (step % 997 == 0) {
      ASSERT_EQ(index.size(), reference.size());
      for (std::uintptr_t k : keys) {
        auto it = reference.find(k);
        ASSERT_EQ(index.find(k), it == reference.end() ? detail::ReturnAddressIndex::kNone : it->second)
            << "step " << step;
      }
    }
  }
}

TEST(IcDetachTest, DetachForgetsOnlyTheRangesSitesRetiresTheirPicsAndTheirIdsAreReused) {
  World w;
  ASSERT_TRUE(w.ok());
  const int circle = w.define(0, kArea);
  const int square = w.define(1, kArea);
  auto* c = w.object(0);
  auto* s = w.object(1);
  auto kept = w.make_caller(kArea);
  auto gone = w.make_caller(kArea);
  // `gone` goes polymorphic: detaching it must retire its PIC.
  ASSERT_EQ(gone.fn(World::ref(c), 1, 2), method_result(w.method(circle).id, 1, 2));
  ASSERT_EQ(gone.fn(World::ref(s), 1, 2), method_result(w.method(square).id, 1, 2));
  ASSERT_EQ(w.engine().site(gone.site)->kind, SiteKind::kPolymorphic);
  ASSERT_EQ(w.engine().stats().live_pics, 1u);
  ASSERT_EQ(w.engine().stats().sites, 2u);

  const auto begin = reinterpret_cast<std::uintptr_t>(gone.block.exec);
  ASSERT_TRUE(w.engine().detach_range(begin, begin + gone.block.size));
  EXPECT_EQ(w.engine().stats().sites, 1u);
  EXPECT_EQ(w.engine().stats().live_pics, 0u);
  EXPECT_FALSE(w.engine().site(gone.site)) << "a detached site's id answers nothing";
  EXPECT_FALSE(w.engine().link(gone.site, 0));
  ASSERT_TRUE(w.engine().site(kept.site));
  EXPECT_EQ(kept.fn(World::ref(c), 3, 4), method_result(w.method(circle).id, 3, 4));
  EXPECT_EQ(w.engine().site(kept.site)->kind, SiteKind::kMonomorphic);
  ASSERT_TRUE(w.engine().retire(gone.block));
  ASSERT_TRUE(w.engine().reclaim());
  EXPECT_EQ(w.engine().stats().stubs_freed, 1u) << "the detached site's PIC is freed after a grace period";

  // Code attached afterwards takes the freed id, starts unlinked and links as usual.
  auto next = w.make_caller(kArea);
  EXPECT_EQ(next.site, gone.site);
  EXPECT_EQ(w.engine().site(next.site)->kind, SiteKind::kUnlinked);
  EXPECT_EQ(next.fn(World::ref(s), 5, 6), method_result(w.method(square).id, 5, 6));
  EXPECT_EQ(w.engine().site(next.site)->kind, SiteKind::kMonomorphic);
  EXPECT_EQ(w.engine().stats().sites, 2u);

  // A range that ends before a block's sites, or starts after them, detaches nothing.
  const auto next_begin = reinterpret_cast<std::uintptr_t>(next.block.exec);
  ASSERT_TRUE(w.engine().detach_range(next_begin - 1, next_begin));
  ASSERT_TRUE(w.engine().detach_range(next_begin + next.block.size, next_begin + next.block.size + 64));
  EXPECT_EQ(w.engine().stats().sites, 2u);
  EXPECT_TRUE(w.engine().site(next.site));
}

TEST(IcDetachTest, AttachingAndDetachingManyTimesKeepsOnlyLiveSitesAndMissesStillFindTheirSite) {
  World w;
  ASSERT_TRUE(w.ok());
  const int circle = w.define(0, kArea);
  auto* c = w.object(0);
  std::vector<World::Caller> live;
  std::uint32_t max_index = 0;
  for (int round = 0; round < 200; ++round) {
    live.push_back(w.make_caller(kArea));
    max_index = std::max(max_index, live.back().site.index);
    if (live.size() > 8) {
      // Detach from the middle, so that the return-address index deletes inside its clusters.
      World::Caller victim = live[live.size() / 2];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(live.size() / 2));
      const auto begin = reinterpret_cast<std::uintptr_t>(victim.block.exec);
      ASSERT_TRUE(w.engine().detach_range(begin, begin + victim.block.size));
      ASSERT_TRUE(w.engine().retire(victim.block));
      ASSERT_TRUE(w.engine().reclaim());
    }
    for (const World::Caller& k : live) {
      ASSERT_EQ(k.fn(World::ref(c), round, 1), method_result(w.method(circle).id, round, 1));
    }
  }
  EXPECT_EQ(w.engine().stats().sites, live.size());
  EXPECT_LE(max_index, 9u) << "detached ids are reused instead of growing the site table";
}

TEST(IcDebugTest, StubsAreNamedForDebuggersAndTheSiteListingShowsItsPic) {
  World w(with_cases(3));
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 4; ++t) w.define(t, 4);  // draw:
  auto caller = w.make_caller(4);
  for (std::uint32_t t = 0; t < 2; ++t)
    ASSERT_EQ(caller.fn(World::ref(w.object(t)), 1, t), w.expected(t, 4, 1, t));
  auto info = w.engine().site(caller.site);
  ASSERT_EQ(info->kind, SiteKind::kPolymorphic);
  auto& registry = debug::CodeRegistry::global();
  EXPECT_EQ(registry.symbolize(info->call_target).value_or(""), "pic:draw:");
  EXPECT_EQ(registry.symbolize(w.engine().miss_stub()).value_or(""), "ic_miss:ic");
  EXPECT_EQ(registry.symbolize(w.engine().not_understood_stub()).value_or(""), "ic_not_understood:ic");
  auto listing = w.engine().listing(caller.site);
  ASSERT_TRUE(listing) << listing.error().message();
  EXPECT_NE(listing->find("polymorphic"), std::string::npos) << *listing;
  EXPECT_NE(listing->find("<pic:draw:>"), std::string::npos) << *listing;
  EXPECT_NE(listing->find("pic:draw:"), std::string::npos) << *listing;
  EXPECT_NE(listing->find("<ic_miss:ic>"), std::string::npos) << "unused cases jump to the miss stub\n"
                                                              << *listing;

  for (std::uint32_t t = 2; t < 4; ++t)
    ASSERT_EQ(caller.fn(World::ref(w.object(t)), 1, t), w.expected(t, 4, 1, t));
  info = w.engine().site(caller.site);
  ASSERT_EQ(info->kind, SiteKind::kMegamorphic);
  EXPECT_EQ(registry.symbolize(info->call_target).value_or(""), "megamorphic:draw:");
  listing = w.engine().listing(caller.site);
  ASSERT_TRUE(listing);
  EXPECT_NE(listing->find("megamorphic:draw:"), std::string::npos) << *listing;
}

// --- Errors ---------------------------------------------------------------------------------

Status create_with(VmInterface vm, EngineOptions o) {
  auto zone = code::CodeZone::create(World::default_zone());
  if (!zone) return std::move(zone).error();
  auto e = Engine::create(**zone, std::move(vm), std::move(o));
  if (!e) return std::move(e).error();
  return ok();
}

VmInterface plain_vm() {
  VmInterface vm;
  vm.load_tag = [](Assembler& a, Gp64 r, Gp32 t) { a.mov(t, dword_ptr(r, 0)); };
  vm.lookup = [](std::uint32_t, std::uint32_t) -> std::optional<Method> { return std::nullopt; };
  vm.not_understood = [](const NotUnderstood&) -> std::uint64_t { return 0; };
  return vm;
}

void expect_invalid(const Status& s, std::string_view words) {
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message().find(words), std::string::npos) << s.error().message();
}

TEST(IcErrorTest, TooManyPicCasesIsRefused) {
  expect_invalid(create_with(plain_vm(), with_cases(kMaxPicCases + 1)), "max_pic_cases is 17");
  expect_invalid(create_with(plain_vm(), with_cases(0)), "max_pic_cases is 0");
  EXPECT_TRUE(create_with(plain_vm(), with_cases(kMaxPicCases)));
}

TEST(IcErrorTest, CollidingRegistersAreRefused) {
  EngineOptions o;
  o.convention.tag = eax;
  o.convention.selector = eax;
  expect_invalid(create_with(plain_vm(), o), "registers collide: tag eax and selector eax");
  EngineOptions p;
  p.convention.scratch = rsi;  // argument 0
  expect_invalid(create_with(plain_vm(), p), "registers collide");
  EngineOptions q;
  q.convention.receiver = rsp;
  expect_invalid(create_with(plain_vm(), q), "reserved for the stack");
}

TEST(IcErrorTest, TagLoaderThatEmitsNothingIsRefused) {
  VmInterface vm = plain_vm();
  vm.load_tag = [](Assembler&, Gp64, Gp32) {};
  expect_invalid(create_with(vm, {}), "the tag loader emits nothing");
  VmInterface none = plain_vm();
  none.load_tag = nullptr;
  expect_invalid(create_with(none, {}), "no tag loader");
  VmInterface no_lookup = plain_vm();
  no_lookup.lookup = nullptr;
  expect_invalid(create_with(no_lookup, {}), "no lookup");
}

TEST(IcErrorTest, SelectorAboveTheLimitIsRefusedAtEmission) {
  World w;
  ASSERT_TRUE(w.ok());
  Assembler a;
  auto s = w.engine().emit_send(a, kMaxSelector + 1);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("above kMaxSelector"), std::string::npos);
  EXPECT_EQ(a.buffer_size(), 0u) << "nothing emitted";
}

TEST(IcErrorTest, TableSizeOutOfRangeIsRefused) {
  EngineOptions o;
  o.table_buckets_log2 = 30;
  expect_invalid(create_with(plain_vm(), o), "table_buckets_log2 is 30");
}

TEST(IcErrorTest, FullZoneFailsTheTransitionButTheSendStillCompletes) {
  code::ZoneOptions zo = World::default_zone();
  zo.reserve_bytes = 64u << 10;  // 16 pages
  World w({}, zo);
  ASSERT_TRUE(w.ok());
  for (std::uint32_t t = 0; t < 3; ++t) w.define(t, kArea);
  auto caller = w.make_caller(kArea);
  // Fill the zone.
  std::vector<code::CodeBlock> fill;
  while (true) {
    auto b = w.zone().allocate(64);
    if (!b) break;
    fill.push_back(*b);
  }
  ASSERT_EQ(caller.fn(World::ref(w.object(0)), 1, 1), w.expected(0, kArea, 1, 1));
  ASSERT_EQ(caller.fn(World::ref(w.object(1)), 2, 2), w.expected(1, kArea, 2, 2));
  EXPECT_EQ(w.engine().stats().link_failures, 1u) << "no room for the PIC";
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kMonomorphic);
  auto forced = w.engine().link(caller.site, 2);
  ASSERT_FALSE(forced);
  EXPECT_EQ(forced.error().code(), ErrorCode::kOutOfMemory) << forced.error().message();
  for (auto& b : fill) ASSERT_TRUE(w.zone().free(b));
  ASSERT_TRUE(w.zone().flush_freed());
  ASSERT_EQ(caller.fn(World::ref(w.object(1)), 3, 3), w.expected(1, kArea, 3, 3));
  EXPECT_EQ(w.engine().site(caller.site)->kind, SiteKind::kPolymorphic);
}

TEST(IcErrorTest, EngineInAZoneWithoutRoomFailsClearly) {
  code::ZoneOptions zo = World::default_zone();
  zo.reserve_bytes = 4096;
  zo.rw_data_bytes = 4096;  // the table (64 KiB) does not fit
  auto zone = code::CodeZone::create(zo);
  ASSERT_TRUE(zone);
  auto e = Engine::create(**zone, plain_vm(), {});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("ic: engine"), std::string::npos) << e.error().message();
}

TEST(IcErrorTest, AttachRefusesForeignAndDuplicateSites) {
  World w;
  ASSERT_TRUE(w.ok());
  Assembler a;
  auto send = w.engine().emit_send(a, kArea);
  ASSERT_TRUE(send);
  a.ret();
  auto code = install::install(a, w.zone(), {.name = "c"});
  ASSERT_TRUE(code);
  ASSERT_TRUE(w.engine().attach(*code, *send));
  auto again = w.engine().attach(*code, *send);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kInvalidState);
  SendSite bogus{{7}, {9}, kArea};
  auto foreign = w.engine().attach(*code, bogus);
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace jitkit::ic
