// Differential encoding test of the x64 Assembler against GNU as (binutils) and Zydis.
//
// Each TEST enumerates one family of instruction forms (forms.cpp), encodes every instance with
// jitkit's Assembler and with `as --64`, and requires, for every instance: identical bytes,
// Zydis decoding jitkit's bytes as exactly the intended instruction, and one instruction per
// Assembler call (instance_p.h). It also requires the Assembler to refuse, with a sticky error,
// every illegal request the family lists (rsp as index, ah beside REX, out-of-range immediates,
// unsized memory, ...). Zero mismatches are allowed.
//
// Each test prints how many instances it compared. The first mismatches are printed in full
// (text, our bytes, GNU bytes, reason); with JITKIT_ASM_MISMATCH_FILE=<path> every mismatch is
// appended to that file as a Markdown table row.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "x64/differential/forms_p.h"
#include "x64/differential/gnu_as_p.h"

namespace jitkit::x64::test_util {
namespace {

std::size_t g_total_compared = 0;
std::size_t g_total_refusals = 0;

void append_to_mismatch_file(const std::string& family, const std::vector<Mismatch>& ms) {
  const char* path = std::getenv("JITKIT_ASM_MISMATCH_FILE");
  if (path == nullptr || *path == '\0' || ms.empty()) return;
  std::ofstream out(path, std::ios::app);
  for (const Mismatch& m : ms) {
    out << "| " << family << " | `" << m.text << "` | `" << m.ours << "` | `" << m.gnu << "` | " << m.reason
        << " |\n";
  }
}

void run_family(const std::string& family, void (*build)(Suite&)) {
  if (!gnu_as_available()) {
    FAIL() << "GNU as / objcopy not found: install binutils (the reference encoder)";
  }
  const auto start = std::chrono::steady_clock::now();
  Suite suite(family);
  build(suite);
  const Suite::Outcome out = suite.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  g_total_compared += out.compared;
  g_total_refusals += out.refusals_checked;
  std::printf(
      "[ asm-diff ] %-28s %8zu instances compared with GNU as and Zydis, %5zu refusals "
      "checked, %zu mismatches (%.2f s)\n",
      family.c_str(), out.compared, out.refusals_checked, out.mismatches.size(), seconds);
  append_to_mismatch_file(family, out.mismatches);
  constexpr std::size_t kShown = 40;
  for (std::size_t i = 0; i < out.mismatches.size() && i < kShown; ++i) {
    const Mismatch& m = out.mismatches[i];
    ADD_FAILURE() << m.batch << ": `" << m.text << "`\n  ours: " << m.ours << "\n  GNU:  " << m.gnu << "\n  "
                  << m.reason;
  }
  EXPECT_EQ(out.mismatches.size(), 0u)
      << out.mismatches.size() << " mismatches in " << family << " (first " << kShown << " shown)";
  // The enumeration must actually have produced work: an empty family would pass vacuously.
  EXPECT_GT(out.compared, 0u);
}

TEST(DifferentialEncoding, MovAllForms) { run_family("mov", mov_forms); }
TEST(DifferentialEncoding, MovAndLeaOverEveryAddressForm) {
  run_family("mov-lea-full-addresses", mov_full_address_forms);
}
TEST(DifferentialEncoding, EveryRegisterWithEveryBaseAndIndex) {
  run_family("rex-combinations", rex_combination_forms);
}
TEST(DifferentialEncoding, AluAllForms) { run_family("alu", alu_forms); }
TEST(DifferentialEncoding, TestAndUnaryForms) { run_family("test-unary", test_and_unary_forms); }
TEST(DifferentialEncoding, ImulAndShiftForms) { run_family("imul-shift", imul_and_shift_forms); }
TEST(DifferentialEncoding, BitForms) { run_family("bit", bit_forms); }
TEST(DifferentialEncoding, ExtendLeaXchgForms) { run_family("extend-lea-xchg", extend_lea_xchg_forms); }
TEST(DifferentialEncoding, ConditionForms) { run_family("setcc-cmovcc", condition_forms); }
TEST(DifferentialEncoding, ControlFlowForms) { run_family("control-flow", control_flow_forms); }
TEST(DifferentialEncoding, AtomicAndMiscForms) { run_family("atomic-misc", atomic_and_misc_forms); }
TEST(DifferentialEncoding, Sse2Forms) { run_family("sse2", sse_forms); }
TEST(DifferentialEncoding, HostAddressForms) { run_family("host-address", host_address_forms); }
TEST(DifferentialEncoding, RandomInterleavingsOfJumpsLabelsAndData) {
  run_family("random-interleavings", random_interleaving_forms);
}

// Prints the total when the binary runs several families in one process.
class TotalReporter : public ::testing::Environment {
 public:
  void TearDown() override {
    std::printf("[ asm-diff ] TOTAL %zu instruction instances compared, %zu refusals checked\n",
                g_total_compared, g_total_refusals);
  }
};
const auto* const kReporter = ::testing::AddGlobalTestEnvironment(new TotalReporter);

}  // namespace
}  // namespace jitkit::x64::test_util

namespace jitkit::x64::test_util {
namespace {

// The comparison itself must be able to fail: feed it instances whose description is wrong on
// purpose and check that each kind of disagreement is reported.
TEST(DifferentialHarness, ReportsByteSemanticAndLengthDisagreements) {
  if (!gnu_as_available()) GTEST_FAIL() << "GNU as not available";
  auto mismatches_of = [](const std::function<void(Batch&)>& build) {
    Batch b("self-test");
    build(b);
    std::vector<Mismatch> out;
    (void)b.check(&out);
    return out;
  };
  auto reg = [](const char* n, int bits) { return reg_op(n, bits); };
  // 1. Bytes: GNU is told to use the 32-bit displacement form, we emit disp8.
  auto bytes = mismatches_of([&](Batch& b) {
    MemSpec m;
    m.size_bytes = 8;
    m.base = 0;
    m.disp = 8;
    Instance in;
    in.mnemonic = "mov";
    in.gnu_prefix = "{disp32}";
    in.ops = {reg("rcx", 64), mem_op(m)};
    b.add(in, [](Assembler& a) { a.mov(rcx, qword_ptr(rax, 8)); });
  });
  ASSERT_EQ(bytes.size(), 1u);
  EXPECT_NE(bytes[0].reason.find("bytes differ"), std::string::npos) << bytes[0].reason;
  // 2. Semantics: the description says rdx, the Assembler is asked for rcx (GNU gets "rdx").
  auto sem = mismatches_of([&](Batch& b) {
    Instance in;
    in.mnemonic = "mov";
    in.ops = {reg("rdx", 64), reg("rax", 64)};
    b.add(in, [](Assembler& a) { a.mov(rcx, rax); });
  });
  ASSERT_GE(sem.size(), 1u);
  EXPECT_NE(sem[0].reason.find("register operand is not rdx"), std::string::npos) << sem[0].reason;
  // 3. One call, two instructions: the appended length disagrees with the decoded one.
  auto len = mismatches_of([&](Batch& b) {
    Instance in;
    in.mnemonic = "ret";
    b.add(in, [](Assembler& a) {
      a.ret();
      a.ret();
    });
  });
  ASSERT_GE(len.size(), 1u);
  EXPECT_NE(len[0].reason.find("appended 2 bytes"), std::string::npos) << len[0].reason;
  // 4. A wrong branch target.
  auto target = mismatches_of([&](Batch& b) {
    const Label l1 = b.bind_new(".Lself1");
    b.data({0x90});
    const Label l2 = b.bind_new(".Lself2");
    b.data({0x90});
    Instance in;
    in.mnemonic = "jmp";
    in.ops = {label_op(l1, ".Lself1")};
    b.add(in, [=](Assembler& a) { a.jmp(l2); });
  });
  ASSERT_GE(target.size(), 1u);
  EXPECT_NE(target[0].reason.find("branch target differs"), std::string::npos) << target[0].reason;
}

}  // namespace
}  // namespace jitkit::x64::test_util
