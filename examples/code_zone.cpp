// examples/code_zone.cpp — the life of one generated function in a code zone.
//
// A code zone is memory for machine code that is never writable and executable at the same
// address. This program creates one, says which mode the machine gave it and why, writes a
// tiny function through the zone's write path, makes it executable, calls it and frees it.
//
// The function, hand-encoded so that the example needs nothing but the code module:
//
//     mov eax, 6        B8 06 00 00 00
//     imul eax, eax, 7  6B C0 07
//     ret               C3
#include <cstdint>
#include <cstdio>
#include <string>

#include "jitkit/code/code_zone.h"

namespace code = jitkit::code;

int main() {
  // 1. A zone. The defaults try dual mapping (memfd, POSIX shm, a temporary file), then
  //    toggled pages; RWX only if ZoneOptions::allow_rwx says so.
  auto made = code::CodeZone::create();
  if (!made) {
    std::fprintf(stderr, "cannot create a code zone: %s\n", made.error().message().c_str());
    return 1;
  }
  code::CodeZone& zone = **made;
  std::printf("mode: %s", std::string(code::mode_name(zone.mode())).c_str());
  if (zone.mode() == code::ZoneMode::kDualMapped) {
    std::printf(" on %s", std::string(code::backing_name(zone.backing())).c_str());
  }
  std::printf("\n");
  for (const std::string& reason : zone.fallback_reasons()) std::printf("  fallback: %s\n", reason.c_str());

  // 2. A block, filled through the write view (the executable address is never writable).
  const std::uint8_t bytes[] = {0xB8, 0x06, 0x00, 0x00, 0x00, 0x6B, 0xC0, 0x07, 0xC3};
  auto block = zone.allocate(sizeof bytes);
  if (!block) {
    std::fprintf(stderr, "allocate: %s\n", block.error().message().c_str());
    return 1;
  }
  if (auto s = zone.write(block->exec, bytes, sizeof bytes); !s) {
    std::fprintf(stderr, "write: %s\n", s.error().message().c_str());
    return 1;
  }

  // 3. Executable for this thread. (Visibility::kOtherThreads before other threads call it.)
  if (auto s = zone.make_executable(*block, code::Visibility::kThisThread); !s) {
    std::fprintf(stderr, "make_executable: %s\n", s.error().message().c_str());
    return 1;
  }

  // 4. Call it like a C function.
  auto fn = reinterpret_cast<int (*)()>(block->exec);
  const int result = fn();
  std::printf("fn() returned %d\n", result);

  // 5. Free it: the zone fills the block with int3 before it hands the memory out again.
  if (auto s = zone.free(*block); !s) {
    std::fprintf(stderr, "free: %s\n", s.error().message().c_str());
    return 1;
  }
  return result == 42 ? 0 : 1;
}
