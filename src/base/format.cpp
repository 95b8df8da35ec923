// Implementation of jitkit/base/format.h.
#include "jitkit/base/format.h"

namespace jitkit {

std::string hex(std::uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char buf[2 + 16];
  char* end = buf + sizeof buf;
  char* p = end;
  do {
    *--p = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  *--p = 'x';
  *--p = '0';
  return std::string(p, end);
}

}  // namespace jitkit
