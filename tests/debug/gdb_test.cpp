// tests/debug/gdb_test.cpp — gdb, in batch mode, sees jitkit's generated code through the GDB JIT
// interface: breakpoints by JIT function name, backtraces through JIT frames that reach main
// (including a frame only the emitted CFI can unwind), unregistration, rseq descriptor symbols.
//
// The program under test is jit_frames_program.cpp. "dual" runs the code from a memfd
// read-execute view (software breakpoints cannot be planted in a shared read-only mapping, so
// breakpoints on JIT code there are `hbreak`); "anon" runs it from anonymous pages (`break`).
#include <gtest/gtest.h>

#include <string>

#include "debug/tool_runner_p.h"

namespace jitkit::debug {
namespace {

using test_util::CommandResult;
using test_util::find_group;
using test_util::first_backtrace;
using test_util::require_tool;
using test_util::run_command;

std::string gdb_on(const std::string& program, const std::string& program_args, const std::string& commands);

std::string gdb(const std::string& program_args, const std::string& commands) {
  return gdb_on(JITKIT_DEBUG_FRAMES_PROGRAM, program_args, commands);
}

std::string gdb_on(const std::string& program, const std::string& program_args, const std::string& commands) {
  // LeakSanitizer cannot run under ptrace: sanitizer builds (make asan) would fail the program
  // at exit for that reason alone.
  std::string cmd =
      "env -u DEBUGINFOD_URLS ASAN_OPTIONS=detect_leaks=0 timeout 120 gdb -batch -nx "
      "-ex 'set pagination off' "
      "-ex 'set breakpoint pending on' " +
      commands + " --args " + program + " " + program_args;
  CommandResult r = run_command(cmd);
  return r.output;
}

// Whether gdb can set hardware breakpoints in this machine. Some virtual machines expose no debug
// registers to the guest; gdb then answers every `hbreak` with "No hardware breakpoint support
// in the target", and a test of breakpoints in read-only shared code (where only hardware
// breakpoints can work) has nothing to check: it reports itself skipped with that reason.
bool hardware_breakpoints_available() {
  static const bool available = [] {
    const std::string out = gdb_on(JITKIT_DEBUG_FRAMES_PROGRAM, "anon", "-ex 'hbreak main' -ex run");
    return out.find("No hardware breakpoint support") == std::string::npos;
  }();
  return available;
}

constexpr const char* kNoHardwareBreakpoints =
    "gdb reports no hardware breakpoint support in this machine (a VM without debug registers); "
    "breakpoints in read-only shared code need them";

TEST(GdbJit, BacktraceFromHostCallbackReachesMainThroughJitFramesInDualMappedCode) {
  if (!require_tool("gdb", "gdb")) return;
  std::string out = gdb("dual", "-ex 'break host_callback' -ex run -ex bt -ex continue");
  std::string bt = first_backtrace(out);
  SCOPED_TRACE(out);
  // jit_middle has no frame pointer: only its CFI row "CFA = rsp+32" gets gdb to jit_outer.
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#0 +host_callback \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#1 +0x[0-9a-f]+ in jit_inner \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#2 +0x[0-9a-f]+ in jit_middle \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#3 +0x[0-9a-f]+ in jit_outer \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#4 +0x[0-9a-f]+ in main \()"))) << bt;
  EXPECT_NE(out.find("result=42,41,7"), std::string::npos);
}

TEST(GdbJit, WithoutCfiTheFramePointerlessFrameBreaksTheBacktrace) {
  // The control experiment for the test above: the same program with jit_middle registered
  // without unwind rows. gdb's own prologue analysis takes `sub rsp, 24` code for frameless,
  // reads a wrong return address and never reaches jit_outer: the CFI is what does it.
  // The wrong address is the word at jit_middle's rsp, which jit_middle itself sets to the
  // poison 0x0badc0de (and the next one to 0), so what gdb finds does not depend on what earlier
  // calls left on the stack (jit_frames_program.cpp).
  if (!require_tool("gdb", "gdb")) return;
  std::string out = gdb("dual nocfi", "-ex 'break host_callback' -ex run -ex bt");
  std::string bt = first_backtrace(out);
  SCOPED_TRACE(out);
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#2 +0x[0-9a-f]+ in jit_middle \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#3 +0x0*badc0de in \?\? \(\))"))) << bt;
  // (Garbage frames may still mention jit_outer's address as an argument value; what must be
  // missing is a frame IN jit_outer.)
  EXPECT_FALSE(std::regex_search(bt, std::regex(R"(#\d+ +0x[0-9a-f]+ in jit_outer \(\))"))) << bt;
}

TEST(GdbJit, SoftwareBreakpointByJitNameInAnonymousCodeAndBacktraceToMain) {
  if (!require_tool("gdb", "gdb")) return;
  // Pending until the JIT object is registered; gdb resolves it then.
  std::string out = gdb("anon", "-ex 'break jit_inner' -ex run -ex bt");
  std::string bt = first_backtrace(out);
  SCOPED_TRACE(out);
  EXPECT_NE(out.find("Breakpoint 1, "), std::string::npos);
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#0 +0x[0-9a-f]+ in jit_inner \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#1 +0x[0-9a-f]+ in jit_middle \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#2 +0x[0-9a-f]+ in jit_outer \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#3 +0x[0-9a-f]+ in main \()"))) << bt;
}

TEST(GdbJit, HardwareBreakpointByJitNameInDualMappedCodeAndLeafBacktrace) {
  if (!require_tool("gdb", "gdb")) return;
  if (!hardware_breakpoints_available()) GTEST_SKIP() << kNoHardwareBreakpoints;
  std::string out = gdb("dual",
                        "-ex 'hbreak jit_leaf' -ex 'hbreak jit_inner' -ex run -ex bt "
                        "-ex continue -ex bt");
  SCOPED_TRACE(out);
  // jit_leaf runs first (from main): leaf CFI, CFA = rsp+8.
  std::string bt1 = first_backtrace(out);
  EXPECT_TRUE(std::regex_search(bt1, std::regex(R"(#0 +0x[0-9a-f]+ in jit_leaf \(\))"))) << bt1;
  EXPECT_TRUE(std::regex_search(bt1, std::regex(R"(#1 +0x[0-9a-f]+ in main \()"))) << bt1;
  std::size_t second = out.find("in jit_inner ()");
  ASSERT_NE(second, std::string::npos);
  std::string bt2 = first_backtrace(out.substr(second - 40));
  EXPECT_TRUE(std::regex_search(bt2, std::regex(R"(#0 +0x[0-9a-f]+ in jit_inner \(\))"))) << bt2;
  EXPECT_TRUE(std::regex_search(bt2, std::regex(R"(#3 +0x[0-9a-f]+ in main \()"))) << bt2;
}

TEST(GdbJit, NamesDisappearWhenTheRegistrationIsReleased) {
  if (!require_tool("gdb", "gdb")) return;
  std::string out = gdb("dual",
                        "-ex 'break host_callback' -ex 'break after_unregister' -ex run "
                        "-ex 'frame 1' -ex 'info symbol $pc' -ex continue "
                        "-ex 'info symbol $rdi'");
  SCOPED_TRACE(out);
  // While registered: the return address in frame 1 is inside jit_inner's .text section.
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(jit_inner \+ 16 in section \.text)")));
  // After Registration::reset(): after_unregister(former address of jit_inner) has no name.
  EXPECT_NE(out.find("No symbol matches $rdi."), std::string::npos);
}

TEST(GdbJit, DebuggerAttachingLaterFindsCodeRegisteredBeforeIt) {
  // gdb reads the whole __jit_debug_descriptor list when it attaches, not only the
  // registrations it sees happen.
  if (!require_tool("gdb", "gdb")) return;
  std::string script = std::string("{ d=$(mktemp -d); ") + JITKIT_DEBUG_FRAMES_PROGRAM +
                       " dual attach > $d/out & pid=$!; "
                       "for i in $(seq 100); do grep -q ready $d/out && break; sleep 0.1; done; "
                       "addr=$(sed -n 's/^jit_inner=//p' $d/out); echo \"attach_addr=$addr\"; "
                       "env -u DEBUGINFOD_URLS timeout 60 gdb -batch -nx -p $pid -ex \"info symbol $addr\" "
                       "-ex \"info symbol $addr+4\"; "
                       "kill $pid; wait $pid; rm -rf $d; }";
  CommandResult r = run_command(script);
  SCOPED_TRACE(r.output);
  ASSERT_FALSE(find_group(r.output, R"(attach_addr=(0x[0-9a-f]+))").empty());
  EXPECT_NE(r.output.find("jit_inner in section .text"), std::string::npos);
  EXPECT_NE(r.output.find("jit_inner + 4 in section .text"), std::string::npos);
}

TEST(GdbJit, RseqDescriptorAndLabelsAreNamedSymbols) {
  if (!require_tool("gdb", "gdb")) return;
  std::string out = gdb("dual",
                        "-ex 'break host_callback' -ex run "
                        "-ex 'printf \"cs=%p\\n\", &__rseq_cs_demo' "
                        "-ex 'printf \"start=%p\\n\", &__rseq_start_demo' "
                        "-ex 'printf \"commit=%p\\n\", &__rseq_commit_demo' "
                        "-ex 'printf \"abort=%p\\n\", &__rseq_abort_demo' "
                        "-ex 'printf \"fn=%p\\n\", &jit_rseq_demo' "
                        "-ex 'x/4gx &__rseq_cs_demo'");
  SCOPED_TRACE(out);
  std::string cs_printed = find_group(out, R"(\nrseq_cs=(0x[0-9a-f]+))");
  std::string cs = find_group(out, R"(\ncs=(0x[0-9a-f]+))");
  std::string fn = find_group(out, R"(\nfn=(0x[0-9a-f]+))");
  ASSERT_FALSE(cs_printed.empty());
  ASSERT_FALSE(fn.empty());
  EXPECT_EQ(cs, cs_printed);
  unsigned long f = std::stoul(fn, nullptr, 16);
  EXPECT_EQ(std::stoul(find_group(out, R"(\nstart=(0x[0-9a-f]+))"), nullptr, 16), f);
  EXPECT_EQ(std::stoul(find_group(out, R"(\ncommit=(0x[0-9a-f]+))"), nullptr, 16), f + 5);
  EXPECT_EQ(std::stoul(find_group(out, R"(\nabort=(0x[0-9a-f]+))"), nullptr, 16), f + 10);
  // The descriptor's memory as gdb reads it: version/flags 0, then start_ip = the function.
  std::string start_ip = find_group(out, R"(<__rseq_cs_demo>:\s+0x0+\s+(0x[0-9a-f]+))");
  if (start_ip.empty()) start_ip = find_group(out, R"(:\s+0x0+\s+(0x[0-9a-f]+)\n)");
  ASSERT_FALSE(start_ip.empty());
  EXPECT_EQ(std::stoul(start_ip, nullptr, 16), f);
}

}  // namespace
}  // namespace jitkit::debug

namespace jitkit::debug {
namespace {

std::uint64_t hex_value(const std::string& text, const std::string& pattern) {
  std::string v = find_group(text, pattern);
  return v.empty() ? 0 : std::stoull(v, nullptr, 16);
}

TEST(GdbJit, RseqSectionEmittedAtRunTimeIsNamedAndBreakableByItsLabels) {
  // rseq::JitCounterAdd emits a per-CPU add as a critical section with its descriptor in the
  // zone's data; registered with add_installed() + add_rseq_section(), gdb can print the
  // descriptor by name, break at the section's start label and backtrace to main.
  if (!require_tool("gdb", "gdb")) return;
  std::string out = gdb_on(JITKIT_DEBUG_RSEQ_JIT_PROGRAM, "",
                           "-ex 'break rseq_sections_registered' -ex run "
                           "-ex 'printf \"g_cs=%p\\n\", &__rseq_cs_counter_add' "
                           "-ex 'printf \"g_start=%p\\n\", &__rseq_start_counter_add' "
                           "-ex 'printf \"g_commit=%p\\n\", &__rseq_commit_counter_add' "
                           "-ex 'printf \"g_abort=%p\\n\", &__rseq_abort_counter_add' "
                           "-ex 'x/4gx &__rseq_cs_counter_add' "
                           "-ex 'info symbol __rseq_start_counter_add'");
  SCOPED_TRACE(out);
  ASSERT_NE(out.find("value=100000"), std::string::npos);
  std::uint64_t cs = hex_value(out, R"(\ndescriptor=(0x[0-9a-f]+))");
  std::uint64_t start = hex_value(out, R"(\nstart_ip=(0x[0-9a-f]+))");
  ASSERT_NE(cs, 0u);
  EXPECT_EQ(hex_value(out, R"(\ng_cs=(0x[0-9a-f]+))"), cs);
  EXPECT_EQ(hex_value(out, R"(\ng_start=(0x[0-9a-f]+))"), start);
  EXPECT_EQ(hex_value(out, R"(\ng_commit=(0x[0-9a-f]+))"), hex_value(out, R"(\ncommit_ip=(0x[0-9a-f]+))"));
  EXPECT_EQ(hex_value(out, R"(\ng_abort=(0x[0-9a-f]+))"), hex_value(out, R"(\nabort_ip=(0x[0-9a-f]+))"));
  // gdb reads the live descriptor under its name: version/flags 0, then start_ip.
  EXPECT_EQ(hex_value(out, R"(<__rseq_cs_counter_add>:\s+0x0+\s+(0x[0-9a-f]+))"), start);
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(jit_counter_add \+ \d+ in section \.text)")));

  if (!hardware_breakpoints_available()) {
    GTEST_SKIP() << "the descriptor and labels were checked; the breakpoint at the start label was not: "
                 << kNoHardwareBreakpoints;
  }
  std::string bt_out =
      gdb_on(JITKIT_DEBUG_RSEQ_JIT_PROGRAM, "", "-ex 'hbreak __rseq_start_counter_add' -ex run -ex bt");
  std::string bt = first_backtrace(bt_out);
  SCOPED_TRACE(bt_out);
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(#0 +0x[0-9a-f]+ in jit_counter_add \(\))"))) << bt;
  EXPECT_TRUE(std::regex_search(bt, std::regex(R"(in main \()"))) << bt;
}

}  // namespace
}  // namespace jitkit::debug
