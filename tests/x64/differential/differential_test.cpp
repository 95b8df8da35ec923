// Differential encoding test of the x64 Assembler against GNU as (binutils) and Zydis.
//
// Each TEST enumerates one family of instruction forms (forms.cpp), encodes every instance with
// jitkit's Assembler and with `as --64`, and requires, for every instance: identical bytes,
// Zydis decoding jitkit's bytes as exactly the intended instruction, and one instruction per
// Assembler call (instance.h). It also requires the Assembler to refuse, with a sticky error,
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

#include "x64/differential/forms.h"
#include "x64/differential/gnu_as.h"

namespace jitkit::x64::testing {
namespace {

std::size_t g_total_compared = 0;
std::size_t g_total_refusals = 0;

void append_to_mismatch_file(const std::string& family, const std::vector<Mismatch>& ms) {
  const char* path = std::getenv("JITKIT_ASM_MISMATCH_FILE");
  if (path == nullptr || *path == '\0' || ms.empty()) return;
  std::ofstream out(path, std::ios::app);
  for (const Mismatch& m : ms) {
    out << "| " << family << " | `" << m.text << "` | `" << m.ours << "` | `" << m.gnu << "` | "
        << m.reason << " |\n";
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
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  g_total_compared += out.compared;
  g_total_refusals += out.refusals_checked;
  std::printf("[ asm-diff ] %-28s %8zu instances compared with GNU as and Zydis, %5zu refusals "
              "checked, %zu mismatches (%.2f s)\n",
              family.c_str(), out.compared, out.refusals_checked, out.mismatches.size(), seconds);
  append_to_mismatch_file(family, out.mismatches);
  constexpr std::size_t kShown = 40;
  for (std::size_t i = 0; i < out.mismatches.size() && i < kShown; ++i) {
    const Mismatch& m = out.mismatches[i];
    ADD_FAILURE() << m.batch << ": `" << m.text << "`\n  ours: " << m.ours << "\n  GNU:  " << m.gnu
                  << "\n  " << m.reason;
  }
  EXPECT_EQ(out.mismatches.size(), 0u) << out.mismatches.size() << " mismatches in " << family
                                       << " (first " << kShown << " shown)";
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
}  // namespace jitkit::x64::testing
