// tests/code/code_functions_p.h — tiny hand-encoded x86-64 functions for the code-zone tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace jitkit::code::test_util {

// mov eax, imm32 ; ret
inline std::vector<std::uint8_t> return_constant(std::uint32_t value) {
  std::vector<std::uint8_t> b = {0xB8, 0, 0, 0, 0, 0xC3};
  std::memcpy(&b[1], &value, 4);
  return b;
}

// mov eax, [rip + disp32] ; ret — loads the 32-bit value at `target` when placed at `at`.
inline std::vector<std::uint8_t> load_rip_relative(const std::uint8_t* at, const void* target) {
  std::vector<std::uint8_t> b = {0x8B, 0x05, 0, 0, 0, 0, 0xC3};
  const auto disp = static_cast<std::int32_t>(reinterpret_cast<std::intptr_t>(target) -
                                              reinterpret_cast<std::intptr_t>(at + 6));
  std::memcpy(&b[2], &disp, 4);
  return b;
}

using IntFn = int (*)();

}  // namespace jitkit::code::test_util
