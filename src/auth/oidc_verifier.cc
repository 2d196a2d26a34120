#include "auth/oidc_verifier.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "auth/jwt.h"
#include "auth/oidc_claims.h"
#include "auth/oidc_jwk.h"
#include "auth/oidc_provider.h"
#include "common/format.h"
#include "common/status_macros.h"
#include "http_client/http_client.h"

namespace discovery::auth {
namespace {

using Json = nlohmann::json;
using oidc_internal::CheckAudience;
using oidc_internal::CheckIssuer;
using oidc_internal::CheckLifetime;
using oidc_internal::ClaimedUser;
using oidc_internal::ClaimsOf;
using oidc_internal::Clip;
using oidc_internal::DefaultGet;
using oidc_internal::Denied;
using oidc_internal::FindKey;
using oidc_internal::IsAccessTokenType;
using oidc_internal::KeyLookup;
using oidc_internal::KeyType;
using oidc_internal::KeyTypeFor;
using oidc_internal::NoKeyReason;
using oidc_internal::SignatureVerifies;

// What Verify reads from a token before it looks for its key.
struct TokenParts {
  DecodedJwt jwt;
  std::string alg;
  KeyType type = KeyType::kRsa;
  std::optional<std::string> kid;  // nullopt: the token names none
  std::string signature;           // decoded
};

// `token` decoded, with an algorithm this verifier implements and no `crit`.
absl::StatusOr<TokenParts> ReadToken(std::string_view token) {
  absl::StatusOr<DecodedJwt> jwt = DecodeJwt(token);
  if (!jwt.ok()) {
    return Denied(fmt::format("malformed token: {}", jwt.status().message()));
  }
  TokenParts parts{.jwt = *std::move(jwt)};
  parts.alg = parts.jwt.header.at("alg").get<std::string>();
  const std::optional<KeyType> type = KeyTypeFor(parts.alg);
  if (!type.has_value()) {
    return Denied(fmt::format("unsupported algorithm \"{}\"", Clip(parts.alg)));
  }
  parts.type = *type;
  if (parts.jwt.header.contains("crit")) {
    return Denied("critical header parameters are not supported");
  }
  if (const auto it = parts.jwt.header.find("kid"); it != parts.jwt.header.end()) {
    if (!it->is_string()) {
      return Denied("malformed token: kid is not a string");
    }
    parts.kid = it->get<std::string>();
  }
  absl::StatusOr<std::string> signature = Base64UrlDecode(parts.jwt.signature_segment);
  if (!signature.ok()) {
    return Denied(fmt::format("malformed token: could not decode signature: {}",
                              signature.status().message()));
  }
  parts.signature = *std::move(signature);
  return parts;
}

}  // namespace

OidcVerifier::OidcVerifier(OidcOptions options, HttpGet get)
    : options_(std::move(options)),
      get_(get ? std::move(get) : DefaultGet(options_)),
      userinfo_(options_.userinfo_cache_size) {}

OidcVerifier::~OidcVerifier() = default;

// The checks make nlohmann's accessors safe; the try block keeps a missed case from escaping.
absl::StatusOr<Principal> OidcVerifier::Verify(std::string_view token) const try {
  DISCOVERY_ASSIGN_OR_RETURN(const TokenParts parts, ReadToken(token));
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<const Provider> provider, EnsureLoaded());
  if (provider->algorithms.has_value() &&
      std::find(provider->algorithms->begin(), provider->algorithms->end(), parts.alg) ==
          provider->algorithms->end()) {
    return Denied(fmt::format("algorithm \"{}\" is not advertised by the provider", parts.alg));
  }
  KeyLookup lookup = FindKey(*provider, parts.kid, parts.alg, parts.type);
  if (lookup.key == nullptr && !lookup.refusal.has_value()) {
    // The provider may have rotated its keys since we fetched them.
    RefreshKeys();
    {
      absl::ReaderMutexLock lock(&mu_);
      provider = provider_;
    }
    lookup = FindKey(*provider, parts.kid, parts.alg, parts.type);
  }
  if (lookup.key == nullptr) {
    return Denied(lookup.refusal.value_or(NoKeyReason(parts.kid, parts.type)));
  }
  if (!SignatureVerifies(lookup.key->key.get(), lookup.key->type, parts.jwt.signing_input,
                         parts.signature)) {
    return Denied("signature does not verify");
  }

  const Json& claims = parts.jwt.payload;
  DISCOVERY_RETURN_IF_ERROR(CheckIssuer(claims, provider->issuer));
  const absl::Time now = options_.clock();
  DISCOVERY_ASSIGN_OR_RETURN(const absl::Time expires, CheckLifetime(claims, now));
  const bool access_token = IsAccessTokenType(parts.jwt.header);
  DISCOVERY_RETURN_IF_ERROR(CheckAudience(claims, access_token, options_));

  ClaimedUser user = ClaimsOf(claims, options_);
  if (access_token && (!user.name.has_value() || !user.roles.has_value()) &&
      !provider->userinfo_endpoint.empty()) {
    std::string subject;
    if (const auto sub = claims.find("sub"); sub != claims.end() && sub->is_string()) {
      subject = sub->get<std::string>();
    }
    DISCOVERY_ASSIGN_OR_RETURN(Principal from_userinfo, userinfo_.Get(token, now, expires, [&] {
      return FetchUserinfo(provider->userinfo_endpoint, token, subject);
    }));
    if (!user.name.has_value()) {
      user.name = std::move(from_userinfo.name);
    }
    if (!user.roles.has_value()) {
      user.roles = std::move(from_userinfo.roles);
    }
  }
  return Principal{.kind = Principal::Kind::kUser,
                   .name = user.name.value_or(""),
                   .roles = user.roles.value_or(std::vector<std::string>{})};
} catch (const Json::exception& e) {
  return Denied(fmt::format("malformed token: {}", e.what()));
}

absl::StatusOr<Principal> OidcVerifier::FetchUserinfo(const std::string& url,
                                                      std::string_view token,
                                                      std::string_view subject) const try {
  absl::StatusOr<http_client::Response> response = get_(url, std::string(token));
  if (!response.ok()) {
    return absl::UnavailableError(fmt::format("oidc provider {} is not reachable: userinfo: {}",
                                              options_.issuer, response.status().message()));
  }
  if (response->status == 401 || response->status == 403) {
    // The provider no longer honours the token (revoked, logged out).
    return Denied(fmt::format("the provider's userinfo endpoint refused the token (HTTP status {})",
                              response->status));
  }
  if (response->status < 200 || response->status > 299) {
    return absl::UnavailableError(
        fmt::format("oidc provider {} is not reachable: userinfo {} answered HTTP status {}",
                    options_.issuer, url, response->status));
  }
  const Json claims = Json::parse(response->body, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) {
    return absl::UnavailableError(fmt::format(
        "oidc provider {}: userinfo {} did not answer a JSON object", options_.issuer, url));
  }
  // OIDC Core §5.3.2: the answer is only about the token's user when the subjects match.
  if (const auto sub = claims.find("sub");
      !subject.empty() && sub != claims.end() &&
      (!sub->is_string() || sub->get_ref<const std::string&>() != subject)) {
    return Denied("the userinfo answer is about another subject");
  }
  ClaimedUser user = ClaimsOf(claims, options_);
  return Principal{.kind = Principal::Kind::kUser,
                   .name = user.name.value_or(""),
                   .roles = user.roles.value_or(std::vector<std::string>{})};
} catch (const Json::exception& e) {
  return absl::UnavailableError(
      fmt::format("oidc provider {}: unusable userinfo answer: {}", options_.issuer, e.what()));
}

}  // namespace discovery::auth
