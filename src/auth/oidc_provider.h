// The OIDC provider as the verifier knows it (docs/decisions.md D33): its discovery document and
// JWKS, fetched over HTTP, and the lookup of a token's key among its keys. OidcVerifier's cache
// of it (Load, EnsureLoaded, RefreshKeys) is in oidc_provider.cc too. Internal to src/auth.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

#include "auth/oidc_jwk.h"
#include "auth/oidc_verifier.h"

namespace discovery::auth::oidc_internal {

struct Provider {
  // The document's `issuer`, which tokens' `iss` must equal.
  std::string issuer;
  std::string jwks_uri;
  // The document's userinfo_endpoint; "" when it names none.
  std::string userinfo_endpoint;
  // id_token_signing_alg_values_supported; nullopt when the document does not say.
  std::optional<std::vector<std::string>> algorithms;
  std::vector<SigningKey> keys;
  // When the keys were last fetched (or tried to be), for rate-limiting refetches.
  absl::Time keys_fetched = absl::InfinitePast();
};

// GETs with http_client::Send, trusting options.ca_cert_file, within options.http_timeout.
HttpGet DefaultGet(const OidcOptions& options);

// The document at <issuer>/.well-known/openid-configuration and the keys of its JWKS, fetched
// (at `now`) with `get`.
absl::StatusOr<Provider> FetchProvider(const HttpGet& get, const std::string& issuer,
                                       absl::Time now);

// GETs `url` and parses a JSON object; `what` names the document in errors.
absl::StatusOr<nlohmann::json> FetchJson(const HttpGet& get, const std::string& url,
                                         std::string_view what);

// How a token's key was looked up.
struct KeyLookup {
  const SigningKey* key = nullptr;
  // Set when looking again after refetching the JWKS cannot help.
  std::optional<std::string> refusal;
};

// The key for a token of `kid` (nullopt: the token has none) signed with `alg`, which needs a key
// of `type`.
KeyLookup FindKey(const Provider& provider, const std::optional<std::string>& kid,
                  std::string_view alg, KeyType type);

// Why no key was found for a token of `kid` needing a key of `type`.
std::string NoKeyReason(const std::optional<std::string>& kid, KeyType type);

}  // namespace discovery::auth::oidc_internal
