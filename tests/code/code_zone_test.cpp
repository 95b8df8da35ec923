// CodeZone behaviour: modes (each one forced), writing through the two views, W^X checked in
// /proc/self/maps after every kind of operation, data beside code, placement near an address,
// allocator statistics and misuse, and the cross-core serialization report. Fallbacks under
// refused backings, executable memory or membarrier are in refusal_test.cpp, under real
// refusals.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include "code_functions_p.h"
#include "jitkit/base/platform.h"
#include "jitkit/code/code_writer.h"
#include "jitkit/code/code_zone.h"
#include "jitkit/code/sync.h"
#include "maps_util_p.h"

namespace jitkit::code {
namespace {

using test_util::IntFn;
using test_util::load_rip_relative;
using test_util::protection_at;
using test_util::return_constant;
using test_util::writable_and_executable_mappings;

std::unique_ptr<CodeZone> make_zone(const ZoneOptions& options) {
  auto zone = CodeZone::create(options);
  EXPECT_TRUE(zone) << zone.error().message();
  return zone ? std::move(zone).value() : nullptr;
}

ZoneOptions forced(ZoneMode mode) {
  ZoneOptions o;
  o.force_mode = mode;
  o.allow_rwx = mode == ZoneMode::kRwx;
  o.reserve_bytes = 4 << 20;
  return o;
}

// Installs `code` in a fresh block and returns it (executable for this thread).
CodeBlock install(CodeZone& zone, const std::vector<std::uint8_t>& code) {
  auto block = zone.allocate(code.size());
  EXPECT_TRUE(block) << block.error().message();
  if (!block) return {};
  EXPECT_TRUE(zone.write(block->exec, code.data(), code.size()));
  EXPECT_TRUE(zone.make_executable(*block, Visibility::kThisThread));
  return *block;
}

TEST(CodeZone, DefaultZonePrefersDualMappingOnMemfd) {
  const MemfdSupport& memfd = platform_facts().memfd;
  if (!memfd.available) {
    GTEST_SKIP() << "memfd unusable for code on this machine (available=" << memfd.available
                 << ", vm.memfd_noexec=" << memfd.noexec_sysctl << ")";
  }
  auto zone = make_zone({});
  ASSERT_TRUE(zone);
  EXPECT_EQ(zone->mode(), ZoneMode::kDualMapped);
  EXPECT_EQ(zone->backing(), DualBacking::kMemfd);
  EXPECT_TRUE(zone->fallback_reasons().empty());
  EXPECT_NE(zone->write_view_delta(), 0);
}

class EachMode : public ::testing::TestWithParam<ZoneMode> {};

TEST_P(EachMode, ForcedModeWritesRunsAndFreesCode) {
  auto zone = make_zone(forced(GetParam()));
  ASSERT_TRUE(zone);
  EXPECT_EQ(zone->mode(), GetParam());
  const CodeBlock a = install(*zone, return_constant(1234));
  const CodeBlock b = install(*zone, return_constant(5678));
  EXPECT_EQ(reinterpret_cast<IntFn>(a.exec)(), 1234);
  EXPECT_EQ(reinterpret_cast<IntFn>(b.exec)(), 5678);
  // Fresh bytes beyond what was written are int3.
  EXPECT_EQ(a.exec[6], 0xCC);
  EXPECT_EQ(a.exec[a.size - 1], 0xCC);
  ASSERT_TRUE(zone->free(a));
  ASSERT_TRUE(zone->flush_freed());
  for (std::size_t i = 0; i < a.size; ++i) ASSERT_EQ(a.exec[i], 0xCC) << "byte " << i << " of a freed block";
  EXPECT_EQ(reinterpret_cast<IntFn>(b.exec)(), 5678);  // the neighbour is untouched
  ASSERT_TRUE(zone->free(b));
}

TEST_P(EachMode, NoPageIsWritableAndExecutableAfterAnyOperation) {
  const bool rwx = GetParam() == ZoneMode::kRwx;
  auto check = [&](const char* after) {
    const std::string wx = writable_and_executable_mappings();
    if (rwx) return;  // RWX pages are what that mode is; checked separately below
    EXPECT_EQ(wx, "") << "W+X mapping after " << after;
  };
  check("start");
  ZoneOptions o = forced(GetParam());
  o.commit_chunk = 64 << 10;  // several commits below
  auto zone = make_zone(o);
  ASSERT_TRUE(zone);
  check("create");
  if (rwx) {
    EXPECT_EQ(protection_at(zone->begin()), "rwx");
  }
  std::vector<CodeBlock> blocks;
  for (int i = 0; i < 40; ++i) {  // 40 x 4 KiB crosses two 64 KiB commit chunks in every mode
    auto block = zone->allocate(4000);
    ASSERT_TRUE(block) << block.error().message();
    blocks.push_back(*block);
    check("allocate + commit");
    const auto code = return_constant(static_cast<std::uint32_t>(i));
    ASSERT_TRUE(zone->write(block->exec, code.data(), code.size()));
    check("write");
    ASSERT_TRUE(zone->make_executable(*block, Visibility::kThisThread));
    check("make_executable");
    ASSERT_EQ(reinterpret_cast<IntFn>(block->exec)(), i);
  }
  if (cross_core_sync_available()) {
    ASSERT_TRUE(zone->make_executable(blocks[0], Visibility::kOtherThreads));
    check("make_executable(kOtherThreads)");
  }
  auto ro = zone->allocate_data(64, 8, DataAccess::kReadOnly);
  ASSERT_TRUE(ro);
  check("allocate_data(read-only)");
  const std::uint32_t v = 77;
  ASSERT_TRUE(zone->write(ro->data, &v, sizeof v));
  check("write(read-only data)");
  auto rw = zone->allocate_data(64, 8, DataAccess::kReadWrite);
  ASSERT_TRUE(rw);
  std::memcpy(rw->data, &v, sizeof v);
  check("allocate_data(read-write) + store");
  for (std::size_t i = 0; i < blocks.size(); i += 2) ASSERT_TRUE(zone->free(blocks[i]));
  check("free");
  ASSERT_TRUE(zone->flush_freed());
  check("flush_freed");
  auto again = zone->allocate(100);
  ASSERT_TRUE(again);
  check("reuse");
  (void)zone->stats();
  zone.reset();
  check("destroy");
}

INSTANTIATE_TEST_SUITE_P(Modes, EachMode,
                         ::testing::Values(ZoneMode::kDualMapped, ZoneMode::kToggled, ZoneMode::kRwx),
                         [](const ::testing::TestParamInfo<ZoneMode>& p) {
                           return p.param == ZoneMode::kDualMapped ? std::string("DualMapped")
                                  : p.param == ZoneMode::kToggled  ? std::string("Toggled")
                                                                   : std::string("Rwx");
                         });

TEST(CodeZone, DualMappingWritesThroughTheReadWriteViewAtAConstantDistance) {
  auto zone = make_zone(forced(ZoneMode::kDualMapped));
  ASSERT_TRUE(zone);
  const std::ptrdiff_t delta = zone->write_view_delta();
  ASSERT_NE(delta, 0);
  const CodeBlock a = install(*zone, return_constant(11));
  const CodeBlock b = install(*zone, return_constant(22));
  for (const CodeBlock& blk : {a, b}) {
    std::uint8_t* w = zone->writable(blk.exec);
    ASSERT_EQ(w, blk.exec + delta);
    EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(blk.exec)), "r-x");
    EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(w)), "rw-");
    EXPECT_EQ(std::memcmp(w, blk.exec, blk.size), 0) << "the two views show the same bytes";
  }
  // Patch the live function's immediate through the RW view: one aligned store would do for
  // a patcher; here the 4 bytes of the imm32.
  const std::uint32_t patched = 99;
  std::memcpy(zone->writable(a.exec + 1), &patched, 4);
  ASSERT_TRUE(zone->make_executable(a, Visibility::kThisThread));
  EXPECT_EQ(reinterpret_cast<IntFn>(a.exec)(), 99);
  EXPECT_EQ(reinterpret_cast<IntFn>(b.exec)(), 22);
  // Both views are MAP_SHARED mappings of one object.
  const auto maps = test_util::read_maps();
  const auto* rx = test_util::find_mapping(maps, reinterpret_cast<std::uintptr_t>(a.exec));
  const auto* rw = test_util::find_mapping(maps, reinterpret_cast<std::uintptr_t>(a.exec + delta));
  ASSERT_TRUE(rx && rw);
  EXPECT_TRUE(rx->shared && rw->shared);
  EXPECT_EQ(rx->path, rw->path);
}

TEST(CodeZone, ToggledModeNeverReprotectsLiveCode) {
  auto zone = make_zone(forced(ZoneMode::kToggled));
  ASSERT_TRUE(zone);
  EXPECT_EQ(zone->write_view_delta(), 0);
  auto block = zone->allocate(10);
  ASSERT_TRUE(block);
  EXPECT_EQ(block->size, platform_facts().page_size) << "toggled blocks own whole pages";
  EXPECT_EQ(zone->writable(block->exec), nullptr);
  const auto code = return_constant(5);
  ASSERT_TRUE(zone->write(block->exec, code.data(), code.size()));
  EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(block->exec)), "rw-");
  ASSERT_TRUE(zone->make_executable(*block, Visibility::kThisThread));
  EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(block->exec)), "r-x");
  EXPECT_EQ(reinterpret_cast<IntFn>(block->exec)(), 5);
  Status late = zone->write(block->exec, code.data(), code.size());
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), ErrorCode::kInvalidState);
  EXPECT_NE(late.error().message().find("live code is never re-protected"), std::string::npos);
  EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(block->exec)), "r-x");
  // A second block lands on other pages than the live one.
  auto other = zone->allocate(10);
  ASSERT_TRUE(other);
  EXPECT_NE(other->exec, block->exec);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(other->exec) % platform_facts().page_size, 0u);
}

TEST(CodeZone, RwxRequiresExplicitPermission) {
  ZoneOptions o;
  o.force_mode = ZoneMode::kRwx;
  auto zone = CodeZone::create(o);
  ASSERT_FALSE(zone);
  EXPECT_EQ(zone.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(zone.error().message().find("allow_rwx"), std::string::npos);
}

int host_function() { return 1; }

TEST(CodeZone, PlacedNearAnAddressEveryBlockIsWithinRel32Reach) {
  ZoneOptions o;
  o.reserve_bytes = 16 << 20;
  o.near = reinterpret_cast<std::uintptr_t>(&host_function);
  auto zone = make_zone(o);
  ASSERT_TRUE(zone);
  const auto reach = [&](std::uintptr_t a) {
    const std::int64_t d = static_cast<std::int64_t>(a - o.near);
    return d > -(std::int64_t{1} << 31) && d < (std::int64_t{1} << 31);
  };
  EXPECT_TRUE(reach(zone->begin()));
  EXPECT_TRUE(reach(zone->zone_end() - 1));
  std::vector<CodeBlock> blocks;
  for (;;) {  // fill the whole code area
    auto b = zone->allocate(256 << 10);
    if (!b) break;
    blocks.push_back(*b);
  }
  ASSERT_GE(blocks.size(), 60u);
  for (const CodeBlock& b : blocks) {
    ASSERT_TRUE(reach(reinterpret_cast<std::uintptr_t>(b.exec))) << std::hex << b.exec;
    ASSERT_TRUE(reach(reinterpret_cast<std::uintptr_t>(b.exec) + b.size - 1));
  }
  auto d = zone->allocate_data(8, 8, DataAccess::kReadWrite);
  ASSERT_TRUE(d);
  EXPECT_TRUE(reach(reinterpret_cast<std::uintptr_t>(d->data)));
  // A rel32 call from the zone to the host function works: call rel32 ; ret.
  ASSERT_TRUE(zone->free(blocks.back()));
  ASSERT_TRUE(zone->flush_freed());
  auto cb = zone->allocate(16);
  ASSERT_TRUE(cb);
  std::uint8_t call[] = {0x48, 0x83, 0xEC, 0x08, 0xE8, 0,    0,
                         0,    0,    0x48, 0x83, 0xC4, 0x08, 0xC3};  // sub rsp,8; call; add rsp,8; ret
  const auto rel =
      static_cast<std::int32_t>(static_cast<std::int64_t>(o.near) -
                                static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(cb->exec) + 9));
  std::memcpy(call + 5, &rel, 4);
  ASSERT_TRUE(zone->write(cb->exec, call, sizeof call));
  ASSERT_TRUE(zone->make_executable(*cb, Visibility::kThisThread));
  EXPECT_EQ(reinterpret_cast<IntFn>(cb->exec)(), 1);
}

TEST(CodeZone, PlacementReachesAWholeSpan) {
  ZoneOptions o;
  o.reserve_bytes = 8 << 20;
  o.near = reinterpret_cast<std::uintptr_t>(&host_function);
  o.near_span = std::size_t{1} << 30;  // e.g. a 1 GiB data region starting at `near`
  auto zone = make_zone(o);
  ASSERT_TRUE(zone);
  for (std::uintptr_t target : {o.near, o.near + o.near_span}) {
    for (std::uintptr_t z : {zone->begin(), zone->zone_end() - 1}) {
      const std::int64_t d = static_cast<std::int64_t>(target - z);
      EXPECT_TRUE(d > -(std::int64_t{1} << 31) && d < (std::int64_t{1} << 31))
          << std::hex << "zone byte 0x" << z << " cannot reach 0x" << target;
    }
  }
}

TEST(CodeZone, ImpossiblePlacementIsAClearError) {
  ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  o.near = 0xffff800000000000ULL;  // kernel half: no user range within reach
  auto zone = CodeZone::create(o);
  ASSERT_FALSE(zone);
  EXPECT_EQ(zone.error().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(zone.error().message().find("within ±2 GiB of 0xffff800000000000"), std::string::npos)
      << zone.error().message();
  o.near = reinterpret_cast<std::uintptr_t>(&host_function);
  o.reserve_bytes = std::size_t{5} << 30;  // larger than the whole rel32 window
  zone = CodeZone::create(o);
  ASSERT_FALSE(zone);
  EXPECT_EQ(zone.error().code(), ErrorCode::kOutOfRange);
  EXPECT_NE(zone.error().message().find("rel32 window"), std::string::npos) << zone.error().message();
}

TEST(CodeZone, DataBesideCodeIsReachableAndProtected) {
  for (ZoneMode mode : {ZoneMode::kDualMapped, ZoneMode::kToggled}) {
    SCOPED_TRACE(std::string(mode_name(mode)));
    auto zone = make_zone(forced(mode));
    ASSERT_TRUE(zone);
    auto ro = zone->allocate_data(4, 4, DataAccess::kReadOnly);
    auto rw = zone->allocate_data(4, 64, DataAccess::kReadWrite);
    ASSERT_TRUE(ro && rw);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(rw->data) % 64, 0u);
    EXPECT_GE(reinterpret_cast<std::uintptr_t>(ro->data), zone->end());
    EXPECT_LT(reinterpret_cast<std::uintptr_t>(rw->data), zone->zone_end());
    EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(ro->data)), "r--");
    EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(rw->data)), "rw-");
    const std::uint32_t constant = 0x1234567;
    ASSERT_TRUE(zone->write(ro->data, &constant, 4));
    EXPECT_EQ(protection_at(reinterpret_cast<std::uintptr_t>(ro->data)), "r--");
    const std::uint32_t slot = 42;
    std::memcpy(rw->data, &slot, 4);
    auto load_ro = zone->allocate(16);
    auto load_rw = zone->allocate(16);
    ASSERT_TRUE(load_ro && load_rw);
    const auto c1 = load_rip_relative(load_ro->exec, ro->data);
    const auto c2 = load_rip_relative(load_rw->exec, rw->data);
    ASSERT_TRUE(zone->write(load_ro->exec, c1.data(), c1.size()));
    ASSERT_TRUE(zone->write(load_rw->exec, c2.data(), c2.size()));
    ASSERT_TRUE(zone->make_executable(*load_ro, Visibility::kThisThread));
    ASSERT_TRUE(zone->make_executable(*load_rw, Visibility::kThisThread));
    EXPECT_EQ(reinterpret_cast<IntFn>(load_ro->exec)(), 0x1234567);
    EXPECT_EQ(reinterpret_cast<IntFn>(load_rw->exec)(), 42);
    const std::uint32_t updated = 43;
    std::memcpy(rw->data, &updated, 4);
    EXPECT_EQ(reinterpret_cast<IntFn>(load_rw->exec)(), 43);
    // Read-only data is not writable where code sees it.
    EXPECT_DEATH({ *reinterpret_cast<volatile std::uint32_t*>(ro->data) = 1; }, "");
    if (mode == ZoneMode::kDualMapped) {
      // ...but it has a writable alias, for address slots updated by one atomic store.
      ASSERT_EQ(zone->writable(ro->data), ro->data + zone->write_view_delta());
      const std::uint32_t slot2 = 7;
      std::memcpy(zone->writable(ro->data), &slot2, 4);
      EXPECT_EQ(reinterpret_cast<IntFn>(load_ro->exec)(), 7);
    }
    EXPECT_EQ(writable_and_executable_mappings(), "");
  }
}

TEST(CodeZone, DataAreasReportExhaustion) {
  ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  o.ro_data_bytes = 4096;
  o.rw_data_bytes = 0;
  auto zone = make_zone(o);
  ASSERT_TRUE(zone);
  ASSERT_TRUE(zone->allocate_data(4000, 8, DataAccess::kReadOnly));
  auto full = zone->allocate_data(200, 8, DataAccess::kReadOnly);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code(), ErrorCode::kOutOfMemory);
  EXPECT_NE(full.error().message().find("ro_data_bytes"), std::string::npos);
  auto none = zone->allocate_data(8, 8, DataAccess::kReadWrite);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("rw_data_bytes"), std::string::npos);
}

TEST(CodeZone, StatisticsFollowAllocations) {
  ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  o.commit_chunk = 64 << 10;
  o.free_batch = 4;
  auto zone = make_zone(o);
  ASSERT_TRUE(zone);
  ZoneStats s = zone->stats();
  EXPECT_EQ(s.reserved_bytes, 1u << 20);
  EXPECT_EQ(s.committed_bytes, 64u << 10) << "only the first chunk is committed at creation";
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.largest_free_block, 1u << 20);
  auto a = zone->allocate(100);  // 128 bytes
  auto b = zone->allocate(64);
  auto c = zone->allocate(100 << 10);  // crosses the first commit chunk
  ASSERT_TRUE(a && b && c);
  s = zone->stats();
  EXPECT_EQ(s.used_bytes, 128u + 64u + (100u << 10));
  EXPECT_EQ(s.block_count, 3u);
  EXPECT_GE(s.committed_bytes, s.used_bytes);
  EXPECT_EQ(s.committed_bytes % (64 << 10), 0u);
  EXPECT_EQ(s.free_bytes, s.reserved_bytes - s.used_bytes);
  EXPECT_EQ(s.largest_free_block, s.reserved_bytes - s.used_bytes);
  ASSERT_TRUE(zone->free(*b));
  s = zone->stats();
  EXPECT_EQ(s.pending_free_bytes, 64u) << "b waits for its int3 batch";
  EXPECT_EQ(s.used_bytes, 128u + (100u << 10));
  EXPECT_EQ(s.free_bytes, s.reserved_bytes - s.used_bytes - 64u) << "pending bytes are not allocatable";
  ASSERT_TRUE(zone->flush_freed());
  s = zone->stats();
  EXPECT_EQ(s.pending_free_bytes, 0u);
  EXPECT_EQ(s.free_bytes, s.reserved_bytes - s.used_bytes);
  EXPECT_EQ(s.block_count, 2u);
}

TEST(CodeZone, AlignmentRequestsAreHonoured) {
  auto zone = make_zone(forced(ZoneMode::kDualMapped));
  ASSERT_TRUE(zone);
  for (std::size_t align : {64u, 128u, 256u, 1024u, 4096u}) {
    auto pad = zone->allocate(64);  // disturb the alignment of the next free granule
    auto b = zone->allocate(100, align);
    ASSERT_TRUE(pad && b);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->exec) % align, 0u) << align;
  }
  auto bad = zone->allocate(64, 48);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST(CodeZone, FreeingWhatWasNotAllocatedIsAnError) {
  auto zone = make_zone(forced(ZoneMode::kDualMapped));
  ASSERT_TRUE(zone);
  auto a = zone->allocate(256);
  ASSERT_TRUE(a);
  Status wrong_size = zone->free(CodeBlock{a->exec, 128});
  ASSERT_FALSE(wrong_size);
  EXPECT_EQ(wrong_size.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(zone->free(CodeBlock{a->exec + 64, 64}));
  std::uint8_t outside[64];
  EXPECT_FALSE(zone->free(CodeBlock{outside, 64}));
  ASSERT_TRUE(zone->free(*a));
  Status twice = zone->free(*a);  // still waiting for its int3 batch
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message().find("double free"), std::string::npos);
  ASSERT_TRUE(zone->flush_freed());
  EXPECT_FALSE(zone->free(*a));  // now cached for reuse
  EXPECT_FALSE(zone->write(reinterpret_cast<std::uint8_t*>(zone->end()) + (8 << 20), "x", 1));
}

TEST(CodeZone, ExhaustionIsReportedAndFreedSpaceIsReused) {
  ZoneOptions o;
  o.reserve_bytes = 64 << 10;
  o.free_batch = 1000;  // freed blocks stay pending: allocate() must flush them itself
  auto zone = make_zone(o);
  ASSERT_TRUE(zone);
  std::vector<CodeBlock> blocks;
  for (int i = 0; i < 16; ++i) {
    auto b = zone->allocate(4096);
    ASSERT_TRUE(b);
    blocks.push_back(*b);
  }
  auto full = zone->allocate(64);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code(), ErrorCode::kOutOfMemory);
  for (const CodeBlock& b : blocks) ASSERT_TRUE(zone->free(b));
  auto big = zone->allocate(64 << 10);  // needs every freed block coalesced
  ASSERT_TRUE(big) << big.error().message();
}

TEST(CodeWriter, AppendsAndRefusesOverflow) {
  auto zone = make_zone(forced(ZoneMode::kDualMapped));
  ASSERT_TRUE(zone);
  auto block = zone->allocate(64);
  ASSERT_TRUE(block);
  CodeWriter w(*zone, *block);
  const std::uint8_t mov[] = {0xB8, 0x09, 0x00, 0x00, 0x00};
  const std::uint8_t ret[] = {0xC3};
  ASSERT_TRUE(w.append(mov, sizeof mov));
  ASSERT_TRUE(w.append(ret, sizeof ret));
  EXPECT_EQ(w.offset(), 6u);
  std::uint8_t big[64] = {};
  Status over = w.append(big, sizeof big);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code(), ErrorCode::kOutOfRange);
  ASSERT_TRUE(w.finish(Visibility::kThisThread));
  EXPECT_EQ(reinterpret_cast<IntFn>(block->exec)(), 9);
}

TEST(Sync, SerializeAllCoresWorksOrSaysWhy) {
  Status s = serialize_all_cores();
  const MembarrierSupport& m = platform_facts().membarrier;
  if (m.available && m.private_expedited_sync_core) {
    EXPECT_TRUE(s) << s.error().message();
    EXPECT_TRUE(cross_core_sync_available());
  } else {
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("membarrier"), std::string::npos);
  }
}

}  // namespace
}  // namespace jitkit::code
