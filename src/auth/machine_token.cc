#include "auth/machine_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "auth/jwt.h"
#include "common/format.h"
#include "common/status_macros.h"

namespace discovery::auth {
namespace {

using Json = nlohmann::json;

// base64url of {"alg":"HS256","typ":"JWT"}, the only header this module writes.
constexpr std::string_view kHeaderSegment = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
constexpr std::string_view kAlgorithm = "HS256";
constexpr std::size_t kSignatureSize = 32;

absl::Status Malformed(std::string_view reason) {
  return absl::InvalidArgumentError(fmt::format("invalid token: {}", reason));
}

absl::Status Rejected(std::string_view reason) {
  return absl::UnauthenticatedError(fmt::format("invalid token: {}", reason));
}

absl::Status EmptySecret() {
  return absl::FailedPreconditionError("invalid token: the token secret is empty");
}

absl::StatusOr<std::string> HmacSha256(std::string_view secret, std::string_view data) {
  if (secret.size() > static_cast<std::size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("token secret is too long");
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_size = 0;
  // An empty string_view may carry a null pointer, which OpenSSL 3.0's HMAC() rejects as a key.
  static constexpr unsigned char kNoKey = 0;
  const void* key = secret.empty() ? &kNoKey : static_cast<const void*>(secret.data());
  if (HMAC(EVP_sha256(), key, static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(),
           &mac_size) == nullptr ||
      mac_size != kSignatureSize) {
    return absl::InternalError("HMAC-SHA256 failed");
  }
  return std::string(reinterpret_cast<const char*>(mac.data()), mac_size);
}

// The token's parts; the shared decoder's reasons get this module's `invalid token: ` prefix.
absl::StatusOr<DecodedJwt> Parse(std::string_view token) {
  absl::StatusOr<DecodedJwt> decoded = DecodeJwt(token);
  if (!decoded.ok()) {
    return Malformed(ToStd(decoded.status().message()));
  }
  return decoded;
}

absl::StatusOr<std::optional<absl::Time>> NumericDate(const Json& payload, const char* name) {
  absl::StatusOr<std::optional<absl::Time>> date = NumericDateClaim(payload, name);
  if (!date.ok()) {
    return Malformed(ToStd(date.status().message()));
  }
  return date;
}

std::string FormatNumericDate(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

absl::StatusOr<std::string> StringClaim(const Json& payload, const char* name) {
  const auto it = payload.find(name);
  if (it == payload.end() || it->is_null()) {
    return std::string();
  }
  if (!it->is_string()) {
    return Malformed(fmt::format("claim {} is not a string", name));
  }
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> NamespacesClaim(const Json& payload) {
  std::vector<std::string> namespaces;
  const auto it = payload.find("namespaces");
  if (it == payload.end() || it->is_null()) {
    return namespaces;
  }
  if (!it->is_array()) {
    return Malformed("claim namespaces is not an array");
  }
  for (const Json& element : *it) {
    if (!element.is_string()) {
      return Malformed("claim namespaces contains a value that is not a string");
    }
    namespaces.push_back(element.get<std::string>());
  }
  return namespaces;
}

absl::StatusOr<bool> AdminClaim(const Json& payload) {
  const auto it = payload.find("admin");
  if (it == payload.end() || it->is_null()) {
    return false;
  }
  if (!it->is_boolean()) {
    return Malformed("claim admin is not a boolean");
  }
  return it->get<bool>();
}

std::vector<std::string_view> Secrets(std::string_view secret,
                                      const std::vector<std::string>& previous_secrets) {
  std::vector<std::string_view> secrets = {secret};
  for (const std::string& previous : previous_secrets) {
    if (!previous.empty()) {
      secrets.push_back(previous);
    }
  }
  return secrets;
}

// `secret` signs; a signature made with one of `previous_secrets` is accepted as well.
absl::StatusOr<MachineClaims> Verify(std::string_view token, std::string_view issuer,
                                     std::string_view secret,
                                     const std::vector<std::string>& previous_secrets,
                                     absl::Time now) {
  DISCOVERY_ASSIGN_OR_RETURN(DecodedJwt parsed, Parse(token));

  const auto& alg = parsed.header.at("alg").get_ref<const std::string&>();
  if (alg != kAlgorithm) {
    return Rejected(fmt::format("signing method {} is not allowed, only {}", alg, kAlgorithm));
  }
  if (parsed.header.contains("crit")) {
    return Rejected("critical header parameters are not supported");
  }

  absl::StatusOr<std::string> signature = Base64UrlDecode(parsed.signature_segment);
  if (!signature.ok()) {
    return Malformed(fmt::format("could not decode signature: {}", signature.status().message()));
  }
  if (secret.empty()) {
    return EmptySecret();
  }
  bool signed_with_a_secret = false;
  for (std::string_view key : Secrets(secret, previous_secrets)) {
    DISCOVERY_ASSIGN_OR_RETURN(const std::string expected, HmacSha256(key, parsed.signing_input));
    // Every secret is tried, so the time taken does not tell which one matched.
    signed_with_a_secret |= signature->size() == expected.size() &&
                            CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) == 0;
  }
  if (!signed_with_a_secret) {
    return Rejected("signature is invalid");
  }

  const Json& payload = parsed.payload;
  MachineClaims claims;
  DISCOVERY_ASSIGN_OR_RETURN(const std::string token_issuer, StringClaim(payload, "iss"));
  DISCOVERY_ASSIGN_OR_RETURN(claims.id, StringClaim(payload, "jti"));
  DISCOVERY_ASSIGN_OR_RETURN(claims.namespaces, NamespacesClaim(payload));
  DISCOVERY_ASSIGN_OR_RETURN(claims.admin, AdminClaim(payload));
  DISCOVERY_ASSIGN_OR_RETURN(claims.expires, NumericDate(payload, "exp"));
  DISCOVERY_ASSIGN_OR_RETURN(const std::optional<absl::Time> not_before,
                             NumericDate(payload, "nbf"));
  DISCOVERY_ASSIGN_OR_RETURN(const std::optional<absl::Time> issued_at,
                             NumericDate(payload, "iat"));

  if (token_issuer != issuer) {
    return Rejected(fmt::format("wrong issuer is '{}', not {}", token_issuer, issuer));
  }
  if (claims.expires.has_value() && !(now < *claims.expires)) {
    return Rejected(fmt::format("token is expired since {}", FormatNumericDate(*claims.expires)));
  }
  if (not_before.has_value() && now < *not_before) {
    return Rejected(fmt::format("token is not valid before {}", FormatNumericDate(*not_before)));
  }
  if (issued_at.has_value() && now < *issued_at) {
    return Rejected(fmt::format("token used before issued at {}", FormatNumericDate(*issued_at)));
  }
  return claims;
}

}  // namespace

absl::StatusOr<std::string> CreateMachineToken(const MachineTokenOptions& options, std::string id,
                                               const std::vector<std::string>& namespaces,
                                               absl::Duration expires, absl::Time now) {
  if (options.secret.empty()) {
    return absl::FailedPreconditionError("cannot sign a machine token: the token secret is empty");
  }
  const std::int64_t issued = absl::ToUnixSeconds(now);
  // ordered_json keeps the insertion order, which is the Go original's field order.
  nlohmann::ordered_json payload;
  payload["iss"] = options.issuer;
  if (expires > absl::ZeroDuration() && expires != absl::InfiniteDuration()) {
    payload["exp"] = absl::ToUnixSeconds(now + expires);
  }
  payload["nbf"] = issued;
  payload["iat"] = issued;
  payload["jti"] = std::move(id);
  if (!namespaces.empty()) {
    payload["namespaces"] = namespaces;
  }
  if (options.admin) {
    payload["admin"] = true;
  }
  std::string token(kHeaderSegment);
  token += '.';
  token += Base64UrlEncode(payload.dump(/*indent=*/-1, /*indent_char=*/' ', /*ensure_ascii=*/false,
                                        nlohmann::ordered_json::error_handler_t::replace));
  DISCOVERY_ASSIGN_OR_RETURN(const std::string signature, HmacSha256(options.secret, token));
  token += '.';
  token += Base64UrlEncode(signature);
  return token;
}

absl::StatusOr<MachineClaims> VerifyMachineToken(std::string_view token, std::string_view issuer,
                                                 std::string_view secret, absl::Time now) {
  return VerifyMachineToken(token, issuer, secret, {}, now);
}

absl::StatusOr<MachineClaims> VerifyMachineToken(std::string_view token, std::string_view issuer,
                                                 std::string_view secret,
                                                 const std::vector<std::string>& previous_secrets,
                                                 absl::Time now) {
  try {
    return Verify(token, issuer, secret, previous_secrets, now);
  } catch (const Json::exception& e) {
    // The checks above make nlohmann's accessors safe; this keeps a missed case from escaping.
    return Malformed(e.what());
  }
}

absl::StatusOr<std::optional<std::string>> PeekIssuer(std::string_view token) {
  try {
    DISCOVERY_ASSIGN_OR_RETURN(DecodedJwt parsed, Parse(token));
    const auto iss = parsed.payload.find("iss");
    if (iss == parsed.payload.end() || !iss->is_string()) {
      return std::nullopt;
    }
    return iss->get<std::string>();
  } catch (const Json::exception& e) {
    return Malformed(e.what());
  }
}

Principal MachinePrincipal(MachineClaims claims) {
  return Principal{.kind = Principal::Kind::kMachine,
                   .name = std::move(claims.id),
                   .namespaces = std::move(claims.namespaces),
                   .admin_token = claims.admin};
}

}  // namespace discovery::auth
