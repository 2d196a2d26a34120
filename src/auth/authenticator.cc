#include "auth/authenticator.h"

#include <optional>
#include <utility>

#include "fmt/format.h"

#include "auth/bearer.h"
#include "common/format.h"

namespace discovery::auth {

Authenticator::Authenticator(AuthenticatorOptions options) : options_(std::move(options)) {}

absl::StatusOr<Principal> Authenticator::Authenticate(std::string_view authorization) const {
  absl::StatusOr<std::string> token = BearerToken(authorization);
  if (!token.ok()) {
    return absl::UnauthenticatedError(
        fmt::format("failed to get authentication token: {}", token.status().message()));
  }
  absl::StatusOr<std::optional<std::string>> issuer = PeekIssuer(*token);
  if (!issuer.ok()) {
    return absl::UnauthenticatedError(
        fmt::format("failed to parse machine token: {}", issuer.status().message()));
  }
  if (issuer->has_value() && **issuer == options_.issuer) {
    absl::StatusOr<MachineClaims> claims = VerifyMachineToken(
        *token, options_.issuer, options_.secret, options_.previous_secrets, options_.clock());
    if (!claims.ok()) {
      return absl::UnauthenticatedError(
          fmt::format("machine token is invalid: {}", claims.status().message()));
    }
    return MachinePrincipal(*std::move(claims));
  }
  if (options_.user_tokens) {
    return options_.user_tokens(*token);
  }
  return absl::UnauthenticatedError(
      fmt::format("token issuer '{}' is not trusted: only machine tokens issued by '{}' are "
                  "accepted (OIDC is not configured)",
                  issuer->value_or(""), options_.issuer));
}

}  // namespace discovery::auth
