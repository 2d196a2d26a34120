// String concatenation for the model module. Debian's abseil has its own absl::string_view
// (not an alias of std::string_view), so absl::StrCat does not take std::string_view
// arguments; this helper accepts both views, std::string and C strings.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace discovery::model_internal {

inline std::string_view ToView(std::string_view s) { return s; }
inline std::string_view ToView(const std::string& s) { return s; }
inline std::string_view ToView(const char* s) { return s; }
inline std::string_view ToView(absl::string_view s) { return {s.data(), s.size()}; }

// Concatenates `parts` (strings and string views only: format numbers with std::to_string).
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  out.reserve((ToView(parts).size() + ... + 0));
  (out.append(ToView(parts)), ...);
  return out;
}

}  // namespace discovery::model_internal
