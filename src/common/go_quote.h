// Go-style quoting: strconv.Quote for error texts, and the loop it shares with the JSON strings
// that Go's encoding/json writes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace discovery {

// Renders `s` the way Go's strconv.Quote does, so error texts read like Go's. Non-ASCII
// printability is approximated: C1 controls and common invisible format characters are
// escaped, every other valid code point is kept.
std::string GoQuote(std::string_view s);

// The quoting loop of strconv.Quote and of encoding/json's strings, for either style: appends
// `s` to `out` between double quotes, with the short escapes both styles give '"', '\\', '\b',
// '\f', '\n', '\r' and '\t'. Every other code point goes to `rune(code_point, bytes, out)` and
// every byte that starts no well-formed UTF-8 sequence to `invalid(byte, out)`; each appends what
// it was given as its style writes it.
template <typename OnRune, typename OnInvalid>
void AppendGoQuoted(std::string_view s, std::string& out, OnRune rune, OnInvalid invalid) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t length = 1;
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
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
        default:
          rune(char32_t{c}, s.substr(i, 1), out);
      }
    } else if (const std::optional<Utf8Rune> decoded = DecodeUtf8(s.substr(i))) {
      length = decoded->length;
      rune(decoded->code_point, s.substr(i, length), out);
    } else {
      invalid(c, out);
    }
    i += length;
  }
  out += '"';
}

}  // namespace discovery
