// jitkit::hex: one spelling of numbers and addresses in every message.
#include "jitkit/base/format.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace {

TEST(Hex, ZeroKeepsItsPrefix) { EXPECT_EQ(jitkit::hex(0), "0x0"); }

TEST(Hex, LowerCaseWithoutPadding) {
  EXPECT_EQ(jitkit::hex(0xabcU), "0xabc");
  EXPECT_EQ(jitkit::hex(0x10U), "0x10");
}

TEST(Hex, FullSixtyFourBits) {
  EXPECT_EQ(jitkit::hex(~std::uint64_t{0}), "0xffffffffffffffff");
  EXPECT_EQ(jitkit::hex(std::uint64_t{1} << 63), "0x8000000000000000");
}

TEST(Hex, PointersPrintTheirAddress) {
  int x = 0;
  EXPECT_EQ(jitkit::hex(&x), jitkit::hex(reinterpret_cast<std::uintptr_t>(&x)));
  const char* p = nullptr;
  EXPECT_EQ(jitkit::hex(p), "0x0");
}

}  // namespace
