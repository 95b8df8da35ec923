// tests/debug/installed_code_test.cpp — registering code installed by install::install() into a
// dual-mapped CodeZone, detecting its frame shape from its instructions, and listing it with
// names (function start, labels, registered callees, host functions).
#include <gtest/gtest.h>

#include <regex>

#include "jitkit/code/code_zone.h"
#include "jitkit/debug/installed_code.h"
#include "jitkit/install/install.h"
#include "jitkit/x64/assembler.h"

namespace jitkit::debug {
namespace {

using namespace jitkit::x64;  // NOLINT: registers read like assembly

extern "C" __attribute__((noinline, used)) int debug_test_host_function(int x) { return x * 2; }

std::unique_ptr<code::CodeZone> dual_zone() {
  code::ZoneOptions options;
  options.reserve_bytes = 1 << 20;
  options.force_mode = code::ZoneMode::kDualMapped;
  auto zone = code::CodeZone::create(options);
  EXPECT_TRUE(zone) << zone.error().message();
  return zone ? std::move(*zone) : nullptr;
}

TEST(DetectFrame, FramePointerPrologueAndEpilogueGiveCfiRows) {
  // push rbp; mov rbp, rsp; mov eax, 1; pop rbp; ret; (second exit) mov eax, 2; leave; ret
  const std::uint8_t code[] = {0x55, 0x48, 0x89, 0xe5, 0xb8, 1, 0, 0,    0,
                               0x5d, 0xc3, 0xb8, 2,    0,    0, 0, 0xc9, 0xc3};
  FrameInfo f = detect_frame(code, sizeof code);
  ASSERT_TRUE(f.has_unwind);
  ASSERT_EQ(f.rows.size(), 7u);
  EXPECT_EQ(f.rows[1].code_offset, 1u);
  EXPECT_EQ(f.rows[1].cfa_offset, 16);
  EXPECT_EQ(f.rows[2].code_offset, 4u);
  EXPECT_EQ(f.rows[2].base, UnwindRow::Base::kRbp);
  EXPECT_EQ(f.rows[3].code_offset, 10u);  // the first ret: frame gone
  EXPECT_EQ(f.rows[3].base, UnwindRow::Base::kRsp);
  EXPECT_EQ(f.rows[3].cfa_offset, 8);
  EXPECT_EQ(f.rows[4].code_offset, 11u);  // second exit path: frame established again
  EXPECT_EQ(f.rows[4].base, UnwindRow::Base::kRbp);
  EXPECT_EQ(f.rows[5].code_offset, 17u);  // the second ret, after leave
  EXPECT_EQ(f.rows[5].cfa_offset, 8);
}

TEST(DetectFrame, LeafCodeAndUnknownShapes) {
  const std::uint8_t leaf[] = {0x8d, 0x47, 0x01, 0xc3};  // lea eax, [rdi+1]; ret
  FrameInfo l = detect_frame(leaf, sizeof leaf);
  ASSERT_TRUE(l.has_unwind);
  ASSERT_EQ(l.rows.size(), 1u);
  EXPECT_EQ(l.rows[0].cfa_offset, 8);
  // sub rsp, 24; add rsp, 24; ret: moves rsp without a frame pointer: not guessed.
  const std::uint8_t sub[] = {0x48, 0x83, 0xec, 0x18, 0x48, 0x83, 0xc4, 0x18, 0xc3};
  EXPECT_FALSE(detect_frame(sub, sizeof sub).has_unwind);
  // Undecodable bytes (a lone 0x0f): no description rather than a wrong one.
  const std::uint8_t bad[] = {0x0f};
  EXPECT_FALSE(detect_frame(bad, sizeof bad).has_unwind);
}

TEST(InstalledCode, RegisteredAndListedWithNamesInADualMappedZone) {
  auto zone = dual_zone();
  ASSERT_NE(zone, nullptr);
  Assembler callee_asm;
  callee_asm.push(rbp);
  callee_asm.mov(rbp, rsp);
  callee_asm.mov(edi, 21);
  callee_asm.call(abs(&debug_test_host_function));
  callee_asm.pop(rbp);
  callee_asm.ret();
  install::InstallOptions callee_opts;
  callee_opts.name = "jit_callee";
  auto callee = install::install(callee_asm, *zone, callee_opts);
  ASSERT_TRUE(callee) << callee.error().message();

  Assembler caller_asm;
  Label again = caller_asm.new_label();
  caller_asm.push(rbp);
  caller_asm.mov(rbp, rsp);
  caller_asm.bind(again);
  caller_asm.call(abs_address(callee->start()));
  caller_asm.pop(rbp);
  caller_asm.ret();
  install::InstallOptions caller_opts;
  caller_opts.name = "jit_caller";
  auto caller = install::install(caller_asm, *zone, caller_opts);
  ASSERT_TRUE(caller) << caller.error().message();
  EXPECT_EQ(caller->entry<int()>()(), 42);

  SymbolBatch batch;
  ASSERT_TRUE(add_installed(batch, *callee));
  ASSERT_TRUE(add_installed(batch, *caller));
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch.symbols()[0].size, callee->code_size());
  EXPECT_EQ(batch.symbols()[0].extent, callee->block().size);
  EXPECT_TRUE(batch.symbols()[0].frame.has_unwind);  // detected frame-pointer code
  EXPECT_EQ(batch.symbols()[0].frame.rows[2].base, UnwindRow::Base::kRbp);
  auto reg = CodeRegistry::global().add(std::move(batch));
  ASSERT_TRUE(reg) << reg.error().message();

  ListingOptions opts;
  opts.labels.emplace_back(caller->label_address(again), "again");
  std::string text = listing(*caller, opts);
  SCOPED_TRACE(text);
  EXPECT_EQ(text.rfind("jit_caller:", 0), 0u);
  EXPECT_NE(text.find("again:"), std::string::npos);
  EXPECT_NE(text.find("push rbp"), std::string::npos);
  EXPECT_NE(text.find("<jit_callee>"), std::string::npos);  // the registered callee by name
  std::string callee_text = listing(*callee);
  SCOPED_TRACE(callee_text);
  // Far from the zone, the host function is called through an address slot; the listing names
  // the slot's target. (Near, it would be a direct `call <debug_test_host_function>`.)
  EXPECT_TRUE(callee_text.find("<slot -> debug_test_host_function>") != std::string::npos ||
              callee_text.find("<debug_test_host_function>") != std::string::npos)
      << "host function not named (is the test linked with -rdynamic?)";

  reg->reset();
  // Unregistered: the callee's address has no name any more.
  std::string after = listing(*caller, opts);
  EXPECT_EQ(after.find("<jit_callee>"), std::string::npos);
  ASSERT_TRUE(zone->free(caller->block()));
  ASSERT_TRUE(zone->free(callee->block()));
}

TEST(InstalledCode, UnnamedCodeIsRefusedWithAClearError) {
  auto zone = dual_zone();
  ASSERT_NE(zone, nullptr);
  Assembler a;
  a.ret();
  auto code = install::install(a, *zone);
  ASSERT_TRUE(code);
  SymbolBatch batch;
  Status s = add_installed(batch, *code);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("has no name"), std::string::npos);
  EXPECT_TRUE(add_installed(batch, *code, std::nullopt, "named_here"));
  ASSERT_TRUE(zone->free(code->block()));
}

}  // namespace
}  // namespace jitkit::debug
