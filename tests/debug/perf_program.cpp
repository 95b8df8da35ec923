// tests/debug/perf_program.cpp — the program perf_test.cpp profiles with `perf record`.
//
// Installs one hot function, jit_hot_loop (a counted spin loop), registers it with
// jitkit::debug and calls it for about a second. Which perf outputs are written is decided by
// the environment, as a user would do it: JITKIT_PERF_MAP=1 and/or JITKIT_JITDUMP=1
// (+ JITKIT_JITDUMP_DIR).
//
// Usage: perf_program dual|anon [milliseconds]
// Prints "pid=<n>", "perf_map_covers=<0|1>" (whether perf consults the map file for this code)
// and "calls=<n>".
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "debug/test_code_memory_p.h"
#include "jitkit/debug/code_registry.h"
#include "jitkit/debug/perf.h"

using jitkit::debug::test_util::TestCodeMemory;

int main(int argc, char** argv) {
  bool dual = argc < 2 || std::strcmp(argv[1], "anon") != 0;
  long ms = argc >= 3 ? std::atol(argv[2]) : 1000;
  TestCodeMemory mem(dual ? TestCodeMemory::Kind::kDual : TestCodeMemory::Kind::kAnon, 1 << 16);
  // mov ecx, 200000; loop: dec ecx; jnz loop; ret
  const std::uint8_t spin[] = {0xb9, 0x40, 0x0d, 0x03, 0x00, 0xff, 0xc9, 0x75, 0xfc, 0xc3};
  jitkit::code::CodeBlock block = mem.reserve(sizeof spin);
  mem.write(block, spin, sizeof spin);
  mem.finish();
  std::uint8_t* fn = block.exec;
  auto reg = jitkit::debug::CodeRegistry::global().add_function("jit_hot_loop", fn, sizeof spin,
                                                                jitkit::debug::FrameInfo::leaf());
  if (!reg) {
    std::fprintf(stderr, "register: %s\n", reg.error().message().c_str());
    return 1;
  }
  auto covers = jitkit::debug::perf_map_covers(reinterpret_cast<std::uintptr_t>(fn));
  std::printf("pid=%d\nperf_map=%s\njitdump=%s\nperf_map_covers=%d\n", getpid(),
              jitkit::debug::perf_map_path().c_str(), jitkit::debug::jitdump_path().c_str(),
              covers ? static_cast<int>(*covers) : -1);
  auto run = reinterpret_cast<void (*)()>(fn);
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  long calls = 0;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 16; ++i) run();
    calls += 16;
  }
  std::printf("calls=%ld\n", calls);
  return 0;
}
