// tests/patch/emitted_sites_test.cpp — the patcher on sites emitted by the assembler: every
// kind's field is naturally aligned whatever precedes it, the record matches the bytes, and
// each kind is patched by its path (call/jump retarget, imm32 incl. cmp, imm64, static key).
#include <gtest/gtest.h>

#include <cstring>

#include "emitted_sites_p.h"
#include "jitkit/patch/patcher.h"
#include "patch_test_util_p.h"

namespace jitkit::patch {
namespace {

using namespace jitkit::x64;  // NOLINT: registers read like assembly
using test_util::addr;
using test_util::kTargets;

struct EmittedSitesTest : ::testing::Test {
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

TEST_F(EmittedSitesTest, CallSiteFieldIsAlignedAfterAnyPrefixAndRetargets) {
  for (std::size_t lead = 0; lead < 8; ++lead) {
    Assembler a;
    a.sub(rsp, 8);
    if (lead > 0) a.nop(lead);
    a.call_site(abs(kTargets[0]));
    a.add(rsp, 8);
    a.ret();
    auto code = test_util::emit(*zone, a);
    ASSERT_EQ(code.sites.size(), 1u);
    const install::PatchSite& s = code.sites[0];
    EXPECT_EQ(s.kind, PatchSiteKind::kCall);
    EXPECT_EQ(addr(s.field) % 4, 0u) << "lead " << lead;
    EXPECT_EQ(s.insn[0], 0xE8);
    EXPECT_EQ(s.field, s.insn + 1);
    auto fn = code.entry<test_util::TargetFn>();
    EXPECT_EQ(fn(nullptr), 1);
    auto p = patcher->retarget(s, reinterpret_cast<const void*>(kTargets[lead % 7 + 1]));
    ASSERT_TRUE(p.has_value()) << p.error().message();
    EXPECT_EQ(*p, RetargetPath::kDirect);
    EXPECT_EQ(fn(nullptr), static_cast<int>(lead % 7 + 2));
  }
}

TEST_F(EmittedSitesTest, JumpSiteToLabelRetargets) {
  Assembler a;
  Label one = a.new_label(), two = a.new_label();
  a.jmp_site(one);
  a.bind(one);
  a.mov(eax, 1);
  a.ret();
  a.bind(two);
  a.mov(eax, 2);
  a.ret();
  auto code = test_util::emit(*zone, a);
  ASSERT_EQ(code.sites.size(), 1u);
  auto fn = code.entry<int (*)()>();
  EXPECT_EQ(fn(), 1);
  const std::uintptr_t two_addr = code.installed.label_address(two);
  ASSERT_NE(two_addr, 0u);
  ASSERT_TRUE(patcher->retarget(code.sites[0], reinterpret_cast<const void*>(two_addr)));
  EXPECT_EQ(fn(), 2);
}

TEST_F(EmittedSitesTest, ImmediateSitesAreAlignedAndPatched) {
  Assembler a;
  a.nop(3);
  a.mov_imm64_site(rax, 0x1111111111111111ull);
  a.ret();
  Label f32 = a.new_label();
  a.bind(f32);
  a.mov_imm32_site(r9d, 7);  // REX form: field at byte 2 of the instruction
  a.mov(eax, r9d);
  a.ret();
  Label fcmp = a.new_label();
  a.bind(fcmp);
  Label ne = a.new_label();
  a.mov(eax, 0);
  a.cmp_imm32_site(edi, 5);
  a.jne(ne);
  a.mov(eax, 1);
  a.bind(ne);
  a.ret();
  auto code = test_util::emit(*zone, a);
  ASSERT_EQ(code.sites.size(), 3u);
  EXPECT_EQ(code.sites[0].kind, PatchSiteKind::kImm64);
  EXPECT_EQ(addr(code.sites[0].field) % 8, 0u);
  EXPECT_EQ(addr(code.sites[1].field) % 4, 0u);
  EXPECT_EQ(addr(code.sites[2].field) % 4, 0u);
  auto f64 = code.entry<std::uint64_t (*)()>();
  auto g32 = code.at<int (*)()>(f32);
  auto gcmp = code.at<int (*)(int)>(fcmp);
  EXPECT_EQ(f64(), 0x1111111111111111ull);
  EXPECT_EQ(g32(), 7);
  EXPECT_EQ(gcmp(5), 1);
  EXPECT_EQ(gcmp(6), 0);
  ASSERT_TRUE(patcher->set_imm64(code.sites[0], 0x123456789ABCDEF0ull));
  ASSERT_TRUE(patcher->set_imm32(code.sites[1], -42));
  ASSERT_TRUE(patcher->set_imm32(code.sites[2], 6));
  EXPECT_EQ(f64(), 0x123456789ABCDEF0ull);
  EXPECT_EQ(g32(), -42);
  EXPECT_EQ(gcmp(5), 0);
  EXPECT_EQ(gcmp(6), 1);
}

TEST_F(EmittedSitesTest, StaticKeyEmittedDisabledTogglesOnAndOff) {
  Assembler a;
  Label on = a.new_label(), done = a.new_label();
  a.static_key(on, false);
  a.mov(eax, 10);
  a.jmp(done);
  a.bind(on);
  a.mov(eax, 20);
  a.bind(done);
  a.ret();
  auto code = test_util::emit(*zone, a);
  ASSERT_EQ(code.sites.size(), 1u);
  const install::PatchSite& key = code.sites[0];
  EXPECT_EQ(key.kind, PatchSiteKind::kStaticKey);
  EXPECT_FALSE(code.records[0].enabled);
  const std::uint8_t nop5[5] = {0x0F, 0x1F, 0x44, 0x00, 0x00};
  EXPECT_EQ(std::memcmp(key.insn, nop5, 5), 0) << "a disabled key is the 5-byte NOP";
  auto fn = code.entry<int (*)()>();
  EXPECT_EQ(fn(), 10);
  ASSERT_TRUE(patcher->set_static_key(key, true));
  EXPECT_EQ(fn(), 20);
  ASSERT_TRUE(patcher->set_static_key(key, false));
  EXPECT_EQ(fn(), 10);
}

}  // namespace
}  // namespace jitkit::patch
