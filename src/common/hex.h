// Reading hexadecimal digits, as percent-decoding and UUID parsing do.
#pragma once

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

}  // namespace discovery
