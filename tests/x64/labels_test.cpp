// Labels: forward and backward references, automatic short/near choice (relaxation), forced
// forms, label offsets after encode, and jump tables (absolute and relative entries).
#include <gtest/gtest.h>

#include <cstring>

#include "test_util_p.h"

namespace jitkit::x64 {
namespace {
using test_util::code_bytes;
using test_util::hex;
using test_util::kBase;

std::int32_t rel32_at(const std::vector<std::uint8_t>& b, std::size_t off) {
  std::int32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

// A forward jcc over `gap` bytes of filler.
std::vector<std::uint8_t> forward_over(std::size_t gap) {
  Assembler a;
  Label l = a.new_label();
  a.je(l);
  for (std::size_t i = 0; i < gap; ++i) a.nop();
  a.bind(l);
  return code_bytes(a);
}

TEST(X64Labels, ForwardJumpIsShortUpTo127Bytes) {
  auto b = forward_over(127);
  ASSERT_EQ(b.size(), 129u);
  EXPECT_EQ(b[0], 0x74);
  EXPECT_EQ(b[1], 127);
}

TEST(X64Labels, ForwardJumpBecomesNearAt128Bytes) {
  auto b = forward_over(128);
  ASSERT_EQ(b.size(), 134u);
  EXPECT_EQ(b[0], 0x0F);
  EXPECT_EQ(b[1], 0x84);
  EXPECT_EQ(rel32_at(b, 2), 128);
}

TEST(X64Labels, BackwardJumpShortAtMinus128NearBeyond) {
  for (std::size_t filler : {126u, 127u}) {
    Assembler a;
    Label top = a.new_label();
    a.bind(top);
    for (std::size_t i = 0; i < filler; ++i) a.nop();
    a.jmp(top);
    auto b = code_bytes(a);
    if (filler == 126) {  // rel = -(126 + 2) = -128: the last short distance
      ASSERT_EQ(b.size(), 128u);
      EXPECT_EQ(b[126], 0xEB);
      EXPECT_EQ(static_cast<std::int8_t>(b[127]), -128);
    } else {
      ASSERT_EQ(b.size(), 132u);
      EXPECT_EQ(b[127], 0xE9);
      EXPECT_EQ(rel32_at(b, 128), -132);
    }
  }
}

TEST(X64Labels, RelaxationPropagatesAcrossJumps) {
  // B jumps over C and 123 bytes. C jumps far, so it becomes near (6 bytes), which pushes B's
  // distance from 125 to 129: B must become near too, although it looked short at first.
  Assembler a;
  Label m = a.new_label(), far = a.new_label();
  a.jne(m);   // B
  a.je(far);  // C
  for (int i = 0; i < 123; ++i) a.nop();
  a.bind(m);
  for (int i = 0; i < 200; ++i) a.nop();
  a.bind(far);
  auto e = a.encode(kBase);
  ASSERT_TRUE(e) << e.error().message();
  const auto& b = e->bytes;
  EXPECT_EQ(b[0], 0x0F);
  EXPECT_EQ(b[1], 0x85);
  EXPECT_EQ(rel32_at(b, 2), 129);
  EXPECT_EQ(b[6], 0x0F);
  EXPECT_EQ(b[7], 0x84);
  EXPECT_EQ(e->label_offsets[m.id], 6u + 6u + 123u);
  EXPECT_EQ(rel32_at(b, 8), static_cast<std::int32_t>(e->label_offsets[far.id]) - 12);
}

TEST(X64Labels, EarlierJumpGrowthKeepsLaterShortJumpShort) {
  // A (far) grows; B's distance does not involve A, so B stays short.
  Assembler a;
  Label l1 = a.new_label(), l2 = a.new_label();
  a.je(l2);  // A: 129 bytes away while B is short -> near
  a.je(l1);  // B: 125 bytes
  for (int i = 0; i < 125; ++i) a.nop();
  a.bind(l1);
  a.nop(2);
  a.bind(l2);
  auto b = code_bytes(a);
  ASSERT_EQ(b.size(), 6u + 2u + 125u + 2u);
  EXPECT_EQ(b[0], 0x0F);
  EXPECT_EQ(rel32_at(b, 2), 129);
  EXPECT_EQ(b[6], 0x74);
  EXPECT_EQ(b[7], 125);
}

TEST(X64Labels, ForcedFormsAndCall) {
  Assembler a;
  Label f = a.new_label();
  a.jmp(f, JumpForm::kNear);  // near although short would reach
  a.jne(f, JumpForm::kShort);
  a.call(f);
  a.bind(f);
  a.ret();
  EXPECT_EQ(hex(code_bytes(a)), "e9 07 00 00 00 75 05 e8 00 00 00 00 c3");
}

TEST(X64Labels, ForcedShortThatDoesNotReachIsAnEncodeError) {
  Assembler a;
  Label f = a.new_label();
  a.jmp(f, JumpForm::kShort);
  for (int i = 0; i < 200; ++i) a.nop();
  a.bind(f);
  auto e = a.encode(kBase);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("does not reach"), std::string::npos) << e.error().message();
  // Backward and known: the error is immediate and sticky.
  Assembler b;
  Label t = b.new_label();
  b.bind(t);
  for (int i = 0; i < 200; ++i) b.nop();
  b.jmp(t, JumpForm::kShort);
  ASSERT_TRUE(b.error());
  EXPECT_NE(b.error()->message().find("jmp L0"), std::string::npos);
}

TEST(X64Labels, AlignAfterRelaxedJumpIsExact) {
  Assembler a;
  Label f = a.new_label();
  a.jmp(f);  // relaxable item before the alignment: the padding is computed at layout
  a.nop(3);
  a.align(16);
  Label aligned = a.new_label();
  a.bind(aligned);
  a.nop();
  a.bind(f);
  auto e = a.encode(kBase);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->label_offsets[aligned.id] % 16, 0u);
  EXPECT_EQ(e->label_offsets[aligned.id], 16u);
  EXPECT_EQ(e->bytes[0], 0xEB);  // short: distance 14 + 1
}

TEST(X64Labels, JumpTableAbsoluteAndRelativeEntries) {
  Assembler a;
  Label table = a.new_label(), c0 = a.new_label(), c1 = a.new_label(), rel = a.new_label();
  Label skip = a.new_label();
  a.jmp(skip);  // a relaxable item before everything: offsets shift at layout
  a.bind(c0);
  a.mov(eax, 10);
  a.ret();
  a.bind(c1);
  a.mov(eax, 11);
  a.ret();
  a.bind(skip);
  a.align(8);
  a.bind(table);
  a.dq(c0);
  a.dq(c1);
  a.bind(rel);
  a.dd_rel(c0, rel);
  a.dd_rel(c1, rel);
  auto e = a.encode(kBase);
  ASSERT_TRUE(e) << e.error().message();
  const auto& b = e->bytes;
  std::uint32_t t = e->label_offsets[table.id];
  EXPECT_EQ(t % 8, 0u);
  std::uint64_t e0, e1;
  std::memcpy(&e0, b.data() + t, 8);
  std::memcpy(&e1, b.data() + t + 8, 8);
  EXPECT_EQ(e0, kBase + e->label_offsets[c0.id]);
  EXPECT_EQ(e1, kBase + e->label_offsets[c1.id]);
  EXPECT_EQ(e->label_offsets[c0.id], 2u);  // after the short jmp
  std::uint32_t r = e->label_offsets[rel.id];
  EXPECT_EQ(rel32_at(b, r),
            static_cast<std::int32_t>(e->label_offsets[c0.id]) - static_cast<std::int32_t>(r));
  EXPECT_EQ(rel32_at(b, r + 4),
            static_cast<std::int32_t>(e->label_offsets[c1.id]) - static_cast<std::int32_t>(r));
}

TEST(X64Labels, ConstantPoolIsDeduplicatedAlignedAndAddressable) {
  Assembler a;
  Label k1 = a.constant_f64(1.5);
  Label k2 = a.constant_f64(1.5);
  Label k3 = a.constant_u64(7);
  a.movsd(xmm0, qword_ptr(k1));
  a.ret();
  auto e = a.encode(kBase);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->label_offsets[k1.id], e->label_offsets[k2.id]);
  EXPECT_NE(e->label_offsets[k1.id], e->label_offsets[k3.id]);
  EXPECT_EQ(e->label_offsets[k1.id] % 8, 0u);
  EXPECT_GE(e->label_offsets[k1.id], e->code_size);
  double d;
  std::memcpy(&d, e->bytes.data() + e->label_offsets[k1.id], 8);
  EXPECT_EQ(d, 1.5);
  // movsd xmm0, [rip+disp]: disp is relative to the end of the 8-byte instruction.
  EXPECT_EQ(rel32_at(e->bytes, 4), static_cast<std::int32_t>(e->label_offsets[k1.id]) - 8);
}

}  // namespace
}  // namespace jitkit::x64
