// Layout features of the Assembler that are not one instruction each, checked by decoding the
// encoded bytes with Zydis (and, for data directives, against GNU as + ld):
//   nop(n)       one NOP instruction of exactly n bytes, 1..15;
//   align(a)     the next byte lands on a multiple of a, padded with whole NOPs, minimally;
//   data         db/dw/dd/dq/bytes/dq(label)/dd_rel equal GNU's .byte/.word/.long/.quad;
//   patch sites  the patched field is naturally aligned whatever precedes it, the instruction
//                around it is the documented one, the padding before it is whole NOPs, and the
//                record's offsets and initial values match the bytes;
//   constants    a constant's label addresses its bytes, aligned, deduplicated.
#include <gtest/gtest.h>

#include <cstring>

#include "jitkit/x64/assembler.h"
#include "jitkit/x64/disassemble.h"
#include "x64/differential/gnu_as_p.h"
#include "x64/differential/instance_p.h"

namespace jitkit::x64::test_util {
namespace {

constexpr std::uint64_t kBase = 0x7f0000000000;  // a multiple of 64

EncodedCode encode_or_fail(const Assembler& a) {
  auto e = a.encode(kBase);
  if (!e) {
    ADD_FAILURE() << "encode: " << e.error().message();
    return {};
  }
  return std::move(e).value();
}

// The instructions covering [from, to) of `code`, or a failure description.
std::vector<DecodedInstruction> decode_range(const EncodedCode& code, std::size_t from, std::size_t to) {
  std::vector<DecodedInstruction> out;
  std::size_t pos = from;
  while (pos < to) {
    auto d = decode_one(code.bytes.data() + pos, to - pos, kBase + pos);
    if (!d) {
      ADD_FAILURE() << "undecodable bytes at +" << pos << ": " << d.error().message();
      return out;
    }
    pos += d->length;
    out.push_back(std::move(d).value());
  }
  EXPECT_EQ(pos, to) << "instructions overrun the range";
  return out;
}

void expect_all_nops(const EncodedCode& code, std::size_t from, std::size_t to) {
  for (const DecodedInstruction& d : decode_range(code, from, to)) {
    EXPECT_EQ(d.mnemonic, "nop") << "padding contains '" << d.text << "'";
  }
}

TEST(EncodingLayout, NopOfEveryLengthIsOneInstruction) {
  for (std::size_t n = 1; n <= 15; ++n) {
    Assembler a;
    a.nop(n);
    const EncodedCode code = encode_or_fail(a);
    ASSERT_EQ(code.code_size, n);
    auto d = decode_one(code.bytes.data(), code.code_size, kBase);
    ASSERT_TRUE(d) << "nop(" << n << "): " << d.error().message();
    EXPECT_EQ(d->mnemonic, "nop") << "nop(" << n << ") = " << hex(code.bytes.data(), n);
    EXPECT_EQ(d->length, n) << "nop(" << n << ") = " << hex(code.bytes.data(), n);
  }
  Assembler a;
  a.nop(16);
  EXPECT_FALSE(a.ok()) << "nop(16) cannot be one instruction and must be refused";
}

TEST(EncodingLayout, AlignPadsMinimallyWithWholeNops) {
  for (std::size_t alignment : {1, 2, 4, 8, 16, 32, 64}) {
    for (std::size_t before = 0; before < alignment + 3; ++before) {
      Assembler a;
      for (std::size_t i = 0; i < before; ++i) a.int3();
      a.align(alignment);
      a.ret();
      const EncodedCode code = encode_or_fail(a);
      ASSERT_GE(code.code_size, before + 1);
      const std::size_t ret_at = code.code_size - 1;
      EXPECT_EQ(code.bytes[ret_at], 0xC3);
      EXPECT_EQ((kBase + ret_at) % alignment, 0u) << "align(" << alignment << ") after " << before;
      EXPECT_LT(ret_at - before, alignment) << "more padding than needed";
      expect_all_nops(code, before, ret_at);
    }
  }
  Assembler bad;
  bad.align(3);
  EXPECT_FALSE(bad.ok()) << "align(3) is not a power of two";
}

TEST(EncodingLayout, DataDirectivesMatchGnuAs) {
  if (!gnu_as_available()) GTEST_FAIL() << "GNU as not available";
  Assembler a;
  const Label start = a.new_label(), later = a.new_label();
  a.bind(start);
  a.db(0x12);
  a.dw(0x3456);
  a.dd(0x789abcde);
  a.dq(0x0123456789abcdefULL);
  const char text[] = "jit";
  a.bytes(text, 3);
  a.dq(later);
  a.dq(start);
  a.dd_rel(later, start);
  a.dd_rel(start, later);
  a.bind(later);
  a.ret();
  const EncodedCode code = encode_or_fail(a);
  const std::string source =
      ".Ls:\n.byte 0x12\n.word 0x3456\n.long 0x789abcde\n.quad 0x0123456789abcdef\n"
      ".ascii \"jit\"\n.quad .Ll\n.quad .Ls\n.long .Ll - .Ls\n.long .Ls - .Ll\n.Ll:\nret\n";
  auto gnu = assemble_with_gnu_as(source, kBase);
  ASSERT_TRUE(gnu) << gnu.error().message();
  ASSERT_EQ(code.code_size, gnu->size());
  EXPECT_EQ(hex(code.bytes.data(), code.code_size), hex(gnu->data(), gnu->size()));
}

// What each patch-site kind must look like.
struct SiteCase {
  const char* what;
  PatchSiteKind kind;
  std::size_t field_size;
  const char* mnemonic;  // Zydis
  std::function<void(Assembler&, Label)> emit;
};

TEST(EncodingLayout, PatchSiteFieldsAreNaturallyAlignedWhateverPrecedesThem) {
  const std::vector<SiteCase> cases = {
      {"call_site", PatchSiteKind::kCall, 4, "call", [](Assembler& a, Label t) { (void)a.call_site(t); }},
      {"jmp_site", PatchSiteKind::kJump, 4, "jmp", [](Assembler& a, Label t) { (void)a.jmp_site(t); }},
      {"mov_imm32_site eax", PatchSiteKind::kImm32, 4, "mov",
       [](Assembler& a, Label) { (void)a.mov_imm32_site(eax, 7); }},
      {"mov_imm32_site r13d", PatchSiteKind::kImm32, 4, "mov",
       [](Assembler& a, Label) { (void)a.mov_imm32_site(r13d, -1); }},
      {"cmp_imm32_site ecx", PatchSiteKind::kImm32, 4, "cmp",
       [](Assembler& a, Label) { (void)a.cmp_imm32_site(ecx, 1); }},
      {"cmp_imm32_site eax", PatchSiteKind::kImm32, 4, "cmp",
       [](Assembler& a, Label) { (void)a.cmp_imm32_site(eax, 100000); }},
      {"cmp_imm32_site r9d", PatchSiteKind::kImm32, 4, "cmp",
       [](Assembler& a, Label) { (void)a.cmp_imm32_site(r9d, -5); }},
      {"mov_imm64_site rax", PatchSiteKind::kImm64, 8, "mov",
       [](Assembler& a, Label) { (void)a.mov_imm64_site(rax, 0x1122334455667788ULL); }},
      {"mov_imm64_site r15", PatchSiteKind::kImm64, 8, "mov",
       [](Assembler& a, Label) { (void)a.mov_imm64_site(r15, 1); }},
      {"static_key enabled", PatchSiteKind::kStaticKey, 4, "jmp",
       [](Assembler& a, Label t) { (void)a.static_key(t, true); }},
      {"static_key disabled", PatchSiteKind::kStaticKey, 4, "nop",
       [](Assembler& a, Label t) { (void)a.static_key(t, false); }},
  };
  for (const SiteCase& c : cases) {
    for (std::size_t before = 0; before < 8; ++before) {
      SCOPED_TRACE(std::string(c.what) + " after " + std::to_string(before) + " bytes");
      Assembler a;
      const Label target = a.new_label();
      a.bind(target);
      for (std::size_t i = 0; i < before; ++i) a.int3();
      c.emit(a, target);
      a.ret();
      const EncodedCode code = encode_or_fail(a);
      ASSERT_EQ(code.sites.size(), 1u);
      const PatchSiteRecord& s = code.sites[0];
      EXPECT_EQ(s.kind, c.kind);
      EXPECT_EQ(s.field_size, c.field_size);
      EXPECT_EQ((kBase + s.field_offset) % c.field_size, 0u) << "field not naturally aligned";
      EXPECT_EQ(s.pad_offset, before);
      EXPECT_LE(s.pad_offset, s.insn_offset);
      expect_all_nops(code, s.pad_offset, s.insn_offset);
      auto d = decode_one(code.bytes.data() + s.insn_offset, code.code_size - s.insn_offset,
                          kBase + s.insn_offset);
      ASSERT_TRUE(d) << d.error().message();
      EXPECT_EQ(d->mnemonic, c.mnemonic) << d->text;
      EXPECT_EQ(d->length, s.insn_size) << d->text;
      // The field is the instruction's last field_size bytes (rel32 / imm32 / imm64).
      EXPECT_EQ(s.field_offset + s.field_size, s.insn_offset + s.insn_size) << d->text;
      const std::uint64_t label_at = kBase + code.label_offsets[target.id];
      const std::uint64_t insn_end = kBase + s.insn_offset + s.insn_size;
      if (c.kind == PatchSiteKind::kCall || c.kind == PatchSiteKind::kJump ||
          (c.kind == PatchSiteKind::kStaticKey && s.enabled)) {
        ASSERT_EQ(d->operands.size(), 1u);
        EXPECT_EQ(d->operands[0].target, label_at) << d->text;
        EXPECT_EQ(insn_end + static_cast<std::uint64_t>(static_cast<std::int64_t>(s.jump_rel32)), label_at);
      }
      if (c.kind == PatchSiteKind::kStaticKey && !s.enabled) {
        EXPECT_EQ(s.insn_size, 5u);
        // The kept-aside jump (E9 + jump_rel32 at the same place) must reach the label.
        EXPECT_EQ(insn_end + static_cast<std::uint64_t>(static_cast<std::int64_t>(s.jump_rel32)), label_at);
      }
      if (c.kind == PatchSiteKind::kImm32 || c.kind == PatchSiteKind::kImm64) {
        ASSERT_EQ(d->operands.size(), 2u);
        std::int64_t field = 0;
        if (c.field_size == 4) {
          std::int32_t v;
          std::memcpy(&v, code.bytes.data() + s.field_offset, 4);
          field = v;
        } else {
          std::memcpy(&field, code.bytes.data() + s.field_offset, 8);
        }
        const std::uint64_t mask = c.field_size == 4 ? 0xffffffffULL : ~0ULL;
        EXPECT_EQ(static_cast<std::uint64_t>(d->operands[1].immediate) & mask,
                  static_cast<std::uint64_t>(field) & mask)
            << d->text;
      }
    }
  }
}

TEST(EncodingLayout, ConstantsAreAlignedDeduplicatedAndAddressedByTheirLabel) {
  Assembler a;
  const Label c1 = a.constant_f64(1.5);
  const Label c2 = a.constant_f64(1.5);
  const Label c3 = a.constant_u64(0xfeedfacecafebeefULL);
  a.movsd(xmm0, qword_ptr(c1));
  a.mov(rax, qword_ptr(c3));
  a.ret();
  const EncodedCode code = encode_or_fail(a);
  EXPECT_EQ(code.label_offsets[c1.id], code.label_offsets[c2.id]) << "equal constants not shared";
  for (Label l : {c1, c3}) {
    const std::uint32_t at = code.label_offsets[l.id];
    ASSERT_LE(at + 8u, code.bytes.size());
    EXPECT_EQ((kBase + at) % 8, 0u) << "constant not 8-byte aligned";
    EXPECT_GE(at, code.code_size) << "constant inside the instructions";
  }
  double d;
  std::memcpy(&d, code.bytes.data() + code.label_offsets[c1.id], 8);
  EXPECT_EQ(d, 1.5);
  std::uint64_t u;
  std::memcpy(&u, code.bytes.data() + code.label_offsets[c3.id], 8);
  EXPECT_EQ(u, 0xfeedfacecafebeefULL);
  // The loads reach them.
  auto movsd = decode_one(code.bytes.data(), code.code_size, kBase);
  ASSERT_TRUE(movsd);
  ASSERT_EQ(movsd->operands.size(), 2u);
  EXPECT_EQ(kBase + movsd->length + static_cast<std::uint64_t>(movsd->operands[1].displacement),
            kBase + code.label_offsets[c1.id]);
}

}  // namespace
}  // namespace jitkit::x64::test_util
