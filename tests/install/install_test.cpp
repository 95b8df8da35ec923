// Installing in general: label addresses, patch sites at absolute addresses, jump tables that
// run, and refusal of code with an error (without leaking the block).
#include <gtest/gtest.h>

#include "jitkit/install/install.h"

namespace jitkit::install {
namespace {
using namespace jitkit::x64;

std::unique_ptr<code::CodeZone> zone_for_test() {
  code::ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  auto z = code::CodeZone::create(o);
  EXPECT_TRUE(z) << z.error().message();
  return z ? std::move(*z) : nullptr;
}

TEST(Install, RefusesCodeWithAStickyError) {
  auto zone = zone_for_test();
  ASSERT_TRUE(zone);
  Assembler a;
  a.mov(qword_ptr(rbp, 0x10), 0x123456789);
  a.ret();
  const auto before = zone->stats().used_bytes;
  auto code = install(a, *zone, {.name = "bad"});
  ASSERT_FALSE(code);
  EXPECT_EQ(code.error().message(),
            "install bad: refusing code with an assembler error: mov qword [rbp+0x10], imm 0x123456789: "
            "immediate does not fit in 32 bits sign-extended");
  EXPECT_EQ(zone->stats().used_bytes, before);
}

TEST(Install, RefusesUnboundLabelAndGivesTheBlockBack) {
  auto zone = zone_for_test();
  ASSERT_TRUE(zone);
  Assembler a;
  Label l = a.new_label();
  a.jmp(l);
  const auto before = zone->stats().used_bytes;
  auto code = install(a, *zone);
  ASSERT_FALSE(code);
  EXPECT_NE(code.error().message().find("never bound"), std::string::npos);
  EXPECT_EQ(zone->stats().used_bytes, before);
}

// int f(int i): jump table dispatch on i (0..2) through absolute entries.
TEST(Install, JumpTableRuns) {
  auto zone = zone_for_test();
  ASSERT_TRUE(zone);
  Assembler a;
  Label table = a.new_label(), rel_table = a.new_label();
  Label cases[3] = {a.new_label(), a.new_label(), a.new_label()};
  Label use_rel = a.new_label();
  a.mov(edi, edi);  // the ABI leaves rdi's upper half undefined for an int: zero-extend
  a.cmp(edi, 3);
  a.jae(use_rel);
  a.lea(rax, qword_ptr(table));
  a.jmp(qword_ptr(rax, to_gp64(edi), 8));
  a.bind(use_rel);  // i - 3 selects through the 4-byte relative table
  a.sub(edi, 3);
  a.lea(rcx, ptr(rel_table));
  a.movsxd(rax, dword_ptr(rcx, rdi, 4));
  a.add(rax, rcx);
  a.jmp(rax);
  for (int i = 0; i < 3; ++i) {
    a.bind(cases[i]);
    a.mov(eax, 100 + i);
    a.ret();
  }
  a.align(8);
  a.bind(table);
  for (Label c : cases) a.dq(c);
  a.bind(rel_table);
  for (Label c : cases) a.dd_rel(c, rel_table);
  auto code = install(a, *zone);
  ASSERT_TRUE(code) << code.error().message();
  auto f = code->entry<int(int)>();
  EXPECT_EQ(f(0), 100);
  EXPECT_EQ(f(1), 101);
  EXPECT_EQ(f(2), 102);
  EXPECT_EQ(f(3), 100);
  EXPECT_EQ(f(5), 102);
  EXPECT_EQ(code->label_address(table) % 8, 0u);
  EXPECT_EQ(code->label_address(cases[0]), code->start() + code->label_offset(cases[0]));
}

TEST(Install, SitesHaveAbsoluteAlignedFieldsAndRun) {
  auto zone = zone_for_test();
  ASSERT_TRUE(zone);
  Assembler a;
  Label skip = a.new_label();
  a.nop(3);
  PatchSiteId imm64 = a.mov_imm64_site(rax, 0x1122334455667788);
  PatchSiteId imm32 = a.mov_imm32_site(ecx, 5);
  a.static_key(skip, false);  // disabled: falls through
  a.add(rax, rcx);
  a.bind(skip);
  a.ret();
  auto code = install(a, *zone, {.name = "sites"});
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(code->name(), "sites");
  ASSERT_EQ(code->sites().size(), 3u);
  const PatchSite& s64 = code->site(imm64);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s64.field) % 8, 0u);
  EXPECT_EQ(*reinterpret_cast<const std::uint64_t*>(s64.field), 0x1122334455667788u);
  const PatchSite& s32 = code->site(imm32);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s32.field) % 4, 0u);
  EXPECT_EQ(*reinterpret_cast<const std::int32_t*>(s32.field), 5);
  EXPECT_EQ(code->entry<std::uint64_t()>()(), 0x1122334455667788u + 5);
}

// long fib(long n) with a loop (backward jcc), an early exit (forward jcc) and a call to a
// local helper (call rel32 to a label), padded so some jumps must be near.
TEST(Install, LoopsBranchesAndCallsRun) {
  auto zone = zone_for_test();
  ASSERT_TRUE(zone);
  Assembler a;
  Label small = a.new_label(), loop = a.new_label(), done = a.new_label(), step = a.new_label();
  a.cmp(rdi, 2);
  a.jl(small);       // forward, far (padding below): near
  a.xor_(eax, eax);  // a = 0
  a.mov(ecx, 1);     // b = 1
  a.bind(loop);
  a.call(step);  // (a, b) = (b, a + b)
  a.dec(rdi);
  a.jne(loop);  // backward
  a.jmp(done);  // forward
  for (int i = 0; i < 20; ++i) a.nop(11);
  a.bind(small);
  a.mov(rax, rdi);
  a.ret();
  a.bind(step);
  a.lea(rdx, ptr(rax, rcx));
  a.mov(rax, rcx);
  a.mov(rcx, rdx);
  a.ret();
  a.bind(done);
  a.ret();
  auto code = install(a, *zone);
  ASSERT_TRUE(code) << code.error().message();
  auto fib = code->entry<long(long)>();
  EXPECT_EQ(fib(0), 0);
  EXPECT_EQ(fib(1), 1);
  EXPECT_EQ(fib(2), 1);
  EXPECT_EQ(fib(10), 55);
  EXPECT_EQ(fib(90), 2880067194370816120L);
}

TEST(Install, ConstantPoolRuns) {
  auto zone = zone_for_test();
  ASSERT_TRUE(zone);
  Assembler a;
  a.movsd(xmm0, qword_ptr(a.constant_f64(2.5)));
  a.mulsd(xmm0, qword_ptr(a.constant_f64(4.0)));
  a.cvttsd2si(eax, xmm0);
  a.ret();
  auto code = install(a, *zone);
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(code->entry<int()>()(), 10);
}

// install() writes the bytes straight into the block's writable view where the zone has one
// (dual-mapped, RWX) and through CodeZone::write where it does not (toggled): the same code,
// with far host calls through address slots, constants and sites, runs in every mode.
TEST(Install, SameCodeRunsInEveryZoneMode) {
  struct Case {
    code::ZoneMode mode;
    bool allow_rwx;
  };
  for (Case c : {Case{code::ZoneMode::kDualMapped, false}, Case{code::ZoneMode::kToggled, false},
                 Case{code::ZoneMode::kRwx, true}}) {
    SCOPED_TRACE(std::string(code::mode_name(c.mode)));
    code::ZoneOptions o;
    o.reserve_bytes = 1 << 20;
    o.force_mode = c.mode;
    o.allow_rwx = c.allow_rwx;
    auto zone = code::CodeZone::create(o);
    if (!zone) {
      ADD_FAILURE() << zone.error().message();
      continue;
    }
    Assembler a;
    a.allow_scratch(r11);
    Label done = a.new_label();
    a.push(rbx);
    a.mov(rbx, rdi);
    a.mov_imm32_site(eax, 0);
    for (int i = 0; i < 12; ++i) {
      a.test(rbx, rbx);
      a.jz(done);
      a.mov(rdi, rbx);
      a.call(abs(reinterpret_cast<const void*>(+[](long v) { return v - 1; })));
      a.mov(rbx, rax);
      a.addsd(xmm0, qword_ptr(a.constant_f64(0.5)));
    }
    a.bind(done);
    a.cvttsd2si(rax, xmm0);
    a.add(rax, rbx);
    a.pop(rbx);
    a.ret();
    auto code = install(a, **zone, {.name = "every_mode"});
    ASSERT_TRUE(code) << code.error().message();
    EXPECT_EQ(code->sites().size(), 1u);
    EXPECT_GT(code->used_size(), code->code_size());
    auto fn = code->entry<long(long, double)>();
    EXPECT_EQ(fn(5, 0.0), 2);     // five calls: 0 left, 2.5 added, truncated to 2
    EXPECT_EQ(fn(100, 1.0), 95);  // twelve calls: 88 left, 1 + 6 added
    EXPECT_TRUE((*zone)->free(code->block()));
  }
}

}  // namespace
}  // namespace jitkit::install
