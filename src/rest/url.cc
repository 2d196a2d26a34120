#include "rest/url.h"

#include <string>
#include <string_view>

#include "absl/status/status.h"

#include "common/format.h"
#include "common/go_quote.h"
#include "common/hex.h"
#include "common/status_macros.h"

namespace discovery::rest {

absl::StatusOr<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string decoded;
  decoded.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      const int high = i + 1 < text.size() ? HexDigitValue(text[i + 1]) : -1;
      const int low = i + 2 < text.size() ? HexDigitValue(text[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return absl::InvalidArgumentError(
            fmt::format("invalid URL escape {}", GoQuote(text.substr(i, 3))));
      }
      decoded += static_cast<char>(high * 16 + low);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      decoded += ' ';
    } else {
      decoded += c;
    }
  }
  return decoded;
}

absl::StatusOr<QueryParams> ParseQuery(std::string_view query) {
  QueryParams params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (piece.find(';') != std::string_view::npos) {
      return absl::InvalidArgumentError("invalid semicolon separator in query");
    }
    if (piece.empty()) {
      continue;
    }
    const size_t eq = piece.find('=');
    DISCOVERY_ASSIGN_OR_RETURN(std::string name,
                               PercentDecode(piece.substr(0, eq), /*plus_is_space=*/true));
    DISCOVERY_ASSIGN_OR_RETURN(std::string value,
                               eq == std::string_view::npos
                                   ? std::string{}
                                   : PercentDecode(piece.substr(eq + 1), /*plus_is_space=*/true));
    params.emplace_back(std::move(name), std::move(value));
  }
  return params;
}

absl::StatusOr<std::vector<std::string>> PathSegments(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError("invalid request path");
  }
  std::vector<std::string> segments;
  std::string_view rest = path.substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    DISCOVERY_ASSIGN_OR_RETURN(std::string segment,
                               PercentDecode(rest.substr(0, slash), /*plus_is_space=*/false));
    segments.push_back(std::move(segment));
    if (slash == std::string_view::npos) {
      break;
    }
    rest = rest.substr(slash + 1);
  }
  return segments;
}

}  // namespace discovery::rest
