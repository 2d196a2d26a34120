// Reading and writing hexadecimal digits, as percent-decoding, UUID parsing and Go-style quoting
// do.
#pragma once

#include <cstdint>
#include <string>

namespace discovery {

// Returns the value (0 to 15) of the hexadecimal digit `c` in either case, or -1 when `c` is not
// one.
constexpr int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Appends the `digits` lowest hexadecimal digits of `value` to `out`, in lower case.
inline void AppendLowerHex(uint32_t value, int digits, std::string& out) {
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) {
    out += "0123456789abcdef"[(value >> shift) & 0xf];
  }
}

}  // namespace discovery
