// The host-data program: generated code stores 0xdeadbeef into a host uint32 and returns 42.
// It must work wherever the host data lives, or fail with a clear error at install, never crash
// and never write through a truncated address (what an assembler that encodes every host address
// as a 32-bit displacement does with one that does not fit; docs/background.md has the history):
//   (a) data below 2 GiB, code far away      -> absolute disp32
//   (b) data within 2 GiB of the code        -> RIP-relative
//   (c) data above 4 GiB, > 2 GiB from code  -> scratch register if allowed, else an error
//       (the accumulator mov has a moffs64 form and works without scratch)
// and the same for calls to a far host function (an address slot, no scratch needed).
#include <gtest/gtest.h>

#include <cstdint>

#include "far_memory_p.h"
#include "jitkit/install/install.h"

namespace jitkit::install {
namespace {
using namespace jitkit::x64;
using test_util::FixedMapping;

std::unique_ptr<code::CodeZone> make_zone(std::uintptr_t near = 0) {
  code::ZoneOptions o;
  o.reserve_bytes = 1 << 20;
  o.ro_data_bytes = 0;
  o.rw_data_bytes = 0;
  o.near = near;
  o.near_span = near ? 4096 : 0;
  auto z = code::CodeZone::create(o);
  EXPECT_TRUE(z) << z.error().message();
  return z ? std::move(*z) : nullptr;
}

// mov dword [status], 0xdeadbeef ; mov eax, 42 ; ret
Assembler host_data_program(std::uint32_t* status, bool allow_scratch) {
  Assembler a;
  if (allow_scratch) a.allow_scratch(r11);
  a.mov(dword_ptr(abs(status)), 0xdeadbeef);
  a.mov(eax, 42);
  a.ret();
  return a;
}

// Installs and runs the host-data program; returns the form chosen for the host operand.
HostForm run_host_data_program(code::CodeZone& zone, std::uint32_t* status, bool allow_scratch) {
  Assembler a = host_data_program(status, allow_scratch);
  auto code = install(a, zone);
  EXPECT_TRUE(code) << code.error().message();
  if (!code) return HostForm::kRipRelative;
  *status = 0;
  int r = code->entry<int()>()();
  EXPECT_EQ(r, 42);
  EXPECT_EQ(*status, 0xdeadbeefu);
  EXPECT_EQ(code->host_operands().size(), 1u);
  HostForm f = code->host_operands().at(0).form;
  EXPECT_TRUE(zone.free(code->block()));
  return f;
}

bool rel32_reaches(std::uint64_t target, const code::CodeZone& zone) {
  auto fits = [](std::int64_t d) { return d >= INT32_MIN && d <= INT32_MAX; };
  return fits(static_cast<std::int64_t>(target - zone.begin())) &&
         fits(static_cast<std::int64_t>(target - zone.end()));
}

TEST(HostDataProgram, DataBelow2GiB) {
  FixedMapping data;
  ASSERT_TRUE(test_util::map_low(data));
  ASSERT_LT(data.address(), 0x80000000u);
  auto zone = make_zone();
  ASSERT_TRUE(zone);
  for (bool scratch : {true, false}) {
    SCOPED_TRACE(scratch ? "scratch allowed" : "scratch forbidden");
    HostForm f = run_host_data_program(*zone, data.as<std::uint32_t>(), scratch);
    // Absolute disp32 unless the zone happens to be within reach, then RIP-relative.
    EXPECT_EQ(f, rel32_reaches(data.address(), *zone) ? HostForm::kRipRelative : HostForm::kAbsolute32);
  }
}

TEST(HostDataProgram, DataWithin2GiBOfTheCode) {
  FixedMapping data;
  ASSERT_TRUE(test_util::map_far(data, *make_zone()));  // somewhere high, then put a zone next to it
  auto zone = make_zone(data.address());
  ASSERT_TRUE(zone);
  ASSERT_TRUE(rel32_reaches(data.address(), *zone));
  for (bool scratch : {true, false}) {
    SCOPED_TRACE(scratch ? "scratch allowed" : "scratch forbidden");
    EXPECT_EQ(run_host_data_program(*zone, data.as<std::uint32_t>(), scratch), HostForm::kRipRelative);
  }
}

TEST(HostDataProgram, DataAbove4GiBAndFarFromTheCodeWithScratch) {
  auto zone = make_zone();
  ASSERT_TRUE(zone);
  FixedMapping data;
  ASSERT_TRUE(test_util::map_far(data, *zone));
  ASSERT_GT(data.address(), 0xFFFFFFFFu);
  EXPECT_EQ(run_host_data_program(*zone, data.as<std::uint32_t>(), true), HostForm::kScratchRegister);
}

TEST(HostDataProgram, DataAbove4GiBAndFarFromTheCodeWithoutScratchIsAClearError) {
  auto zone = make_zone();
  ASSERT_TRUE(zone);
  FixedMapping data;
  ASSERT_TRUE(test_util::map_far(data, *zone));
  const code::ZoneStats before = zone->stats();
  Assembler a = host_data_program(data.as<std::uint32_t>(), false);
  auto code = install(a, *zone);
  ASSERT_FALSE(code);
  EXPECT_EQ(code.error().code(), ErrorCode::kOutOfRange);
  const std::string& m = code.error().message();
  EXPECT_NE(m.find("mov dword ["), std::string::npos) << m;
  EXPECT_NE(m.find("imm 0xdeadbeef"), std::string::npos) << m;
  EXPECT_NE(m.find("no moffs64 form"), std::string::npos) << m;
  EXPECT_NE(m.find("allow_scratch"), std::string::npos) << m;
  EXPECT_EQ(zone->stats().used_bytes, before.used_bytes) << "the refused block must be given back";
  EXPECT_EQ(*data.as<std::uint32_t>(), 0u);
}

TEST(HostDataProgram, AccumulatorStoreUsesMoffsWithoutScratch) {
  // mov eax, 0xdeadbeef ; mov [far], eax ; mov eax, 42 ; ret: the moffs64 form needs no scratch.
  auto zone = make_zone();
  ASSERT_TRUE(zone);
  FixedMapping data;
  ASSERT_TRUE(test_util::map_far(data, *zone));
  Assembler a;
  a.mov(eax, 0xdeadbeef);
  a.mov(dword_ptr(abs(data.as<std::uint32_t>())), eax);
  a.mov(eax, 42);
  a.ret();
  auto code = install(a, *zone);
  ASSERT_TRUE(code) << code.error().message();
  EXPECT_EQ(code->host_operands().at(0).form, HostForm::kMoffs64);
  EXPECT_EQ(code->entry<int()>()(), 42);
  EXPECT_EQ(*data.as<std::uint32_t>(), 0xdeadbeefu);
}

TEST(HostDataProgram, CallToAFarHostFunctionWithAndWithoutScratch) {
  auto zone = make_zone();
  ASSERT_TRUE(zone);
  FixedMapping fn;
  ASSERT_TRUE(test_util::map_far(fn, *zone));
  const std::uint8_t body[] = {0xB8, 0x07, 0x00, 0x00, 0x00, 0xC3};  // mov eax, 7 ; ret
  ASSERT_TRUE(fn.make_function(body, sizeof body));
  for (bool scratch : {true, false}) {
    SCOPED_TRACE(scratch ? "scratch allowed" : "scratch forbidden");
    Assembler a;
    if (scratch) a.allow_scratch(r11);
    a.sub(rsp, 8);
    a.call(abs_address(fn.address()));
    a.add(eax, 35);
    a.add(rsp, 8);
    a.ret();
    auto code = install(a, *zone);
    ASSERT_TRUE(code) << code.error().message();
    EXPECT_EQ(code->host_operands().at(0).form, HostForm::kAddressSlot);
    EXPECT_EQ(code->entry<int()>()(), 42);
    EXPECT_TRUE(zone->free(code->block()));
  }
}

extern "C" int host_add(int x, int y) { return x + y; }

TEST(HostDataProgram, CallToACompiledHostFunction) {
  // A real C function of this binary: rel32 if the zone landed near the binary, else a slot.
  auto zone = make_zone();
  ASSERT_TRUE(zone);
  Assembler a;
  a.sub(rsp, 8);  // keep rsp 16-byte aligned at the call (SysV)
  a.mov(edi, 40);
  a.mov(esi, 2);
  a.call(abs(&host_add));
  a.add(rsp, 8);
  a.ret();
  auto code = install(a, *zone);
  ASSERT_TRUE(code) << code.error().message();
  auto target = reinterpret_cast<std::uint64_t>(&host_add);
  EXPECT_EQ(code->host_operands().at(0).form,
            rel32_reaches(target, *zone) ? HostForm::kRipRelative : HostForm::kAddressSlot);
  EXPECT_EQ(code->entry<int()>()(), 42);
}

}  // namespace
}  // namespace jitkit::install
