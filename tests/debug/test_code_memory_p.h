// tests/debug/test_code_memory_p.h — code memory for the debug test programs: a jitkit CodeZone
// forced into one of the two shapes that matter to gdb and perf.
//   kDual  ZoneMode::kDualMapped: one memfd mapped twice, MAP_SHARED, written through the
//          read-write view and executed through the read-execute view. perf sees
//          "/memfd:jitkit-test (deleted)"; gdb cannot plant software breakpoints there (the
//          kernel refuses ptrace writes into a shared read-only mapping), so the tests use
//          hardware breakpoints (`hbreak`).
//   kAnon  ZoneMode::kToggled: anonymous private pages, read-write while written, then
//          read-execute: perf's "//anon", where the perf map file applies and `break` works.
// Failures exit the program with status 2 and a message (these are test programs).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "jitkit/code/code_zone.h"

namespace jitkit::debug::test_util {

class TestCodeMemory {
 public:
  enum class Kind { kDual, kAnon };

  TestCodeMemory(Kind kind, std::size_t size) {
    code::ZoneOptions options;
    options.reserve_bytes = size;
    options.name = "jitkit-test";
    options.force_mode = kind == Kind::kDual ? code::ZoneMode::kDualMapped : code::ZoneMode::kToggled;
    auto zone = code::CodeZone::create(options);
    if (!zone) die("create code zone", zone.error().message());
    zone_ = std::move(*zone);
  }

  // Allocates a block for `n` bytes; returns it (exec address and usable size).
  code::CodeBlock reserve(std::size_t n) {
    auto block = zone_->allocate(n);
    if (!block) die("allocate", block.error().message());
    blocks_.push_back(*block);
    return *block;
  }
  void write(const code::CodeBlock& block, const void* bytes, std::size_t n) {
    if (auto s = zone_->write(block.exec, bytes, n); !s) die("write", s.error().message());
  }
  // Makes every block executable (kToggled: read-execute from now on).
  void finish() {
    for (const code::CodeBlock& b : blocks_) {
      if (auto s = zone_->make_executable(b, code::Visibility::kThisThread); !s) {
        die("make_executable", s.error().message());
      }
    }
  }
  code::CodeZone& zone() { return *zone_; }

 private:
  [[noreturn]] static void die(const char* what, const std::string& why) {
    std::fprintf(stderr, "%s: %s\n", what, why.c_str());
    std::exit(2);
  }
  std::unique_ptr<code::CodeZone> zone_;
  std::vector<code::CodeBlock> blocks_;
};

}  // namespace jitkit::debug::test_util
