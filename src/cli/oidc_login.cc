#include "cli/oidc_login.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "common/format.h"
#include "common/status_macros.h"
#include "http_client/http_client.h"

namespace discovery::cli {
namespace {

using Json = nlohmann::json;

std::string WithoutTrailingSlash(std::string url) {
  while (url.ends_with('/')) {
    url.pop_back();
  }
  return url;
}

// The provider's answer as JSON, or an error that names the request and says what went wrong.
absl::StatusOr<Json> Exchange(const http_client::Request& request, std::string_view what) {
  absl::StatusOr<http_client::Response> response = http_client::Send(request);
  if (!response.ok()) {
    return absl::Status(response.status().code(),
                        fmt::format("{}: {}", what, response.status().message()));
  }
  const Json body = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (response->status < 200 || response->status >= 300) {
    // RFC 6749 §5.2 error responses carry error and error_description.
    std::string reason = fmt::format("status {}", response->status);
    if (body.is_object() && body.contains("error") && body["error"].is_string()) {
      reason += ": " + body["error"].get<std::string>();
      if (body.contains("error_description") && body["error_description"].is_string()) {
        reason += ": " + body["error_description"].get<std::string>();
      }
    } else if (!response->body.empty()) {
      reason += ": " + response->body.substr(0, 200);
    }
    const absl::StatusCode code =
        response->status == 400 || response->status == 401 || response->status == 403
            ? absl::StatusCode::kPermissionDenied
            : absl::StatusCode::kUnavailable;
    return absl::Status(code, fmt::format("{} refused: {}", what, reason));
  }
  if (!body.is_object()) {
    return absl::UnavailableError(fmt::format("{}: the answer is not a JSON object", what));
  }
  return body;
}

absl::StatusOr<std::string> TokenEndpoint(const OidcClientOptions& options) {
  if (options.endpoint.empty()) {
    return absl::FailedPreconditionError(
        "no OIDC provider configured: set --oidc-endpoint ($DISCOVERY_OIDC_ENDPOINT)");
  }
  const std::string url =
      WithoutTrailingSlash(options.endpoint) + "/.well-known/openid-configuration";
  DISCOVERY_ASSIGN_OR_RETURN(
      Json document,
      Exchange({.url = url, .ca_cert_file = options.ca_cert_file, .timeout = options.timeout},
               "OIDC discovery " + url));
  if (!document.contains("token_endpoint") || !document["token_endpoint"].is_string()) {
    return absl::UnavailableError(fmt::format("OIDC discovery {}: no token_endpoint", url));
  }
  return document["token_endpoint"].get<std::string>();
}

absl::StatusOr<Json> TokenRequest(const OidcClientOptions& options,
                                  const std::vector<std::pair<std::string, std::string>>& form,
                                  std::string_view what) {
  DISCOVERY_ASSIGN_OR_RETURN(std::string endpoint, TokenEndpoint(options));
  return Exchange({.method = "POST",
                   .url = endpoint,
                   .headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                               {"Accept", "application/json"}},
                   .body = http_client::FormEncode(form),
                   .basic_auth = std::make_pair(options.client_id, options.client_secret),
                   .ca_cert_file = options.ca_cert_file,
                   .timeout = options.timeout},
                  what);
}

std::string StringField(const Json& body, const char* key) {
  return body.contains(key) && body[key].is_string() ? body[key].get<std::string>() : "";
}

}  // namespace

namespace {

// The payload of a JWT, read without verifying it (the server verifies).
absl::StatusOr<Json> UnverifiedClaims(std::string_view token) {
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos) {
    return absl::InvalidArgumentError("the token is not a JWT");
  }
  absl::StatusOr<std::string> payload =
      auth::Base64UrlDecode(token.substr(first + 1, second - first - 1));
  if (!payload.ok()) {
    return absl::InvalidArgumentError("the token's payload is not base64url");
  }
  Json claims = Json::parse(*payload, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) {
    return absl::InvalidArgumentError("the token's payload is not a JSON object");
  }
  return claims;
}

absl::Time NumericDate(const Json& value) {
  return absl::FromUnixSeconds(static_cast<int64_t>(std::floor(value.get<double>())));
}

}  // namespace

absl::StatusOr<absl::Time> TokenExpiry(std::string_view token) {
  DISCOVERY_ASSIGN_OR_RETURN(Json claims, UnverifiedClaims(token));
  if (!claims.contains("exp") || !claims["exp"].is_number()) {
    return absl::InvalidArgumentError("the token has no numeric exp claim");
  }
  return NumericDate(claims["exp"]);
}

absl::Duration RefreshMargin(std::string_view token) {
  constexpr absl::Duration kMaxMargin = absl::Seconds(30);
  absl::StatusOr<Json> claims = UnverifiedClaims(token);
  if (!claims.ok() || !claims->contains("exp") || !(*claims)["exp"].is_number() ||
      !claims->contains("iat") || !(*claims)["iat"].is_number()) {
    return kMaxMargin;
  }
  const absl::Duration lifetime = NumericDate((*claims)["exp"]) - NumericDate((*claims)["iat"]);
  return std::clamp(lifetime / 4, absl::ZeroDuration(), kMaxMargin);
}

absl::StatusOr<TokenFile> PasswordLogin(const OidcClientOptions& options,
                                        const std::string& username, const std::string& password) {
  DISCOVERY_ASSIGN_OR_RETURN(Json body, TokenRequest(options,
                                                     {{"grant_type", "password"},
                                                      {"username", username},
                                                      {"password", password},
                                                      {"scope", "openid"}},
                                                     "login"));
  TokenFile token{.id_token = StringField(body, "id_token"),
                  .refresh_token = StringField(body, "refresh_token"),
                  .access_token = StringField(body, "access_token")};
  if (token.id_token.empty()) {
    token.id_token = token.access_token;
  }
  if (absl::StatusOr<absl::Time> expiry = TokenExpiry(token.id_token); !expiry.ok()) {
    return absl::UnavailableError(
        fmt::format("login: the provider's token is unusable: {}", expiry.status().message()));
  }
  return token;
}

absl::StatusOr<std::optional<TokenFile>> RefreshIfExpired(const OidcClientOptions& options,
                                                          const TokenFile& token, absl::Time now) {
  if (!token.machine_token.empty() || token.refresh_token.empty()) {
    return std::nullopt;
  }
  if (absl::StatusOr<absl::Time> expiry = TokenExpiry(token.id_token);
      expiry.ok() && *expiry > now + RefreshMargin(token.id_token)) {
    return std::nullopt;
  }
  absl::StatusOr<Json> body = TokenRequest(
      options, {{"grant_type", "refresh_token"}, {"refresh_token", token.refresh_token}},
      "token refresh");
  if (!body.ok()) {
    return absl::Status(body.status().code(), fmt::format("{}; log in again with `discovery login`",
                                                          body.status().message()));
  }
  TokenFile refreshed = token;
  refreshed.access_token = StringField(*body, "access_token");
  refreshed.id_token = StringField(*body, "id_token");
  if (refreshed.id_token.empty()) {
    refreshed.id_token = refreshed.access_token;
  }
  if (const std::string rotated = StringField(*body, "refresh_token"); !rotated.empty()) {
    refreshed.refresh_token = rotated;
  }
  if (refreshed.id_token.empty()) {
    return absl::UnavailableError("token refresh: the provider returned no token");
  }
  return refreshed;
}

}  // namespace discovery::cli
