// tests/install/far_memory_p.h — host memory placed at chosen distances from a code zone.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "jitkit/code/code_zone.h"

namespace jitkit::install::test_util {

// One mapping at a fixed address (MAP_FIXED_NOREPLACE: never clobbers an existing mapping).
class FixedMapping {
 public:
  FixedMapping() = default;
  FixedMapping(const FixedMapping&) = delete;
  FixedMapping& operator=(const FixedMapping&) = delete;
  ~FixedMapping() {
    if (addr_) munmap(addr_, len_);
  }
  // Maps `len` read-write bytes at exactly `addr`; false if the range is taken or refused.
  bool map_at(std::uintptr_t addr, std::size_t len) {
    void* p = mmap(reinterpret_cast<void*>(addr), len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) return false;
    if (p != reinterpret_cast<void*>(addr)) {  // kernels before 4.17 treat the flag as a hint
      munmap(p, len);
      return false;
    }
    addr_ = p;
    len_ = len;
    return true;
  }
  // Maps `len` bytes below 2 GiB (MAP_32BIT), anywhere there.
  bool map_low(std::size_t len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (p == MAP_FAILED) return false;
    addr_ = p;
    len_ = len;
    return true;
  }
  // Turns the mapping into a host "function": copies `code` to its start and makes it RX.
  bool make_function(const std::uint8_t* code, std::size_t n) {
    std::memcpy(addr_, code, n);
    return mprotect(addr_, len_, PROT_READ | PROT_EXEC) == 0;
  }
  std::uintptr_t address() const { return reinterpret_cast<std::uintptr_t>(addr_); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(addr_);
  }

 private:
  void* addr_ = nullptr;
  std::size_t len_ = 0;
};

inline std::uint64_t distance(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : b - a; }

// Host memory below 2 GiB (fits a sign-extended disp32).
inline bool map_low(FixedMapping& m, std::size_t len = 4096) {
  for (std::uintptr_t a : {0x10000000ul, 0x20000000ul, 0x30000000ul, 0x48000000ul}) {
    if (m.map_at(a, len)) return true;
  }
  return m.map_low(len);
}

// Host memory above 4 GiB and more than 2 GiB (here: at least 64 GiB) from every byte of `zone`.
inline bool map_far(FixedMapping& m, const code::CodeZone& zone, std::size_t len = 4096) {
  constexpr std::uint64_t kMinDistance = std::uint64_t{64} << 30;
  for (std::uintptr_t a :
       {0x100000000000ul, 0x200000000000ul, 0x3f0000000000ul, 0x600000000000ul, 0x10000000000ul}) {
    if (distance(a, zone.begin()) < kMinDistance || distance(a, zone.zone_end()) < kMinDistance) continue;
    if (m.map_at(a, len)) return true;
  }
  return false;
}

}  // namespace jitkit::install::test_util
