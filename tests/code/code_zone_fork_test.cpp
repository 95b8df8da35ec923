// fork(): a child runs the parent's code but can never change it. The inherited zone refuses
// every mutating call with kInvalidState, its write view is absent in the child
// (MADV_DONTFORK), a raw store to where it was faults, and a fresh zone works in the child.
//
// "Absent" means: no mapping of the code object at the write view's address. The address range
// itself is free in the child, so the child's own mappings may land there. Under ThreadSanitizer
// they do: its runtime maps 8 MiB of private anonymous memory in the child right after fork(),
// and the kernel places it in the hole the write view left (an earlier version of these tests
// asked "is anything mapped there?" and failed under TSan for that reason alone).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "code_functions_p.h"
#include "jitkit/code/code_zone.h"
#include "maps_util_p.h"

namespace jitkit::code {
namespace {

using test_util::IntFn;
using test_util::return_constant;

CodeBlock install(CodeZone& zone, std::uint32_t value) {
  const auto code = return_constant(value);
  auto block = zone.allocate(code.size());
  EXPECT_TRUE(block);
  if (!block) return {};
  EXPECT_TRUE(zone.write(block->exec, code.data(), code.size()));
  EXPECT_TRUE(zone.make_executable(*block, Visibility::kThisThread));
  return *block;
}

// Runs `child` in a forked process; returns its exit status (0 = every check passed).
template <typename F>
int in_child(F child) {
  const pid_t pid = fork();
  if (pid == 0) _exit(child());
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

class ForkedChild : public ::testing::TestWithParam<ZoneMode> {};

TEST_P(ForkedChild, RunsParentCodeButCannotChangeIt) {
  ZoneOptions o;
  o.force_mode = GetParam();
  o.reserve_bytes = 1 << 20;
  auto made = CodeZone::create(o);
  ASSERT_TRUE(made) << made.error().message();
  CodeZone& zone = **made;
  const CodeBlock f = install(zone, 31337);
  const std::uintptr_t write_alias = reinterpret_cast<std::uintptr_t>(f.exec) + zone.write_view_delta();

  const int status = in_child([&]() -> int {
    if (reinterpret_cast<IntFn>(f.exec)() != 31337) return 1;  // the RX view is inherited
    auto a = zone.allocate(64);
    if (a || a.error().code() != ErrorCode::kInvalidState) return 2;
    if (a.error().message().find("fork") == std::string::npos) return 3;
    const auto code = return_constant(666);
    if (zone.write(f.exec, code.data(), code.size())) return 4;
    if (zone.writable(f.exec) != nullptr) return 5;
    if (zone.free(f)) return 6;
    if (zone.make_executable(f, Visibility::kThisThread)) return 7;
    if (zone.allocate_data(8, 8, DataAccess::kReadWrite)) return 8;
    if (GetParam() == ZoneMode::kDualMapped) {
      // The write view does not exist in the child: nothing at its address maps the code object.
      const auto maps = test_util::read_maps();
      const test_util::Mapping* rx = test_util::find_mapping(maps, reinterpret_cast<std::uintptr_t>(f.exec));
      const test_util::Mapping* there = test_util::find_mapping(maps, write_alias);
      if (rx == nullptr) return 9;
      if (there != nullptr && (there->shared || test_util::same_object(*there, *rx))) return 9;
    }
    // A child that wants code makes a fresh zone.
    auto fresh = CodeZone::create(o);
    if (!fresh) return 10;
    const CodeBlock g = install(**fresh, 4242);
    if (reinterpret_cast<IntFn>(g.exec)() != 4242) return 11;
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(status)) << "child died with signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "first failed child check (see the numbered returns)";
  // The parent's code and zone are intact and still writable by the parent.
  EXPECT_EQ(reinterpret_cast<IntFn>(f.exec)(), 31337);
  const CodeBlock h = install(zone, 77);
  EXPECT_EQ(reinterpret_cast<IntFn>(h.exec)(), 77);
}

TEST(ForkedChildDual, RawStoreToTheParentsWriteViewFaultsInTheChild) {
  ZoneOptions o;
  o.force_mode = ZoneMode::kDualMapped;
  o.reserve_bytes = 1 << 20;
  auto made = CodeZone::create(o);
  ASSERT_TRUE(made) << made.error().message();
  CodeZone& zone = **made;
  const CodeBlock f = install(zone, 1001);
  std::uint8_t* w = zone.writable(f.exec);
  ASSERT_NE(w, nullptr);
  constexpr int kReusedByChild = 3;
  const int status = in_child([&]() -> int {
    const auto maps = test_util::read_maps();
    const test_util::Mapping* rx = test_util::find_mapping(maps, reinterpret_cast<std::uintptr_t>(f.exec));
    const test_util::Mapping* there = test_util::find_mapping(maps, reinterpret_cast<std::uintptr_t>(w));
    if (rx == nullptr) return 1;
    if (there != nullptr) {
      // The child's own memory took the free range (see the file comment): not the code
      // object, and not ours to scribble on.
      return (there->shared || test_util::same_object(*there, *rx)) ? 2 : kReusedByChild;
    }
    // Would rewrite `mov eax, 1001` to return 0 in the shared object, were the view inherited.
    // Default SIGSEGV action, so that a sanitizer's handler does not turn the fault into exit(1).
    std::signal(SIGSEGV, SIG_DFL);
    std::memset(w + 1, 0, 4);
    return 0;
  });
#if defined(__SANITIZE_THREAD__)
  // TSan's runtime maps memory into the hole in the child before the test body runs.
  if (WIFEXITED(status) && WEXITSTATUS(status) == kReusedByChild) {
    EXPECT_EQ(reinterpret_cast<IntFn>(f.exec)(), 1001);
    return;
  }
#endif
  ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 2)
      << "the code object is mapped at the write view";
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child's store through the parent's write view did not fault (exit "
                                   << (WIFEXITED(status) ? WEXITSTATUS(status) : -1) << ")";
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  EXPECT_EQ(reinterpret_cast<IntFn>(f.exec)(), 1001);
}

INSTANTIATE_TEST_SUITE_P(Modes, ForkedChild, ::testing::Values(ZoneMode::kDualMapped, ZoneMode::kToggled),
                         [](const ::testing::TestParamInfo<ZoneMode>& p) {
                           return p.param == ZoneMode::kDualMapped ? std::string("DualMapped")
                                                                   : std::string("Toggled");
                         });

}  // namespace
}  // namespace jitkit::code
