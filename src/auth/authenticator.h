// Authentication of API callers (docs/decisions.md D32): the bearer token of a request becomes a
// Principal. Machine tokens (HS256, our issuer) are verified here; any other issuer goes to the
// OIDC verifier when one is configured. Transport-neutral: adapters pass the raw
// `authorization` header or metadata value and map the returned status.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "auth/machine_token.h"
#include "auth/principal.h"
#include "auth/token_cache.h"

namespace discovery::auth {

// Verifies a bearer token that is not a machine token (an OIDC ID or access token).
// Unauthenticated when the token is not acceptable, Unavailable when the provider cannot be
// asked.
using UserTokenVerifier = std::function<absl::StatusOr<Principal>(std::string_view token)>;

struct AuthenticatorOptions {
  std::string issuer;  // --token-issuer
  std::string secret;  // --token-secret
  // --previous-token-secrets: machine tokens signed with these are still accepted.
  std::vector<std::string> previous_secrets;
  // nullptr: only machine tokens are accepted.
  UserTokenVerifier user_tokens;
  // Whether the machine token with this id (`jti`) was revoked; asked on every request of a
  // machine token, cached or not, so it must be quick. nullptr: none is.
  std::function<bool(std::string_view token_id)> revoked;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Verified machine tokens remembered until their `exp`, at most this many; 0 verifies every
  // token in full on every call. The cache belongs to the Authenticator, so new secrets (a new
  // Authenticator) start with an empty one.
  size_t verified_token_cache_size = 1024;
};

class Authenticator {
 public:
  explicit Authenticator(AuthenticatorOptions options);

  // `authorization` is the header or metadata value, e.g. "Bearer eyJ...". Unauthenticated:
  //   `failed to get authentication token: ...` for a missing or non-bearer header,
  //   `failed to parse machine token: ...` for a token that is not a JWT,
  //   `machine token is invalid: ...` for a machine token that fails verification,
  //   `machine token <id> is revoked` for a revoked one,
  //   `token issuer '<iss>' is not trusted` for another issuer without OIDC configured.
  // Messages never contain the token or the secret. Thread-safe.
  absl::StatusOr<Principal> Authenticate(std::string_view authorization) const;

  // The principal of a machine token in `authorization` that was verified before and is still
  // valid now, from memory; nullopt for anything else (Authenticate decides those). Never
  // blocks: no OIDC verification, no key fetch. Thread-safe.
  std::optional<Principal> CachedPrincipal(std::string_view authorization) const;

  const AuthenticatorOptions& options() const { return options_; }

  // Machine tokens currently remembered as verified.
  size_t cached_tokens() const { return verified_.size(); }

 private:
  bool IsRevoked(const Principal& principal) const;
  static absl::Status Revoked(const Principal& principal);

  const AuthenticatorOptions options_;
  // Mutable state behind a const API: remembering a success changes no answer.
  mutable VerifiedTokenCache verified_;
};

}  // namespace discovery::auth
