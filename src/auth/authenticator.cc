#include "auth/authenticator.h"

#include <optional>
#include <utility>

#include "fmt/format.h"

#include "auth/bearer.h"
#include "common/format.h"

namespace discovery::auth {

Authenticator::Authenticator(AuthenticatorOptions options)
    : options_(std::move(options)), verified_(options_.verified_token_cache_size) {}

std::optional<Principal> Authenticator::CachedPrincipal(std::string_view authorization) const {
  absl::StatusOr<std::string> token = BearerToken(authorization);
  if (!token.ok()) {
    return std::nullopt;
  }
  std::optional<Principal> principal = verified_.Find(*token, options_.clock());
  if (principal.has_value() && IsRevoked(*principal)) {
    return std::nullopt;  // Authenticate refuses it
  }
  return principal;
}

bool Authenticator::IsRevoked(const Principal& principal) const {
  return principal.kind == Principal::Kind::kMachine && options_.revoked &&
         options_.revoked(principal.name);
}

absl::Status Authenticator::Revoked(const Principal& principal) {
  return absl::UnauthenticatedError(
      fmt::format("machine token is invalid: machine token {} is revoked", principal.name));
}

absl::StatusOr<Principal> Authenticator::Authenticate(std::string_view authorization) const {
  absl::StatusOr<std::string> token = BearerToken(authorization);
  if (!token.ok()) {
    return absl::UnauthenticatedError(
        fmt::format("failed to get authentication token: {}", token.status().message()));
  }
  // The clock is read once, so that the cache and the full verification judge the same moment.
  const absl::Time now = options_.clock();
  if (std::optional<Principal> cached = verified_.Find(*token, now); cached.has_value()) {
    if (IsRevoked(*cached)) {
      return Revoked(*cached);
    }
    return *std::move(cached);
  }
  absl::StatusOr<std::optional<std::string>> issuer = PeekIssuer(*token);
  if (!issuer.ok()) {
    return absl::UnauthenticatedError(
        fmt::format("failed to parse machine token: {}", issuer.status().message()));
  }
  if (issuer->has_value() && **issuer == options_.issuer) {
    absl::StatusOr<MachineClaims> claims = VerifyMachineToken(
        *token, options_.issuer, options_.secret, options_.previous_secrets, now);
    if (!claims.ok()) {
      return absl::UnauthenticatedError(
          fmt::format("machine token is invalid: {}", claims.status().message()));
    }
    const std::optional<absl::Time> expires = claims->expires;
    Principal principal = MachinePrincipal(*std::move(claims));
    if (IsRevoked(principal)) {
      return Revoked(principal);
    }
    verified_.Insert(*token, principal, now, expires);
    return principal;
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
