// Randomized check of jump relaxation: random programs of forward and backward jumps, calls,
// NOP filler of every length and alignment directives are encoded, then decoded with Zydis
// instruction by instruction. Every branch must land exactly on its label, every label on an
// instruction boundary, every aligned label on its alignment, and the decoded instructions must
// cover the code exactly. Deterministic seeds; JITKIT_RELAX_ITERATIONS raises the count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>

#include "jitkit/x64/disassemble.h"
#include "test_util_p.h"

namespace jitkit::x64 {
namespace {

struct Expect {
  std::vector<Label> branch_targets;                // in emission order
  std::vector<std::pair<Label, unsigned>> aligned;  // label, alignment
};

Expect random_program(Assembler& a, std::mt19937& rng) {
  Expect x;
  const unsigned nlabels = 2 + rng() % 24;
  std::vector<Label> labels;
  for (unsigned i = 0; i < nlabels; ++i) labels.push_back(a.new_label());
  std::vector<unsigned> unbound(nlabels);
  for (unsigned i = 0; i < nlabels; ++i) unbound[i] = i;
  std::shuffle(unbound.begin(), unbound.end(), rng);
  const unsigned ops = 20 + rng() % 300;
  for (unsigned op = 0; op < ops || !unbound.empty(); ++op) {
    unsigned r = rng() % 100;
    Label t = labels[rng() % nlabels];
    if (op >= ops || r < 12) {
      if (unbound.empty()) continue;
      if (rng() % 4 == 0) {
        unsigned al = 1u << (rng() % 6);  // 1..32
        a.align(al);
        x.aligned.emplace_back(labels[unbound.back()], al);
      }
      a.bind(labels[unbound.back()]);
      unbound.pop_back();
    } else if (r < 35) {
      a.jcc(static_cast<Cond>(rng() % 16), t);
      x.branch_targets.push_back(t);
    } else if (r < 50) {
      a.jmp(t);
      x.branch_targets.push_back(t);
    } else if (r < 55) {
      a.call(t);
      x.branch_targets.push_back(t);
    } else if (r < 58) {
      a.jmp(t, JumpForm::kNear);
      x.branch_targets.push_back(t);
    } else if (r < 62) {
      a.mov_imm32_site(r9d, 1);
    } else if (r < 90) {
      a.nop(1 + rng() % 15);
    } else {
      // Long filler, so that some jumps must be near.
      unsigned n = 1 + rng() % 12;
      for (unsigned i = 0; i < n; ++i) a.nop(11);
    }
  }
  return x;
}

TEST(X64Relaxation, RandomProgramsBranchExactlyToTheirLabels) {
  int iterations = 300;
  if (const char* env = std::getenv("JITKIT_RELAX_ITERATIONS")) iterations = std::atoi(env);
  std::size_t short_branches = 0, near_branches = 0;
  for (int it = 0; it < iterations; ++it) {
    SCOPED_TRACE(::testing::Message() << "seed " << it);
    std::mt19937 rng(static_cast<unsigned>(it));
    Assembler a;
    Expect x = random_program(a, rng);
    ASSERT_FALSE(a.error()) << a.error()->message();
    auto e = a.encode(test_util::kBase);
    ASSERT_TRUE(e) << e.error().message();

    std::set<std::uint32_t> boundaries;
    std::vector<std::uint64_t> targets;
    std::uint32_t at = 0;
    while (at < e->code_size) {
      boundaries.insert(at);
      auto d = decode_one(e->bytes.data() + at, e->code_size - at, test_util::kBase + at);
      ASSERT_TRUE(d) << "at offset " << at << ": " << d.error().message();
      if (d->mnemonic != "nop" && d->mnemonic != "mov") {
        ASSERT_EQ(d->operands.size(), 1u) << d->text;
        ASSERT_TRUE(d->operands[0].is_relative) << d->text;
        targets.push_back(d->operands[0].target);
        (d->length == 2 ? short_branches : near_branches)++;
      }
      at += d->length;
    }
    ASSERT_EQ(at, e->code_size) << "instructions must cover the code exactly";
    boundaries.insert(at);

    ASSERT_EQ(targets.size(), x.branch_targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
      std::uint32_t off = e->label_offsets[x.branch_targets[i].id];
      EXPECT_EQ(targets[i], test_util::kBase + off) << "branch " << i;
    }
    for (std::uint32_t off : e->label_offsets) {
      EXPECT_TRUE(boundaries.count(off)) << "label at " << off << " is not an instruction boundary";
    }
    for (auto [label, al] : x.aligned) {
      EXPECT_EQ(e->label_offsets[label.id] % al, 0u) << "align " << al;
    }
    for (const PatchSiteRecord& s : e->sites) EXPECT_EQ(s.field_offset % 4, 0u);

    // encode_to lays out the same code into a caller's buffer, with the same records.
    std::vector<std::uint8_t> direct(a.size_upper_bound() + 16, 0xAB);
    EncodedCode records;
    auto written = a.encode_to(test_util::kBase, direct.data(), a.size_upper_bound(), records);
    ASSERT_TRUE(written) << written.error().message();
    ASSERT_EQ(*written, e->bytes.size());
    EXPECT_TRUE(std::equal(e->bytes.begin(), e->bytes.end(), direct.begin())) << "encode_to bytes differ";
    EXPECT_EQ(direct[a.size_upper_bound()], 0xAB) << "encode_to wrote past its capacity";
    EXPECT_TRUE(records.bytes.empty());
    EXPECT_EQ(records.code_size, e->code_size);
    EXPECT_EQ(records.label_offsets, e->label_offsets);
    ASSERT_EQ(records.sites.size(), e->sites.size());
    for (std::size_t i = 0; i < e->sites.size(); ++i) {
      EXPECT_EQ(records.sites[i].field_offset, e->sites[i].field_offset);
      EXPECT_EQ(records.sites[i].pad_offset, e->sites[i].pad_offset);
    }
  }
  // The programs exercise both forms (otherwise this test would prove little).
  EXPECT_GT(short_branches, 1000u);
  EXPECT_GT(near_branches, 1000u);
}

// Host calls, far (address slots after the code) and near, constants and patch sites between
// relaxable jumps: encode_to gives the bytes and records of encode, into a buffer of exactly
// the needed size, and refuses a smaller one or none.
TEST(X64Relaxation, EncodeToWritesWhatEncodeReturnsAndRefusesTooSmallABuffer) {
  constexpr std::uint64_t kFarFunction = 0x7f1234567890;
  constexpr std::uint64_t kNearFunction = test_util::kBase + 0x100000;
  Assembler a;
  Label end = a.new_label(), back = a.new_label();
  a.bind(back);
  for (int i = 0; i < 20; ++i) {
    a.jne(end);
    a.call(abs_address(i % 2 ? kFarFunction : kNearFunction));
    a.mov_imm32_site(eax, i);
    a.movsd(xmm0, qword_ptr(a.constant_f64(i * 0.5)));
    a.jmp(abs_address(kFarFunction + 64));
    a.jl(back);
  }
  a.bind(end);
  a.ret();
  ASSERT_TRUE(a.ok());
  auto e = a.encode(test_util::kBase);
  ASSERT_TRUE(e) << e.error().message();
  std::vector<std::uint8_t> direct(e->bytes.size());
  EncodedCode records;
  auto written = a.encode_to(test_util::kBase, direct.data(), direct.size(), records);
  ASSERT_TRUE(written) << written.error().message();
  EXPECT_EQ(*written, e->bytes.size());
  EXPECT_EQ(direct, e->bytes);
  EXPECT_EQ(records.code_size, e->code_size);
  EXPECT_EQ(records.label_offsets, e->label_offsets);
  ASSERT_EQ(records.host_operands.size(), e->host_operands.size());
  ASSERT_EQ(records.host_operands.size(), 40u);
  for (std::size_t i = 0; i < e->host_operands.size(); ++i) {
    EXPECT_EQ(records.host_operands[i].insn_offset, e->host_operands[i].insn_offset);
    EXPECT_EQ(records.host_operands[i].form, e->host_operands[i].form);
    EXPECT_EQ(records.host_operands[i].text, e->host_operands[i].text);
  }
  EXPECT_EQ(e->host_operands[0].text, "call 0x40100000");
  EXPECT_EQ(e->host_operands[0].form, HostForm::kRipRelative);
  EXPECT_EQ(e->host_operands[1].text, "jmp 0x7f12345678d0");
  EXPECT_EQ(e->host_operands[1].form, HostForm::kAddressSlot);

  auto small = a.encode_to(test_util::kBase, direct.data(), direct.size() - 1, records);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(small.error().message().find("destination has"), std::string::npos) << small.error().message();
  EXPECT_FALSE(a.encode_to(test_util::kBase, nullptr, direct.size(), records));
}

// An Assembler takes the buffers a destroyed one left on its thread: it must start as empty as a
// fresh one, whatever the previous one held, and two alive at once must not share anything.
TEST(X64Relaxation, AssemblerReusingAnEarlierOnesBuffersStartsEmpty) {
  auto busy = [](Assembler& a) {
    Label l = a.new_label();
    a.allow_scratch(r11);
    a.jmp(l);
    a.call(abs_address(0x7f1234567890));
    a.mov_imm64_site(rax, 1);
    a.constant_u64(42);
    a.align(32);
    a.bind(l);
    a.mov(rax, 1 << 20);  // a bad shift would be an error: leave one to see it not carried over
    a.shl(rax, 99);
  };
  for (int round = 0; round < 3; ++round) {
    {
      Assembler first(64);
      busy(first);
      ASSERT_FALSE(first.ok());
    }
    Assembler a(16);
    EXPECT_TRUE(a.ok());
    EXPECT_EQ(a.buffer_size(), 0u);
    EXPECT_EQ(a.site_count(), 0u);
    EXPECT_FALSE(a.scratch());
    EXPECT_EQ(a.size_upper_bound(), 0u);
    EXPECT_EQ(a.required_alignment(), 1u);
    EXPECT_EQ(a.new_label().id, 0u);
    a.ret();
    auto e = a.encode(test_util::kBase);
    ASSERT_TRUE(e) << e.error().message();
    EXPECT_EQ(test_util::hex(e->bytes), "c3");
    EXPECT_TRUE(e->sites.empty());
    EXPECT_TRUE(e->host_operands.empty());
    // A second one alive beside it gets its own buffer.
    Assembler b;
    b.int3();
    a.nop();
    EXPECT_EQ(test_util::hex(test_util::code_bytes(b)), "cc");
    EXPECT_EQ(test_util::hex(test_util::code_bytes(a)), "c3 90");
    Assembler moved(std::move(b));
    EXPECT_EQ(test_util::hex(test_util::code_bytes(moved)), "cc");
  }
}

}  // namespace
}  // namespace jitkit::x64
