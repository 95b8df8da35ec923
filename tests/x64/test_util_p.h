// tests/x64/test_util_p.h — helpers for assembler tests: encode at a base and compare bytes.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "jitkit/x64/assembler.h"

namespace jitkit::x64::test_util {

inline constexpr std::uint64_t kBase = 0x40000000;  // a 64-byte-aligned code address

// The instruction bytes (without slots/pool) encoded at `base`; fails the test on error.
inline std::vector<std::uint8_t> code_bytes(const Assembler& a, std::uint64_t base = kBase) {
  auto e = a.encode(base);
  EXPECT_TRUE(e.has_value()) << (e ? "" : e.error().message());
  if (!e) return {};
  return std::vector<std::uint8_t>(e->bytes.begin(),
                                   e->bytes.begin() + static_cast<std::ptrdiff_t>(e->code_size));
}

inline std::string hex(const std::vector<std::uint8_t>& v) {
  std::string s;
  char b[4];
  for (std::uint8_t x : v) {
    std::snprintf(b, sizeof b, "%02x ", x);
    s += b;
  }
  if (!s.empty()) s.pop_back();
  return s;
}

// Bytes of one instruction emitted by `emit`.
template <typename F>
std::string one(F&& emit) {
  Assembler a;
  emit(a);
  if (a.error()) return "error: " + a.error()->message();
  return hex(code_bytes(a));
}

}  // namespace jitkit::x64::test_util
