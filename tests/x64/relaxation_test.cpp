// Randomized check of jump relaxation: random programs of forward and backward jumps, calls,
// NOP filler of every length and alignment directives are encoded, then decoded with Zydis
// instruction by instruction. Every branch must land exactly on its label, every label on an
// instruction boundary, every aligned label on its alignment, and the decoded instructions must
// cover the code exactly. Deterministic seeds; JITKIT_RELAX_ITERATIONS raises the count.
#include <gtest/gtest.h>

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
  }
  // The programs exercise both forms (otherwise this test would prove little).
  EXPECT_GT(short_branches, 1000u);
  EXPECT_GT(near_branches, 1000u);
}

}  // namespace
}  // namespace jitkit::x64
