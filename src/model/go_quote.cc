#include "model/go_quote.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace discovery::model_internal {

std::string GoQuote(std::string_view s) {
  constexpr std::string_view kLowerHex = "0123456789abcdef";
  std::string out = "\"";
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += kLowerHex[c >> 4];
            out += kLowerHex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence; invalid bytes are written as \xNN one at a time.
    std::size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    }
    bool valid = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) {
        valid = false;
      } else {
        cp = (cp << 6) | (cc & 0x3f);
      }
    }
    if (valid) {
      const uint32_t min_cp = len == 2 ? 0x80 : (len == 3 ? 0x800 : 0x10000);
      valid = cp >= min_cp && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (!valid) {
      out += "\\x";
      out += kLowerHex[c >> 4];
      out += kLowerHex[c & 0xf];
      ++i;
      continue;
    }
    const bool printable = !(cp <= 0x9f || cp == 0xad || (cp >= 0x200b && cp <= 0x200f) ||
                             (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) ||
                             cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb));
    if (printable) {
      out.append(s.substr(i, len));
    } else {
      const bool wide = cp > 0xffff;
      out += wide ? "\\U" : "\\u";
      for (int shift = wide ? 28 : 12; shift >= 0; shift -= 4) {
        out += kLowerHex[(cp >> shift) & 0xf];
      }
    }
    i += len;
  }
  out += '"';
  return out;
}

}  // namespace discovery::model_internal
