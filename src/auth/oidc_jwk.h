// The provider's signing keys for the OIDC verifier (docs/decisions.md D33): JWKS keys of type
// RSA (at least 2048 bits) and EC P-256 turned into OpenSSL public keys, and the RS256 / ES256
// signature check. Internal to src/auth (oidc_provider.cc, oidc_verifier.cc).
#pragma once

#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace discovery::auth::oidc_internal {

enum class KeyType { kRsa, kEc };

// "RSA" or "EC P-256", for errors.
const char* KeyTypeName(KeyType type);

// The algorithms this verifier implements, with the key type each needs.
std::optional<KeyType> KeyTypeFor(std::string_view alg);

struct SigningKey {
  std::string kid;
  KeyType type = KeyType::kRsa;
  // The JWK's `alg`; "" when it names none.
  std::string alg;
  std::shared_ptr<EVP_PKEY> key;
};

// The usable signing keys of a JWKS. Keys of other types, curves or uses, and keys OpenSSL
// rejects, are skipped: one odd key must not make the provider's other keys unusable.
absl::StatusOr<std::vector<SigningKey>> ParseJwks(const nlohmann::json& jwks,
                                                  const std::string& url);

// Whether `signature` (as the token carries it) over `signing_input` verifies with `key`, which
// is of `type`: RS256 for RSA keys, ES256 for EC keys.
bool SignatureVerifies(EVP_PKEY* key, KeyType type, std::string_view signing_input,
                       std::string_view signature);

}  // namespace discovery::auth::oidc_internal
