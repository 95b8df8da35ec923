// Encodings of the cases that are easy to get wrong. Expected bytes are what GNU as -O1 emits
// for the same Intel-syntax instruction (checked once by hand with `as --64 -O1` + objdump).
#include <gtest/gtest.h>

#include "test_util_p.h"

namespace jitkit::x64 {
namespace {
using test_util::one;

TEST(X64Encoding, RspAndR12BaseNeedSib) {
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, qword_ptr(rsp)); }), "48 8b 04 24");
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, qword_ptr(r12)); }), "49 8b 04 24");
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, qword_ptr(rsp, 8)); }), "48 8b 44 24 08");
  EXPECT_EQ(one([](Assembler& a) { a.sub(r13, qword_ptr(rsp, 8)); }), "4c 2b 6c 24 08");
}

TEST(X64Encoding, RbpAndR13BaseNeedDisp8) {
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, qword_ptr(rbp)); }), "48 8b 45 00");
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, qword_ptr(r13)); }), "49 8b 45 00");
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, qword_ptr(r13, 0x100)); }), "49 8b 85 00 01 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, qword_ptr(rbp, rax)); }), "48 8b 44 05 00");
}

TEST(X64Encoding, IndexWithoutBaseUsesSibDisp32) {
  EXPECT_EQ(one([](Assembler& a) { a.mov(qword_ptr(no_base, rcx, 8, 0x40), rdx); }),
            "48 89 14 cd 40 00 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.mov(eax, abs32_ptr(4, 0x1000)); }), "8b 04 25 00 10 00 00");
}

TEST(X64Encoding, BaseIndexScaleDisplacement) {
  EXPECT_EQ(one([](Assembler& a) { a.mov(dword_ptr(rax, rcx, 4, 8), 1); }), "c7 44 88 08 01 00 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.mov(r9, qword_ptr(r12, r13, 2, -8)); }), "4f 8b 4c 6c f8");
  EXPECT_EQ(one([](Assembler& a) { a.lea(rax, ptr(rbx, rcx, 2, 0x7f)); }), "48 8d 44 4b 7f");
  EXPECT_EQ(one([](Assembler& a) { a.lea(rax, ptr(rbx, rcx, 2, 0x80)); }), "48 8d 84 4b 80 00 00 00");
  // r12 is a valid index (only rsp is not): REX.X selects it.
  EXPECT_EQ(one([](Assembler& a) { a.mov(eax, dword_ptr(rax, r12, 1)); }), "42 8b 04 20");
}

TEST(X64Encoding, RipRelativeToLabel) {
  Assembler a;
  Label data = a.new_label();
  a.mov(rax, qword_ptr(data));  // 7 bytes: disp = 7 + 1 (ret) - 7 = ... see below
  a.mov(dword_ptr(data), 5);    // imm follows the disp: disp counts from the insn end
  a.ret();
  a.bind(data);
  a.dq(0);
  // data is at offset 7 + 10 + 1 = 18. First: 18 - 7 = 11; second: 18 - 17 = 1.
  EXPECT_EQ(test_util::hex(test_util::code_bytes(a)),
            "48 8b 05 0b 00 00 00 c7 05 01 00 00 00 05 00 00 00 c3 00 00 00 00 00 00 00 00");
}

TEST(X64Encoding, ByteRegistersRexVersusHighBytes) {
  EXPECT_EQ(one([](Assembler& a) { a.mov(sil, al); }), "40 88 c6");
  EXPECT_EQ(one([](Assembler& a) { a.mov(dil, bpl); }), "40 88 ef");
  EXPECT_EQ(one([](Assembler& a) { a.mov(ah, bl); }), "88 dc");
  EXPECT_EQ(one([](Assembler& a) { a.mov(bh, ch); }), "88 ef");
  EXPECT_EQ(one([](Assembler& a) { a.mov(r12b, dil); }), "41 88 fc");
  EXPECT_EQ(one([](Assembler& a) { a.setcc(Cond::kG, sil); }), "40 0f 9f c6");
  EXPECT_EQ(one([](Assembler& a) { a.movzx(r8d, sil); }), "44 0f b6 c6");
  EXPECT_EQ(one([](Assembler& a) { a.cmp(spl, 3); }), "40 80 fc 03");
}

TEST(X64Encoding, SixteenBitOperandPrefix) {
  EXPECT_EQ(one([](Assembler& a) { a.mov(ax, r9w); }), "66 44 89 c8");
  EXPECT_EQ(one([](Assembler& a) { a.mov(word_ptr(rdi), 0x1234); }), "66 c7 07 34 12");
  EXPECT_EQ(one([](Assembler& a) { a.add(ax, 0x1000); }), "66 05 00 10");
  EXPECT_EQ(one([](Assembler& a) { a.ror(word_ptr(rax), cl); }), "66 d3 08");
  // Operand-size prefix before the mandatory F3 prefix, as GNU as orders them.
  EXPECT_EQ(one([](Assembler& a) { a.popcnt(ax, word_ptr(rdi)); }), "66 f3 0f b8 07");
}

TEST(X64Encoding, ShortestImmediateForms) {
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, 0x12345678); }), "b8 78 56 34 12");
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, -5); }), "48 c7 c0 fb ff ff ff");
  EXPECT_EQ(one([](Assembler& a) { a.mov(rax, 0x123456789a); }), "48 b8 9a 78 56 34 12 00 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.movabs(r11, 1); }), "49 bb 01 00 00 00 00 00 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.add(rax, 1); }), "48 83 c0 01");
  EXPECT_EQ(one([](Assembler& a) { a.add(rax, 0x1000); }), "48 05 00 10 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.add(rcx, 0x1000); }), "48 81 c1 00 10 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.add(eax, 0xffffffff); }), "83 c0 ff");
  EXPECT_EQ(one([](Assembler& a) { a.test(ecx, 0x100); }), "f7 c1 00 01 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.shl(rax, 1); }), "48 d1 e0");
  EXPECT_EQ(one([](Assembler& a) { a.imul(rax, rcx, 1000); }), "48 69 c1 e8 03 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.xchg(rax, rcx); }), "48 91");
  EXPECT_EQ(one([](Assembler& a) { a.xchg(eax, eax); }), "87 c0");  // 90 would be a nop
}

TEST(X64Encoding, ExplicitMoffs64Forms) {
  EXPECT_EQ(one([](Assembler& a) { a.movabs(eax, abs_address(0x1122334455667788)); }),
            "a1 88 77 66 55 44 33 22 11");
  EXPECT_EQ(one([](Assembler& a) { a.movabs(abs_address(0x1122334455667788), rax); }),
            "48 a3 88 77 66 55 44 33 22 11");
  EXPECT_EQ(one([](Assembler& a) { a.movabs(al, abs_address(0x10)); }), "a0 10 00 00 00 00 00 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.movabs(abs_address(0x10), ax); }), "66 a3 10 00 00 00 00 00 00 00");
  EXPECT_EQ(one([](Assembler& a) { a.movabs(ecx, abs_address(0x10)); }),
            "error: movabs ecx, 0x10: the moffs64 form exists only for al, ax, eax and rax");
}

TEST(X64Encoding, SseScalarDouble) {
  EXPECT_EQ(one([](Assembler& a) { a.movsd(xmm9, qword_ptr(rax)); }), "f2 44 0f 10 08");
  EXPECT_EQ(one([](Assembler& a) { a.movq(r9, xmm10); }), "66 4d 0f 7e d1");
  EXPECT_EQ(one([](Assembler& a) { a.cvtsi2sd(xmm0, rax); }), "f2 48 0f 2a c0");
  EXPECT_EQ(one([](Assembler& a) { a.cvttsd2si(r8d, xmm9); }), "f2 45 0f 2c c1");
  EXPECT_EQ(one([](Assembler& a) { a.ucomisd(xmm0, xmm1); }), "66 0f 2e c1");
}

TEST(X64Encoding, LockPrefixAndAtomics) {
  EXPECT_EQ(one([](Assembler& a) {
              a.lock();
              a.cmpxchg(qword_ptr(rdi), rsi);
            }),
            "f0 48 0f b1 37");
  EXPECT_EQ(one([](Assembler& a) {
              a.lock();
              a.xadd(dword_ptr(rdi), eax);
            }),
            "f0 0f c1 07");
  EXPECT_EQ(one([](Assembler& a) {
              a.mfence();
              a.lfence();
              a.sfence();
              a.pause();
            }),
            "0f ae f0 0f ae e8 0f ae f8 f3 90");
}

TEST(X64Encoding, MultiByteNopsOfEveryLength) {
  for (std::size_t n = 1; n <= 15; ++n) {
    Assembler a;
    a.nop(n);
    EXPECT_EQ(test_util::code_bytes(a).size(), n) << n;
  }
  EXPECT_EQ(one([](Assembler& a) { a.nop(5); }), "0f 1f 44 00 00");
}

template <class D, class S>
concept CanMov = requires(Assembler& a, D d, S s) {
  a.mov(d, s);
};
template <class D, class S>
concept CanAdd = requires(Assembler& a, D d, S s) {
  a.add(d, s);
};
template <class D, class S>
concept CanImul = requires(Assembler& a, D d, S s) {
  a.imul(d, s);
};
template <class D, class S>
concept CanMovsxd = requires(Assembler& a, D d, S s) {
  a.movsxd(d, s);
};

TEST(X64Encoding, WidthMismatchHasNoOverload) {
  // `mov(rax, ecx)` and friends do not compile: no overload takes mismatched widths.
  static_assert(!CanMov<Gp64, Gp32>);
  static_assert(!CanMov<Gp32, Gp8>);
  static_assert(!CanMov<Gp64, Xmm>);
  static_assert(!CanAdd<Gp32, Gp16>);
  static_assert(!CanImul<Gp8, Gp8>);
  static_assert(!CanMovsxd<Gp32, Gp32>);
  // ...while the matching ones do (so the checks above are not vacuous).
  static_assert(CanMov<Gp64, Gp64>);
  static_assert(CanMov<Gp8, Gp8>);
  static_assert(CanAdd<Gp32, Gp32>);
  static_assert(CanMovsxd<Gp64, Gp32>);
  SUCCEED();
}

}  // namespace
}  // namespace jitkit::x64
