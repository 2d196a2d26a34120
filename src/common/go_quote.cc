#include "common/go_quote.h"

#include <string>
#include <string_view>

#include "common/hex.h"

namespace discovery {
namespace {

// Whether strconv.Quote writes the non-ASCII code point `cp` as it is (the approximation the
// header describes).
bool Printable(char32_t cp) {
  return !(cp <= 0x9f || cp == 0xad || (cp >= 0x200b && cp <= 0x200f) ||
           (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2064) || cp == 0xfeff ||
           (cp >= 0xfff9 && cp <= 0xfffb));
}

}  // namespace

std::string GoQuote(std::string_view s) {
  std::string out;
  AppendGoQuoted(
      s, out,
      [](char32_t cp, std::string_view bytes, std::string& quoted) {
        if (cp == '\a') {
          quoted += "\\a";
        } else if (cp == '\v') {
          quoted += "\\v";
        } else if (cp < 0x20 || cp == 0x7f) {
          quoted += "\\x";
          AppendLowerHex(cp, 2, quoted);
        } else if (cp < 0x80 || Printable(cp)) {
          quoted += bytes;
        } else if (cp > 0xffff) {
          quoted += "\\U";
          AppendLowerHex(cp, 8, quoted);
        } else {
          quoted += "\\u";
          AppendLowerHex(cp, 4, quoted);
        }
      },
      // Invalid bytes are written as \xNN one at a time.
      [](unsigned char byte, std::string& quoted) {
        quoted += "\\x";
        AppendLowerHex(byte, 2, quoted);
      });
  return out;
}

}  // namespace discovery
