// JSON string literals written straight into a buffer, byte for byte as nlohmann::json::dump
// writes them (UTF-8 kept as it is, invalid bytes replaced by U+FFFD), without building a json
// value for the common case of printable ASCII.
#pragma once

#include <string>
#include <string_view>

namespace discovery {

// True when `text` is printable ASCII without quotes or backslashes: JSON takes it as it is.
bool IsPlainJsonText(std::string_view text);

// `text` as a quoted JSON string literal, escaped and with invalid UTF-8 replaced, as
// nlohmann::json::dump writes it.
std::string JsonStringLiteral(std::string_view text);

// Appends JsonStringLiteral(text) to `out` (a std::string or fmt's memory buffer).
template <typename Buffer>
void AppendJsonString(std::string_view text, Buffer& out) {
  if (IsPlainJsonText(text)) {
    out.push_back('"');
    out.append(text.data(), text.data() + text.size());
    out.push_back('"');
    return;
  }
  const std::string literal = JsonStringLiteral(text);
  out.append(literal.data(), literal.data() + literal.size());
}

}  // namespace discovery
