// Host-address operands: the form is chosen at encode time from the final code address, and
// an address that cannot be reached without a scratch register is a clear error, never a
// truncation. (tests/install runs the same programs for real.)
#include <gtest/gtest.h>

#include <cstring>

#include "test_util_p.h"

namespace jitkit::x64 {
namespace {
using test_util::hex;

constexpr std::uint64_t kNearCode = 0x40000000;      // code at 1 GiB
constexpr std::uint64_t kHighCode = 0x7f0000000000;  // code where mmap usually puts it
constexpr std::uint64_t kFarData = 0x3f0000000000;   // > 4 GiB and far from both

// The host-data program: mov dword [addr], 0xdeadbeef; mov eax, 42; ret.
Assembler host_data_program(std::uint64_t addr, bool scratch) {
  Assembler a;
  if (scratch) a.allow_scratch(r11);
  a.mov(dword_ptr(abs_address(addr)), 0xdeadbeef);
  a.mov(eax, 42);
  a.ret();
  return a;
}

TEST(X64HostAddress, RipRelativeWhenNear) {
  auto e = host_data_program(kNearCode + 0x1000, false).encode(kNearCode);
  ASSERT_TRUE(e) << e.error().message();
  ASSERT_EQ(e->host_operands.size(), 1u);
  EXPECT_EQ(e->host_operands[0].form, HostForm::kRipRelative);
  // c7 05 disp32 imm32: disp = 0x1000 - 10
  EXPECT_EQ(hex(std::vector<std::uint8_t>(e->bytes.begin(), e->bytes.begin() + 10)),
            "c7 05 f6 0f 00 00 ef be ad de");
}

TEST(X64HostAddress, Absolute32WhenLowAndFar) {
  auto e = host_data_program(0x10000000, false).encode(kHighCode);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->host_operands[0].form, HostForm::kAbsolute32);
  EXPECT_EQ(hex(std::vector<std::uint8_t>(e->bytes.begin(), e->bytes.begin() + 11)),
            "c7 04 25 00 00 00 10 ef be ad de");
}

TEST(X64HostAddress, FarWithScratchMaterializesTheAddress) {
  auto e = host_data_program(kFarData, true).encode(kHighCode);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->host_operands[0].form, HostForm::kScratchRegister);
  // mov r11, imm64 ; mov dword [r11], imm32
  EXPECT_EQ(hex(std::vector<std::uint8_t>(e->bytes.begin(), e->bytes.begin() + 17)),
            "49 bb 00 00 00 00 00 3f 00 00 41 c7 03 ef be ad de");
}

TEST(X64HostAddress, FarWithoutScratchIsAClearError) {
  auto e = host_data_program(kFarData, false).encode(kHighCode);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), ErrorCode::kOutOfRange);
  const std::string& m = e.error().message();
  EXPECT_NE(m.find("mov dword [0x3f0000000000], imm 0xdeadbeef"), std::string::npos) << m;
  EXPECT_NE(m.find("no moffs64 form"), std::string::npos) << m;
  EXPECT_NE(m.find("allow_scratch"), std::string::npos) << m;
}

TEST(X64HostAddress, AccumulatorMovUsesMoffsWithoutScratch) {
  Assembler a;
  a.mov(eax, dword_ptr(abs_address(kFarData)));
  a.mov(qword_ptr(abs_address(kFarData + 8)), rax);
  a.ret();
  auto e = a.encode(kHighCode);
  ASSERT_TRUE(e) << e.error().message();
  ASSERT_EQ(e->host_operands.size(), 2u);
  EXPECT_EQ(e->host_operands[0].form, HostForm::kMoffs64);
  EXPECT_EQ(e->host_operands[1].form, HostForm::kMoffs64);
  EXPECT_EQ(hex(e->bytes), "a1 00 00 00 00 00 3f 00 00 48 a3 08 00 00 00 00 3f 00 00 c3");
}

TEST(X64HostAddress, FarCallUsesAnAddressSlot) {
  Assembler a;
  a.call(abs_address(kFarData));
  a.ret();
  auto e = a.encode(kHighCode);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->host_operands[0].form, HostForm::kAddressSlot);
  ASSERT_EQ(e->code_size, 7u);
  ASSERT_EQ(e->bytes.size(), 16u);  // code, padding to 8, the slot
  std::int32_t disp;
  std::memcpy(&disp, e->bytes.data() + 2, 4);
  EXPECT_EQ(e->bytes[0], 0xFF);
  EXPECT_EQ(e->bytes[1], 0x15);
  EXPECT_EQ(disp, 8 - 6);
  std::uint64_t slot;
  std::memcpy(&slot, e->bytes.data() + 8, 8);
  EXPECT_EQ(slot, kFarData);
  // Near: a plain call rel32.
  auto n = a.encode(kFarData - 0x100000);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->host_operands[0].form, HostForm::kRipRelative);
  EXPECT_EQ(n->bytes[0], 0xE8);
}

TEST(X64HostAddress, FarLeaLoadsTheAddressIntoTheDestination) {
  Assembler a;
  a.lea(rdx, ptr(abs_address(kFarData)));
  auto e = a.encode(kHighCode);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host_operands[0].form, HostForm::kImm64ToDest);
  EXPECT_EQ(hex(e->bytes), "48 ba 00 00 00 00 00 3f 00 00");
}

TEST(X64HostAddress, ScratchThatIsAlsoAnOperandIsRefused) {
  Assembler a;
  a.allow_scratch(r11);
  a.mov(dword_ptr(abs_address(kFarData)), r11d);
  auto e = a.encode(kHighCode);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("r11 is an operand"), std::string::npos) << e.error().message();
}

TEST(X64HostAddress, LockPrefixStaysOnTheLockedInstruction) {
  Assembler a;
  a.allow_scratch(r10);
  a.lock();
  a.add(dword_ptr(abs_address(kFarData)), 1);
  auto e = a.encode(kHighCode);
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(hex(e->bytes), "49 ba 00 00 00 00 00 3f 00 00 f0 41 83 02 01");
}

TEST(X64HostAddress, RipRelativeOnlyWhenTheWholeBlockReaches) {
  // The target is 2 GiB - 16 bytes before the code start: reachable from the first byte, but not
  // from the end of a 64-byte block. The conservative rule picks another form.
  Assembler a;
  a.allow_scratch(r11);
  a.mov(eax, dword_ptr(abs_address(kHighCode - 0x7ffffff0)));
  for (int i = 0; i < 64; ++i) a.nop();
  auto e = a.encode(kHighCode);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host_operands[0].form, HostForm::kMoffs64);
}

}  // namespace
}  // namespace jitkit::x64
