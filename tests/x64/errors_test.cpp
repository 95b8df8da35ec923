// Sticky errors: the first error names the instruction and its operands, later ones do not
// replace it, and encode() refuses code that has one.
#include <gtest/gtest.h>

#include "test_util_p.h"

namespace jitkit::x64 {
namespace {

std::string first_error(void (*emit)(Assembler&)) {
  Assembler a;
  emit(a);
  return a.error() ? a.error()->message() : std::string("(no error)");
}

TEST(X64Errors, ImmediateTooWideNamesInstructionAndOperands) {
  Assembler a;
  a.mov(qword_ptr(rbp, 0x10), 0x123456789);
  ASSERT_TRUE(a.error());
  EXPECT_EQ(a.error()->message(),
            "mov qword [rbp+0x10], imm 0x123456789: immediate does not fit in 32 bits sign-extended");
  EXPECT_EQ(a.error()->code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(a.buffer_size(), 0u) << "the failing instruction must not be half-emitted";
}

TEST(X64Errors, FirstErrorIsStickyAndEncodeRefuses) {
  Assembler a;
  a.mov(eax, 1);
  a.add(ecx, 0x100000000);     // first error
  a.mov(dword_ptr(rax), rcx);  // second error: must not replace the first
  a.ret();
  ASSERT_TRUE(a.error());
  EXPECT_EQ(a.error()->message(), "add ecx, imm 0x100000000: immediate does not fit in 32 bits");
  auto e = a.encode(test_util::kBase);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("add ecx, imm 0x100000000"), std::string::npos) << e.error().message();
}

TEST(X64Errors, MemorySizeMismatch) {
  EXPECT_EQ(first_error([](Assembler& a) { a.mov(dword_ptr(rax), rcx); }),
            "mov dword [rax], rcx: memory operand size (4 bytes) does not match the operation (8 bytes)");
  EXPECT_NE(first_error([](Assembler& a) { a.movsd(xmm0, dword_ptr(rax)); }).find("does not match"),
            std::string::npos);
}

TEST(X64Errors, UnsizedMemoryWithImmediate) {
  EXPECT_EQ(
      first_error([](Assembler& a) { a.mov(ptr(rax, 8), 1); }),
      "mov [rax+0x8], imm 0x1: memory operand needs a size (byte_ptr, word_ptr, dword_ptr or qword_ptr)");
  EXPECT_NE(first_error([](Assembler& a) { a.inc(ptr(rax)); }).find("needs a size"), std::string::npos);
}

TEST(X64Errors, HighByteRegisterBesideRex) {
  EXPECT_EQ(first_error([](Assembler& a) { a.mov(ah, sil); }),
            "mov ah, sil: ah/ch/dh/bh cannot be encoded in an instruction that needs a REX prefix");
  EXPECT_NE(first_error([](Assembler& a) { a.mov(bh, byte_ptr(r8)); }).find("ah/ch/dh/bh"),
            std::string::npos);
  EXPECT_EQ(first_error([](Assembler& a) { a.mov(ah, byte_ptr(rax)); }), "(no error)");
}

TEST(X64Errors, InvalidAddressing) {
  EXPECT_EQ(first_error([](Assembler& a) { a.mov(eax, dword_ptr(rax, rsp, 1)); }),
            "mov eax, dword [rax+rsp]: rsp cannot be an index register");
  EXPECT_EQ(first_error([](Assembler& a) { a.mov(eax, dword_ptr(rax, rcx, 3)); }),
            "mov eax, dword [rax+rcx*?]: index scale must be 1, 2, 4 or 8");
  EXPECT_EQ(first_error([](Assembler& a) { a.mov(eax, dword_ptr(rax, 0x7fffffff).offset(1)); }),
            "mov eax, dword [rax+0x80000000]: displacement does not fit in 32 bits sign-extended");
}

TEST(X64Errors, OtherOperandChecks) {
  EXPECT_NE(first_error([](Assembler& a) { a.shl(rax, dl); }).find("must be cl"), std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) { a.shl(eax, 40); }).find("shift count"), std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) { a.nop(16); }).find("1 to 15"), std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) { a.align(3); }).find("power of two"), std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) { a.mov(al, 256); }).find("8 bits"), std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) { a.movzx(eax, dword_ptr(rax)); }).find("byte_ptr or word_ptr"),
            std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) {
              Label l = a.new_label();
              a.bind(l);
              a.bind(l);
            }).find("already bound"),
            std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) { a.jmp(Label{7}); }).find("not created by this assembler"),
            std::string::npos);
}

TEST(X64Errors, LockNeedsALockableMemoryDestination) {
  EXPECT_EQ(first_error([](Assembler& a) {
              a.lock();
              a.add(rax, rcx);
            }),
            "lock add rax, rcx: the LOCK prefix needs a memory destination");
  EXPECT_EQ(first_error([](Assembler& a) {
              a.lock();
              a.mov(qword_ptr(rax), rcx);
            }),
            "lock mov qword [rax], rcx: this instruction cannot take a LOCK prefix");
  EXPECT_NE(first_error([](Assembler& a) {
              a.lock();
              a.cmp(dword_ptr(rax), 1);
            }).find("cannot take a LOCK prefix"),
            std::string::npos);
  EXPECT_NE(first_error([](Assembler& a) {
              a.lock();
              a.ret();
            }).find("needs a memory destination"),
            std::string::npos);
  EXPECT_EQ(first_error([](Assembler& a) {
              Label l = a.new_label();
              a.bind(l);
              a.lock();
              a.jmp(l);
            }),
            "lock jmp L0: the LOCK prefix needs a memory destination");
  EXPECT_EQ(first_error([](Assembler& a) {
              a.lock();
              a.bts(qword_ptr(rax), 3);
              a.lock();
              a.inc(dword_ptr(rdi));
            }),
            "(no error)");
}

TEST(X64Errors, UnboundLabelIsAnEncodeError) {
  Assembler a;
  Label never = a.new_label();
  a.call(never);
  a.ret();
  EXPECT_FALSE(a.error());
  auto e = a.encode(test_util::kBase);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("L0 is referenced but never bound"), std::string::npos);
  Assembler b;
  Label j = b.new_label();
  b.jne(j);
  auto e2 = b.encode(test_util::kBase);
  ASSERT_FALSE(e2);
  EXPECT_NE(e2.error().message().find("never bound"), std::string::npos);
}

TEST(X64Errors, ResetClearsTheError) {
  Assembler a;
  a.mov(al, 1000);
  ASSERT_TRUE(a.error());
  a.reset();
  EXPECT_FALSE(a.error());
  a.ret();
  EXPECT_EQ(test_util::code_bytes(a).size(), 1u);
}

}  // namespace
}  // namespace jitkit::x64
