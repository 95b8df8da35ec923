// Patch sites: whatever offset an instruction starts at, the patchable field lands naturally
// aligned (rel32/imm32 at 4, imm64 at 8), the padding is whole NOP instructions, the record
// describes the instruction exactly, and the field holds the emitted value.
#include <gtest/gtest.h>

#include <cstring>

#include "jitkit/x64/disassemble.h"
#include "test_util_p.h"

namespace jitkit::x64 {
namespace {

enum class Kind { kCall, kJmp, kMovImm32, kMovImm32Rex, kCmpImm32, kCmpImm32Rex, kMovImm64, kKeyOn, kKeyOff };
constexpr Kind kKinds[] = {Kind::kCall,        Kind::kJmp,      Kind::kMovImm32,
                           Kind::kMovImm32Rex, Kind::kCmpImm32, Kind::kCmpImm32Rex,
                           Kind::kMovImm64,    Kind::kKeyOn,    Kind::kKeyOff};

const char* mnemonic(Kind k) {
  switch (k) {
    case Kind::kCall:
      return "call";
    case Kind::kJmp:
    case Kind::kKeyOn:
      return "jmp";
    case Kind::kCmpImm32:
    case Kind::kCmpImm32Rex:
      return "cmp";
    case Kind::kKeyOff:
      return "nop";
    default:
      return "mov";
  }
}

// Emits `lead` bytes (optionally after a relaxable jump, so that the padding becomes a layout
// item), then the site, then the target label; checks the record against the bytes.
void check_site(Kind kind, unsigned lead, bool after_relaxable) {
  SCOPED_TRACE(::testing::Message() << "kind " << static_cast<int>(kind) << " lead " << lead
                                    << (after_relaxable ? " after relaxable jump" : ""));
  Assembler a;
  Label target = a.new_label();
  if (after_relaxable) a.jmp(target);
  if (lead) a.nop(lead);
  PatchSiteId id{};
  std::uint64_t value = 0;
  switch (kind) {
    case Kind::kCall:
      id = a.call_site(target);
      break;
    case Kind::kJmp:
      id = a.jmp_site(target);
      break;
    case Kind::kMovImm32:
      id = a.mov_imm32_site(ecx, 0x11223344);
      value = 0x11223344;
      break;
    case Kind::kMovImm32Rex:
      id = a.mov_imm32_site(r9d, 0x11223344);
      value = 0x11223344;
      break;
    case Kind::kCmpImm32:
      id = a.cmp_imm32_site(eax, 0x55667788);
      value = 0x55667788;
      break;
    case Kind::kCmpImm32Rex:
      id = a.cmp_imm32_site(r12d, 0x55667788);
      value = 0x55667788;
      break;
    case Kind::kMovImm64:
      id = a.mov_imm64_site(r10, 0x0102030405060708);
      value = 0x0102030405060708;
      break;
    case Kind::kKeyOn:
      id = a.static_key(target, true);
      break;
    case Kind::kKeyOff:
      id = a.static_key(target, false);
      break;
  }
  a.nop(3);
  a.bind(target);
  a.ret();
  ASSERT_FALSE(a.error()) << a.error()->message();
  auto e = a.encode(test_util::kBase);
  ASSERT_TRUE(e) << e.error().message();
  ASSERT_EQ(e->sites.size(), 1u);
  ASSERT_EQ(id.index, 0u);
  const PatchSiteRecord& r = e->sites[0];
  const std::uint8_t* code = e->bytes.data();

  EXPECT_EQ(r.field_offset % r.field_size, 0u) << "field at " << r.field_offset;
  EXPECT_EQ((test_util::kBase + r.field_offset) % r.field_size, 0u);
  EXPECT_GE(r.field_offset, r.insn_offset);
  EXPECT_LE(r.field_offset + r.field_size, r.insn_offset + r.insn_size);

  // The padding is whole NOPs that end exactly where the instruction starts.
  std::uint32_t at = r.pad_offset;
  while (at < r.insn_offset) {
    auto d = decode_one(code + at, e->bytes.size() - at, test_util::kBase + at);
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(d->mnemonic, "nop");
    at += d->length;
  }
  EXPECT_EQ(at, r.insn_offset);
  auto insn =
      decode_one(code + r.insn_offset, e->bytes.size() - r.insn_offset, test_util::kBase + r.insn_offset);
  ASSERT_TRUE(insn) << insn.error().message();
  EXPECT_EQ(insn->length, r.insn_size);
  EXPECT_EQ(insn->mnemonic, mnemonic(kind));

  if (value) {
    std::uint64_t field = 0;
    std::memcpy(&field, code + r.field_offset, r.field_size);
    EXPECT_EQ(field, value);
  } else {
    // Jump-like sites: jump_rel32 targets the label, as does the emitted rel32 when enabled.
    std::int64_t expect = static_cast<std::int64_t>(e->label_offsets[target.id]) - (r.insn_offset + 5);
    EXPECT_EQ(r.jump_rel32, expect);
    if (kind != Kind::kKeyOff) {
      std::int32_t field;
      std::memcpy(&field, code + r.field_offset, 4);
      EXPECT_EQ(field, expect);
    }
    EXPECT_EQ(r.enabled, kind != Kind::kKeyOff);
  }
}

TEST(X64PatchSites, FieldAlignedForEveryStartingOffset) {
  for (Kind k : kKinds) {
    for (unsigned lead = 0; lead < 16; ++lead) check_site(k, lead, false);
  }
}

TEST(X64PatchSites, FieldAlignedWhenPaddingIsDecidedAtLayout) {
  for (Kind k : kKinds) {
    for (unsigned lead = 0; lead < 16; ++lead) check_site(k, lead, true);
  }
}

TEST(X64PatchSites, BaseMustHonourRequiredAlignment) {
  Assembler a;
  a.mov_imm64_site(rax, 1);
  EXPECT_GE(a.required_alignment(), 8u);
  auto e = a.encode(test_util::kBase + 4);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message().find("not aligned"), std::string::npos);
}

}  // namespace
}  // namespace jitkit::x64
