#include "common/utf8.h"

namespace discovery {

std::optional<Utf8Rune> DecodeUtf8(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) {
    return Utf8Rune{.code_point = lead, .length = 1};
  }
  // The bounds of the second byte rule out overlong forms, surrogates and values past U+10FFFF.
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  char32_t code_point = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    code_point = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    code_point = lead & 0x0F;
    if (lead == 0xE0) {
      low = 0xA0;
    } else if (lead == 0xED) {
      high = 0x9F;
    }
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    code_point = lead & 0x07;
    if (lead == 0xF0) {
      low = 0x90;
    } else if (lead == 0xF4) {
      high = 0x8F;
    }
  } else {
    return std::nullopt;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) {
    return std::nullopt;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) {
      return std::nullopt;
    }
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  return Utf8Rune{.code_point = code_point, .length = length};
}

bool IsValidUtf8(std::string_view text) {
  while (!text.empty()) {
    const std::optional<Utf8Rune> rune = DecodeUtf8(text);
    if (!rune.has_value()) {
      return false;
    }
    text.remove_prefix(rune->length);
  }
  return true;
}

}  // namespace discovery
