// UTF-8 as Go's unicode/utf8 reads it: well-formed means no overlong forms, no surrogates and
// nothing above U+10FFFF. Every module that checks or decodes UTF-8 goes through these.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace discovery {

struct Utf8Rune {
  char32_t code_point = 0;
  // Bytes the sequence takes, 1 to 4.
  std::size_t length = 0;
};

// Decodes the sequence at the start of `text`, or returns nullopt when `text` is empty or does
// not start with a well-formed sequence (where Go's utf8.DecodeRuneInString returns RuneError
// with width 1). Thread-safe.
std::optional<Utf8Rune> DecodeUtf8(std::string_view text);

// Returns true when all of `text` is well-formed UTF-8 (Go's utf8.ValidString). Thread-safe.
bool IsValidUtf8(std::string_view text);

}  // namespace discovery
