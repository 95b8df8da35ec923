// tests/patch/patcher_test.cpp — single-threaded behaviour of the three patch paths on
// hand-encoded code: what each path accepts, refuses (with which error), and what the code does
// afterwards; the trap handler's emulation while an int3 is in place (observed between the
// protocol's steps); and the serialization count of a batch.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "jitkit/code/code_zone.h"
#include "jitkit/patch/patcher.h"
#include "jitkit/patch/trap.h"
#include "patch_test_util_p.h"

namespace jitkit::patch {
namespace {

using test_util::addr;
using test_util::kTargets;

struct Fixture : ::testing::Test {
  void SetUp() override {
    zone = test_util::make_zone_near_binary();
    ASSERT_NE(zone, nullptr);
    auto p = Patcher::create(*zone);
    ASSERT_TRUE(p.has_value()) << p.error().message();
    patcher = std::move(p).value();
  }
  std::unique_ptr<code::CodeZone> zone;
  std::unique_ptr<Patcher> patcher;
};

using PatcherTest = Fixture;

TEST_F(PatcherTest, AlignedCallSiteIsRetargetedByOneStore) {
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 8);
  EXPECT_EQ(stub.fn()(nullptr), 1);
  const auto before = patcher->stats();
  auto path = patcher->retarget(stub.site, reinterpret_cast<const void*>(kTargets[2]));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  EXPECT_EQ(*path, RetargetPath::kDirect);
  EXPECT_EQ(stub.fn()(nullptr), 3);
  const auto after = patcher->stats();
  EXPECT_EQ(after.aligned_stores, before.aligned_stores + 1);
  EXPECT_EQ(after.serializations, before.serializations + 1);  // Sync::kAllCores
  EXPECT_EQ(after.breakpoint_commits, before.breakpoint_commits);
  auto cur = patcher->current_target(stub.site);
  ASSERT_TRUE(cur.has_value());
  EXPECT_EQ(*cur, addr(kTargets[2]));
}

TEST_F(PatcherTest, StoreOnlyRetargetDoesNotSerialize) {
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 8);
  const auto before = patcher->stats();
  ASSERT_TRUE(patcher->retarget(stub.site, reinterpret_cast<const void*>(kTargets[1]), Sync::kNone));
  EXPECT_EQ(patcher->stats().serializations, before.serializations);
  EXPECT_EQ(stub.fn()(nullptr), 2);
}

TEST_F(PatcherTest, JumpSiteIsRetargeted) {
  auto stub = test_util::make_caller(*zone, addr(kTargets[4]), 12, /*jump_site=*/true);
  EXPECT_EQ(stub.fn()(nullptr), 5);
  ASSERT_TRUE(patcher->retarget(stub.site, reinterpret_cast<const void*>(kTargets[5])));
  EXPECT_EQ(stub.fn()(nullptr), 6);
}

TEST_F(PatcherTest, MisalignedSiteIsRefusedByTheStorePathAndPatchedByBreakpoints) {
  // rel32 at byte 62..65 of a 64-byte aligned block: not 4-byte aligned and across a cache line.
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 62);
  ASSERT_EQ(addr(stub.site.field) % 64, 62u);
  EXPECT_EQ(stub.fn()(nullptr), 1);
  auto refused = patcher->retarget(stub.site, reinterpret_cast<const void*>(kTargets[1]));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("not 4-byte aligned and crosses a cache line"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(stub.fn()(nullptr), 1) << "a refused patch must leave the code unchanged";

  const auto before = patcher->stats();
  auto path = patcher->retarget_by_breakpoint(stub.site, reinterpret_cast<const void*>(kTargets[1]));
  ASSERT_TRUE(path.has_value()) << path.error().message();
  EXPECT_EQ(*path, RetargetPath::kBreakpoint);
  EXPECT_EQ(stub.fn()(nullptr), 2);
  const auto after = patcher->stats();
  EXPECT_EQ(after.breakpoint_commits, before.breakpoint_commits + 1);
  EXPECT_EQ(after.serializations, before.serializations + 3);
}

TEST_F(PatcherTest, MisalignedImmediateIsRefused) {
  auto imm = test_util::make_imm_stub(*zone, 1, 2);
  install::PatchSite bad = imm.imm64;
  bad.field += 1;
  auto s = patcher->set_imm64(bad, 5);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("not 8-byte aligned"), std::string::npos) << s.error().message();
  EXPECT_EQ(imm.fn64()(), 1u);
}

TEST_F(PatcherTest, SiteOutsideTheZoneIsRefused) {
  std::uint8_t bytes[8] = {0xE8, 0, 0, 0, 0};
  install::PatchSite site{.kind = x64::PatchSiteKind::kCall,
                          .insn = bytes,
                          .insn_size = 5,
                          .field = bytes + 1,
                          .field_size = 4,
                          .pad = bytes};
  auto r = patcher->retarget(site, reinterpret_cast<const void*>(kTargets[0]));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("not inside the patcher's code zone"), std::string::npos);
}

TEST_F(PatcherTest, WrongOpcodeIsRefused) {
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 8);
  install::PatchSite as_jump = stub.site;
  as_jump.kind = x64::PatchSiteKind::kJump;  // the bytes hold a call
  auto r = patcher->retarget(as_jump, reinterpret_cast<const void*>(kTargets[1]));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidState);
  EXPECT_EQ(stub.fn()(nullptr), 1);
}

TEST_F(PatcherTest, ImmediatesAreUpdatedByOneStore) {
  auto imm = test_util::make_imm_stub(*zone, 0x1111111111111111ull, 0x22222222u);
  EXPECT_EQ(imm.fn64()(), 0x1111111111111111ull);
  EXPECT_EQ(imm.fn32()(), 0x22222222u);
  ASSERT_TRUE(patcher->set_imm64(imm.imm64, 0xAAAABBBBCCCCDDDDull));
  ASSERT_TRUE(patcher->set_imm32(imm.imm32, -5));
  EXPECT_EQ(imm.fn64()(), 0xAAAABBBBCCCCDDDDull);
  EXPECT_EQ(imm.fn32()(), static_cast<std::uint32_t>(-5));
}

TEST_F(PatcherTest, FarTargetGoesThroughOneTrampolineAndItsSlot) {
  auto far_zone = test_util::make_far_zone(*zone);
  ASSERT_NE(far_zone, nullptr);
  const std::uintptr_t far1 = test_util::make_thunk(*far_zone, addr(kTargets[1]));
  const std::uintptr_t far2 = test_util::make_thunk(*far_zone, addr(kTargets[2]));
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 8);

  auto p1 = patcher->retarget(stub.site, reinterpret_cast<const void*>(far1));
  ASSERT_TRUE(p1.has_value()) << p1.error().message();
  EXPECT_EQ(*p1, RetargetPath::kViaTrampoline);
  EXPECT_EQ(stub.fn()(nullptr), 2);
  auto p2 = patcher->retarget(stub.site, reinterpret_cast<const void*>(far2));
  ASSERT_TRUE(p2.has_value());
  EXPECT_EQ(*p2, RetargetPath::kTrampolineSlot);
  EXPECT_EQ(stub.fn()(nullptr), 3);
  EXPECT_EQ(*patcher->current_target(stub.site), far2);
  // Back in reach: a direct rel32 again; the trampoline stays for the next far target.
  auto p3 = patcher->retarget(stub.site, reinterpret_cast<const void*>(kTargets[3]));
  ASSERT_TRUE(p3.has_value());
  EXPECT_EQ(*p3, RetargetPath::kDirect);
  EXPECT_EQ(stub.fn()(nullptr), 4);
  auto p4 = patcher->retarget(stub.site, reinterpret_cast<const void*>(far1));
  ASSERT_TRUE(p4.has_value());
  EXPECT_EQ(*p4, RetargetPath::kViaTrampoline);
  EXPECT_EQ(stub.fn()(nullptr), 2);
  EXPECT_EQ(patcher->stats().trampolines, 1u) << "a site is routed to one trampoline, once";
}

TEST_F(PatcherTest, RefusedBatchChangesNothingEvenATrampolineSlot) {
  auto far_zone = test_util::make_far_zone(*zone);
  ASSERT_NE(far_zone, nullptr);
  const std::uintptr_t far1 = test_util::make_thunk(*far_zone, addr(kTargets[1]));
  const std::uintptr_t far2 = test_util::make_thunk(*far_zone, addr(kTargets[2]));
  auto routed = test_util::make_caller(*zone, addr(kTargets[0]), 8);
  ASSERT_TRUE(patcher->retarget(routed.site, reinterpret_cast<const void*>(far1)));
  EXPECT_EQ(routed.fn()(nullptr), 2);
  auto other = test_util::make_caller(*zone, addr(kTargets[0]), 9);
  PatchBatch batch(*patcher);
  ASSERT_TRUE(batch.retarget(routed.site, reinterpret_cast<const void*>(far2)));  // a slot store
  ASSERT_TRUE(batch.retarget(other.site, reinterpret_cast<const void*>(kTargets[3])));
  ASSERT_TRUE(batch.retarget(other.site, reinterpret_cast<const void*>(kTargets[4])));  // overlap
  ASSERT_FALSE(patcher->commit(batch).has_value());
  EXPECT_EQ(routed.fn()(nullptr), 2) << "the refused batch must not have moved the slot";
  EXPECT_EQ(other.fn()(nullptr), 1);
  EXPECT_EQ(*patcher->current_target(routed.site), far1);
}

TEST_F(PatcherTest, StaticKeyTogglesBetweenNopAndJump) {
  auto key = test_util::make_key_caller(*zone, addr(kTargets[0]), addr(kTargets[1]));
  EXPECT_EQ(key.fn()(nullptr), 1);  // disabled: falls through to call A
  ASSERT_TRUE(patcher->set_static_key(key.site, true));
  EXPECT_EQ(key.site.insn[0], 0xE9);
  EXPECT_EQ(key.fn()(nullptr), 2);  // enabled: jumps to call B
  ASSERT_TRUE(patcher->set_static_key(key.site, false));
  EXPECT_EQ(key.fn()(nullptr), 1);
  const std::uint8_t nop5[5] = {0x0F, 0x1F, 0x44, 0x00, 0x00};
  EXPECT_EQ(std::memcmp(key.site.insn, nop5, 5), 0);
}

TEST_F(PatcherTest, ReplaceChecksTheOldBytesAndNeedsAnEmulatableInstruction) {
  // xor eax,eax; sub rsp,8; NOP5 (byte 6); add rsp,8; ret
  const std::vector<std::uint8_t> code = {0x31, 0xC0, 0x48, 0x83, 0xEC, 0x08, 0x0F, 0x1F,
                                          0x44, 0x00, 0x00, 0x48, 0x83, 0xC4, 0x08, 0xC3};
  auto blk = test_util::install_bytes(*zone, code);
  ASSERT_NE(blk.exec, nullptr);
  // Called with a null Counters* in rdi: the inserted call reaches count_target<1>, which then
  // counts in g_uncounted_calls.
  auto fn = [f = reinterpret_cast<test_util::TargetFn>(blk.exec)] { return f(nullptr); };
  std::uint8_t* insn = blk.exec + 6;
  EXPECT_EQ(fn(), 0);

  const std::uint8_t wrong_old[5] = {0x90, 0x90, 0x90, 0x90, 0x90};
  const std::uint8_t nop5[5] = {0x0F, 0x1F, 0x44, 0x00, 0x00};
  std::uint8_t call_b[5] = {0xE8};
  const std::int32_t rel = static_cast<std::int32_t>(addr(kTargets[1]) - addr(insn + 5));
  std::memcpy(call_b + 1, &rel, 4);
  auto s = patcher->replace(insn, wrong_old, call_b);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidState);
  EXPECT_EQ(fn(), 0);

  // The 5-byte NOP becomes a call: a same-length edit that no single field store can make.
  ASSERT_TRUE(patcher->replace(insn, nop5, call_b));
  const std::uint64_t b0 = test_util::g_uncounted_calls[1].load();
  EXPECT_EQ(fn(), 2);
  EXPECT_EQ(test_util::g_uncounted_calls[1].load(), b0 + 1);

  // call -> mov eax, 5: the old instruction (call) is emulated for trapping threads.
  const std::uint8_t mov5[5] = {0xB8, 5, 0, 0, 0};
  const std::uint8_t mov6[5] = {0xB8, 6, 0, 0, 0};
  ASSERT_TRUE(patcher->replace(insn, call_b, mov5));
  EXPECT_EQ(fn(), 5);
  // mov -> mov: neither side can be emulated, so the breakpoint path refuses it.
  auto s2 = patcher->replace(insn, mov5, mov6);
  ASSERT_FALSE(s2.has_value());
  EXPECT_EQ(s2.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(fn(), 5);
}

// Calls the code from the patcher thread between the protocol's steps, while the int3 is in
// place: the handler must make the call land in the old or the new target.
struct CallBetweenSteps : CommitObserver {
  std::vector<test_util::CallerStub>* stubs;
  std::vector<int> results;
  void after_step(int) override {
    for (auto& s : *stubs) results.push_back(s.fn()(nullptr));
  }
};

TEST_F(PatcherTest, ThreadHittingTheBreakpointRunsOldOrNewInstruction) {
  std::vector<test_util::CallerStub> stubs;
  stubs.push_back(test_util::make_caller(*zone, addr(kTargets[0]), 62));  // misaligned: edit
  stubs.push_back(test_util::make_caller(*zone, addr(kTargets[0]), 9));   // misaligned
  auto key = test_util::make_key_caller(*zone, addr(kTargets[0]), addr(kTargets[1]));
  const auto traps_before = trap_stats();
  PatchBatch batch(*patcher);
  for (auto& s : stubs) ASSERT_TRUE(batch.retarget(s.site, reinterpret_cast<const void*>(kTargets[6])));
  ASSERT_TRUE(batch.set_static_key(key.site, true));
  struct Obs : CallBetweenSteps {
    test_util::KeyStub* key;
    std::vector<int> key_results;
    void after_step(int step) override {
      CallBetweenSteps::after_step(step);
      key_results.push_back(key->fn()(nullptr));
    }
  } obs;
  obs.stubs = &stubs;
  obs.key = &key;
  ASSERT_TRUE(patcher->commit(batch, &obs));
  ASSERT_EQ(obs.results.size(), 6u);
  for (int r : obs.results) EXPECT_TRUE(r == 1 || r == 7) << r;
  for (int r : obs.key_results) EXPECT_TRUE(r == 1 || r == 2) << r;
  // During steps 1 and 3 the int3 is in place: those calls were emulated (the new instruction).
  EXPECT_EQ(obs.results[0], 7);
  EXPECT_EQ(obs.results[2], 7);
  EXPECT_EQ(obs.key_results[0], 2);
  EXPECT_GE(trap_stats().emulated, traps_before.emulated + 6);
  for (auto& s : stubs) EXPECT_EQ(s.fn()(nullptr), 7);
  EXPECT_EQ(key.fn()(nullptr), 2);
}

TEST_F(PatcherTest, BatchOfManySitesCostsThreeSerializations) {
  constexpr int kSites = 64;
  std::vector<test_util::CallerStub> stubs;
  for (int i = 0; i < kSites; ++i) {
    // Every other site misaligned, so the batch mixes edits and aligned stores.
    stubs.push_back(test_util::make_caller(*zone, addr(kTargets[0]), i % 2 ? 9 : 8));
  }
  PatchBatch batch(*patcher);
  for (auto& s : stubs) ASSERT_TRUE(batch.retarget(s.site, reinterpret_cast<const void*>(kTargets[3])));
  const auto before = patcher->stats();
  ASSERT_TRUE(patcher->commit(batch));
  const auto after = patcher->stats();
  EXPECT_EQ(after.serializations - before.serializations, 3u);
  EXPECT_EQ(after.breakpoint_edits - before.breakpoint_edits, kSites / 2u);
  EXPECT_EQ(after.aligned_stores - before.aligned_stores, kSites / 2u);
  for (auto& s : stubs) EXPECT_EQ(s.fn()(nullptr), 4);
  EXPECT_TRUE(batch.empty());
}

TEST_F(PatcherTest, OverlappingEditsAreRefused) {
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 9);
  PatchBatch batch(*patcher);
  ASSERT_TRUE(batch.retarget(stub.site, reinterpret_cast<const void*>(kTargets[1])));
  ASSERT_TRUE(batch.retarget(stub.site, reinterpret_cast<const void*>(kTargets[2])));
  auto s = patcher->commit(batch);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("overlap"), std::string::npos);
  EXPECT_EQ(stub.fn()(nullptr), 1);
}

TEST_F(PatcherTest, StoreInsideAnEditedInstructionIsRefused) {
  auto stub = test_util::make_caller(*zone, addr(kTargets[0]), 8);  // aligned call at byte 7
  PatchBatch batch(*patcher);
  ASSERT_TRUE(batch.retarget(stub.site, reinterpret_cast<const void*>(kTargets[1])));  // store
  std::uint8_t old_bytes[5];
  std::memcpy(old_bytes, stub.site.insn, 5);
  const std::uint8_t nop5[5] = {0x0F, 0x1F, 0x44, 0x00, 0x00};
  ASSERT_TRUE(batch.replace(stub.site.insn, old_bytes, nop5));  // edit of the same instruction
  auto s = patcher->commit(batch);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("inside an instruction the same batch rewrites"), std::string::npos)
      << s.error().message();
  EXPECT_EQ(stub.fn()(nullptr), 1);
}

TEST(PatcherCreate, ToggledZoneIsRefused) {
  code::ZoneOptions o;
  o.force_mode = code::ZoneMode::kToggled;
  o.reserve_bytes = 1u << 20;
  auto zone = code::CodeZone::create(o);
  ASSERT_TRUE(zone.has_value()) << zone.error().message();
  auto p = Patcher::create(**zone);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(p.error().message().find("toggled"), std::string::npos);
}

// A process may hold many patched zones (a SOM VM with its JIT has two); the trap handler's
// table used to stop at 64.
TEST(PatcherCreate, AHundredZonesEachGetAPatcher) {
  std::vector<std::unique_ptr<code::CodeZone>> zones;
  std::vector<std::unique_ptr<Patcher>> patchers;
  for (int i = 0; i < 100; i++) {
    code::ZoneOptions o;
    o.reserve_bytes = 64u << 10;
    auto zone = code::CodeZone::create(o);
    ASSERT_TRUE(zone.has_value()) << "zone " << i << ": " << zone.error().message();
    auto p = Patcher::create(**zone);
    ASSERT_TRUE(p.has_value()) << "patcher " << i << ": " << p.error().message();
    zones.push_back(std::move(*zone));
    patchers.push_back(std::move(*p));
  }
}

}  // namespace
}  // namespace jitkit::patch
