// What the OIDC verifier checks in a token's claims (docs/decisions.md D33) and how it reads the
// user from them: issuer, lifetime, audience, the username and roles claims. Internal to
// src/auth (oidc_jwk.cc, oidc_provider.cc, oidc_verifier.cc).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

#include "auth/oidc_verifier.h"

namespace discovery::auth::oidc_internal {

// A token that fails verification has not authenticated anybody: 401, not 403 (RFC 6750 §3.1),
// so that clients log in again instead of concluding they may not.
absl::Status Denied(std::string_view reason);

// RFC 9068 §2.1: "at+jwt", optionally with the "application/" prefix, in any case.
bool IsAccessTokenType(const nlohmann::json& header);

// Whether `object` has a string member `name` equal to `value`.
bool StringMemberEquals(const nlohmann::json& object, const char* name, std::string_view value);

// A token's value quoted in an error: the token is untrusted, so its values may be huge.
std::string Clip(std::string_view value);

// `iss` is a string equal to the provider's `issuer`.
absl::Status CheckIssuer(const nlohmann::json& claims, const std::string& issuer);

// `exp` is present and not passed at `now` (no leeway), and `nbf`, if present, at most 5 minutes
// ahead of `now`. Returns `exp`.
absl::StatusOr<absl::Time> CheckLifetime(const nlohmann::json& claims, absl::Time now);

// The token is for options.client_id, or else for options.ui_client_id; the CLI client's reason
// is the one reported. ID tokens name the client in `aud`; an `access_token` (typ at+jwt) may
// name it in `client_id` or `azp` instead.
absl::Status CheckAudience(const nlohmann::json& claims, bool access_token,
                           const OidcOptions& options);

// The user as the configured claims of `claims` name them; nullopt members for missing claims.
struct ClaimedUser {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> roles;
};

ClaimedUser ClaimsOf(const nlohmann::json& claims, const OidcOptions& options);

}  // namespace discovery::auth::oidc_internal
