#include "auth/bearer.h"

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"

#include "common/format.h"

namespace discovery::auth {
namespace {

constexpr std::string_view kScheme = "bearer";

}  // namespace

absl::StatusOr<std::string> BearerToken(std::string_view authorization_header) {
  if (authorization_header.empty()) {
    return absl::UnauthenticatedError("Request unauthenticated with bearer");
  }
  const std::size_t space = authorization_header.find(' ');
  if (space == std::string_view::npos) {
    return absl::UnauthenticatedError("Bad authorization string");
  }
  if (!absl::EqualsIgnoreCase(ToAbsl(authorization_header.substr(0, space)), ToAbsl(kScheme))) {
    return absl::UnauthenticatedError("Request unauthenticated with bearer");
  }
  return std::string(authorization_header.substr(space + 1));
}

}  // namespace discovery::auth
