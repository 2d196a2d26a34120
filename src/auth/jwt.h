// JWS compact serialisation helpers shared by the machine-token and OIDC verifiers. Internal to
// the auth module (it exposes nlohmann::json, which the module's users do not link).
#pragma once

#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace discovery::auth {

// A compact JWS split into its parts, with header and payload decoded and parsed. The views
// point into the token passed to DecodeJwt.
struct DecodedJwt {
  // `header.payload`, the bytes the signature covers.
  std::string_view signing_input;
  std::string_view signature_segment;
  nlohmann::json header;
  nlohmann::json payload;
};

// Splits `token` into three dot-separated segments and decodes the first two as base64url JSON
// objects; the header must carry a string `alg`. The signature segment is not decoded.
// InvalidArgument with a reason (no prefix) otherwise. Thread-safe.
absl::StatusOr<DecodedJwt> DecodeJwt(std::string_view token);

// The NumericDate claim `name` of `payload` (integer or float seconds since the epoch),
// truncated to whole seconds and clamped to the infinite past/future beyond int64; nullopt when
// absent or null. InvalidArgument when it is not a number or not finite.
absl::StatusOr<std::optional<absl::Time>> NumericDateClaim(const nlohmann::json& payload,
                                                           const char* name);

}  // namespace discovery::auth
