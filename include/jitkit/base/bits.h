// jitkit/base/bits.h — small integer and alignment helpers shared by the layers above.
//
// Everything here is constexpr and branch-light: the assembler calls these on every operand,
// the code-zone allocator on every allocation.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace jitkit {

// True if `x` is a power of two (0 is not).
constexpr bool is_power_of_two(std::uint64_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }

// Rounds `x` up / down to a multiple of `alignment`, which must be a power of two.
constexpr std::uint64_t align_up(std::uint64_t x, std::uint64_t alignment) noexcept {
  return (x + alignment - 1) & ~(alignment - 1);
}
constexpr std::uint64_t align_down(std::uint64_t x, std::uint64_t alignment) noexcept {
  return x & ~(alignment - 1);
}
constexpr bool is_aligned(std::uint64_t x, std::uint64_t alignment) noexcept {
  return (x & (alignment - 1)) == 0;
}

// True if the signed value `v` survives a round trip through an N-bit two's-complement field.
template <unsigned N>
constexpr bool fits_signed(std::int64_t v) noexcept {
  static_assert(N > 0 && N <= 64);
  if constexpr (N == 64) {
    return true;
  } else {
    return v >= -(std::int64_t{1} << (N - 1)) && v < (std::int64_t{1} << (N - 1));
  }
}

// True if the unsigned value `v` fits in N bits.
template <unsigned N>
constexpr bool fits_unsigned(std::uint64_t v) noexcept {
  static_assert(N > 0 && N <= 64);
  if constexpr (N == 64) {
    return true;
  } else {
    return v < (std::uint64_t{1} << N);
  }
}

// The distance `to - from` as a signed 64-bit value, for rel32 reach checks.
constexpr std::int64_t signed_distance(std::uint64_t from, std::uint64_t to) noexcept {
  return static_cast<std::int64_t>(to - from);
}

}  // namespace jitkit
