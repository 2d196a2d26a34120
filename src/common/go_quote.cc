#include "common/go_quote.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace discovery {

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
    // Invalid bytes are written as \xNN one at a time.
    const std::optional<Utf8Rune> rune = DecodeUtf8(s.substr(i));
    if (!rune.has_value()) {
      out += "\\x";
      out += kLowerHex[c >> 4];
      out += kLowerHex[c & 0xf];
      ++i;
      continue;
    }
    const char32_t cp = rune->code_point;
    const std::size_t len = rune->length;
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

}  // namespace discovery
