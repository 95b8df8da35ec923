#include "jitkit/base/bits.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace jitkit {
namespace {

TEST(Bits, PowerOfTwo) {
  EXPECT_FALSE(is_power_of_two(0));
  EXPECT_TRUE(is_power_of_two(1));
  EXPECT_TRUE(is_power_of_two(64));
  EXPECT_FALSE(is_power_of_two(96));
  EXPECT_TRUE(is_power_of_two(std::uint64_t{1} << 63));
}

TEST(Bits, Alignment) {
  EXPECT_EQ(align_up(0, 64), 0u);
  EXPECT_EQ(align_up(1, 64), 64u);
  EXPECT_EQ(align_up(64, 64), 64u);
  EXPECT_EQ(align_up(65, 64), 128u);
  EXPECT_EQ(align_down(127, 64), 64u);
  EXPECT_TRUE(is_aligned(4096, 4096));
  EXPECT_FALSE(is_aligned(4100, 8));
}

TEST(Bits, SignedFitsAtTheEncodingBoundaries) {
  EXPECT_TRUE(fits_signed<8>(127));
  EXPECT_FALSE(fits_signed<8>(128));
  EXPECT_TRUE(fits_signed<8>(-128));
  EXPECT_FALSE(fits_signed<8>(-129));
  EXPECT_TRUE(fits_signed<32>(std::numeric_limits<std::int32_t>::max()));
  EXPECT_FALSE(fits_signed<32>(std::int64_t{std::numeric_limits<std::int32_t>::max()} + 1));
  EXPECT_TRUE(fits_signed<32>(std::numeric_limits<std::int32_t>::min()));
  EXPECT_FALSE(fits_signed<32>(std::int64_t{std::numeric_limits<std::int32_t>::min()} - 1));
  EXPECT_TRUE(fits_signed<64>(std::numeric_limits<std::int64_t>::min()));
}

TEST(Bits, UnsignedFits) {
  EXPECT_TRUE(fits_unsigned<8>(255));
  EXPECT_FALSE(fits_unsigned<8>(256));
  EXPECT_TRUE(fits_unsigned<32>(0xffffffffu));
  EXPECT_FALSE(fits_unsigned<32>(0x100000000u));
}

TEST(Bits, SignedDistanceWrapsCorrectly) {
  EXPECT_EQ(signed_distance(0x1000, 0x800), -0x800);
  EXPECT_EQ(signed_distance(0x7fff0000'00000000u, 0x7fff0000'00001000u), 0x1000);
}

}  // namespace
}  // namespace jitkit
