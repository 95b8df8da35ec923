// bench/debug/gdb_scaling_program.cpp — registers N functions with the GDB JIT interface in
// batches of B and prints how long that took, wall clock, measured inside the process. Run it
// under gdb (gdb_scaling.sh does): the process is stopped while gdb reads each new object, so
// the time includes gdb's loading work, which is what grows quadratically when every function is
// its own object (B = 1).
//
// Usage: debug_gdb_scaling_program N B [own|merge]   (grouping of the batches, default own)
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "jitkit/debug/code_registry.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s N B\n", argv[0]);
    return 2;
  }
  std::size_t n = std::strtoul(argv[1], nullptr, 10);
  std::size_t b = std::strtoul(argv[2], nullptr, 10);
  if (n == 0 || b == 0) return 2;
  bool merge = argc >= 4 && std::string(argv[3]) == "merge";
  auto grouping = merge ? jitkit::debug::Grouping::kMerge : jitkit::debug::Grouping::kOwnObject;
  // Fake function addresses: reserved, never executed (gdb only reads the symbol objects).
  auto* base = static_cast<std::uint8_t*>(
      mmap(nullptr, n * 64, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (base == MAP_FAILED) return 1;
  std::vector<jitkit::debug::Registration> regs;
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t first = 0; first < n; first += b) {
    jitkit::debug::SymbolBatch batch;
    for (std::size_t i = first; i < first + b && i < n; ++i) {
      batch.add_function("jit_fn_" + std::to_string(i), base + 64 * i, 48,
                         jitkit::debug::FrameInfo::frame_pointer(1, 4, {47}), 64);
    }
    auto reg = jitkit::debug::CodeRegistry::global().add(std::move(batch), grouping);
    if (!reg) {
      std::fprintf(stderr, "%s\n", reg.error().message().c_str());
      return 1;
    }
    regs.push_back(std::move(*reg));
  }
  auto t1 = std::chrono::steady_clock::now();
  double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  std::printf("N=%-6zu batch=%-6zu grouping=%-5s gdb_objects=%-6zu register_ms=%-9.1f "
              "us_per_function=%.2f\n",
              n, b, merge ? "merge" : "own", jitkit::debug::CodeRegistry::global().stats().gdb_objects,
              ms, 1000.0 * ms / static_cast<double>(n));
  return 0;
}
