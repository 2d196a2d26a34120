#include "auth/oidc_claims.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "auth/jwt.h"
#include "common/format.h"

namespace discovery::auth::oidc_internal {
namespace {

using Json = nlohmann::json;

// How far in the future `nbf` may lie (clock skew between the provider and us).
constexpr absl::Duration kNotBeforeLeeway = absl::Minutes(5);

// The claim at `path`: the top-level member of that name if there is one (claim names may
// contain dots, e.g. URLs), else the path split at dots through nested objects.
const Json* FindClaim(const Json& payload, std::string_view path) {
  if (path.empty()) {
    return nullptr;
  }
  if (const auto it = payload.find(std::string(path)); it != payload.end()) {
    return &*it;
  }
  const Json* node = &payload;
  while (true) {
    const std::size_t dot = path.find('.');
    const std::string_view name = path.substr(0, dot);
    if (!node->is_object()) {
      return nullptr;
    }
    const auto it = node->find(std::string(name));
    if (it == node->end()) {
      return nullptr;
    }
    node = &*it;
    if (dot == std::string_view::npos) {
      return node;
    }
    path.remove_prefix(dot + 1);
  }
}

std::vector<std::string> RolesOf(const Json* claim) {
  std::vector<std::string> roles;
  if (claim == nullptr) {
    return roles;
  }
  if (claim->is_array()) {
    for (const Json& element : *claim) {
      if (element.is_string()) {
        roles.push_back(element.get<std::string>());
      }
    }
  } else if (claim->is_string()) {
    // glewlwyd's additional-parameters give "viewer,discovery-admin"; scope-like claims are
    // space-separated.
    std::string_view text = claim->get_ref<const std::string&>();
    constexpr std::string_view kSeparators = " ,\t";
    while (!text.empty()) {
      const std::size_t end = text.find_first_of(kSeparators);
      if (end != 0) {
        roles.emplace_back(text.substr(0, end));
      }
      if (end == std::string_view::npos) {
        break;
      }
      text.remove_prefix(end + 1);
    }
  }
  return roles;
}

bool AudienceContains(const Json& payload, std::string_view client_id) {
  const auto aud = payload.find("aud");
  if (aud == payload.end()) {
    return false;
  }
  if (aud->is_string()) {
    return aud->get_ref<const std::string&>() == client_id;
  }
  if (aud->is_array()) {
    return std::any_of(aud->begin(), aud->end(), [client_id](const Json& element) {
      return element.is_string() && element.get_ref<const std::string&>() == client_id;
    });
  }
  return false;
}

std::string FormatNumericDate(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

}  // namespace

absl::Status Denied(std::string_view reason) {
  return absl::UnauthenticatedError(fmt::format("personal token is not valid: oidc: {}", reason));
}

bool IsAccessTokenType(const Json& header) {
  const auto typ = header.find("typ");
  if (typ == header.end() || !typ->is_string()) {
    return false;
  }
  std::string value = typ->get<std::string>();
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return value == "at+jwt" || value == "application/at+jwt";
}

bool StringMemberEquals(const Json& object, const char* name, std::string_view value) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() && it->get_ref<const std::string&>() == value;
}

std::string Clip(std::string_view value) {
  constexpr std::size_t kMaxQuoted = 100;
  return value.size() <= kMaxQuoted ? std::string(value)
                                    : fmt::format("{}...", value.substr(0, kMaxQuoted));
}

absl::Status CheckIssuer(const Json& claims, const std::string& issuer) {
  const auto iss = claims.find("iss");
  if (iss == claims.end() || !iss->is_string()) {
    return Denied("token has no issuer");
  }
  if (*iss != issuer) {
    return Denied(fmt::format(R"(issuer "{}" is not "{}")",
                              Clip(iss->get_ref<const std::string&>()), issuer));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> CheckLifetime(const Json& claims, absl::Time now) {
  absl::StatusOr<std::optional<absl::Time>> expires = NumericDateClaim(claims, "exp");
  if (!expires.ok()) {
    return Denied(fmt::format("malformed token: {}", expires.status().message()));
  }
  if (!expires->has_value()) {
    return Denied("token has no expiry");
  }
  if (now > **expires) {
    return Denied(fmt::format("token is expired (exp {})", FormatNumericDate(**expires)));
  }
  absl::StatusOr<std::optional<absl::Time>> not_before = NumericDateClaim(claims, "nbf");
  if (!not_before.ok()) {
    return Denied(fmt::format("malformed token: {}", not_before.status().message()));
  }
  if (not_before->has_value() && now + kNotBeforeLeeway < **not_before) {
    return Denied(fmt::format("token is not valid yet (nbf {})", FormatNumericDate(**not_before)));
  }
  return **expires;
}

absl::Status CheckAudience(const Json& claims, bool access_token, const OidcOptions& options) {
  // ID tokens name the client in `aud`; JWT access tokens (RFC 9068) in `client_id` (or `azp`),
  // and glewlwyd's carry the scope string in `aud`. Only a token typed as an access token may
  // use the second way: an ID token issued to another client names ours at most in `azp`.
  //
  // Why the token is not for `client_id`; nullopt when it is.
  const auto not_for = [&](const std::string& client_id) -> std::optional<std::string> {
    if (AudienceContains(claims, client_id)) {
      return std::nullopt;
    }
    if (!StringMemberEquals(claims, "client_id", client_id) &&
        !StringMemberEquals(claims, "azp", client_id)) {
      return fmt::format("audience does not contain the client id \"{}\"", client_id);
    }
    if (!access_token) {
      return fmt::format(
          "the token names the client id \"{}\" only in client_id or azp, which an access "
          "token must declare with typ at+jwt",
          client_id);
    }
    return std::nullopt;
  };
  // The CLI's client, or else the web UI's; the CLI's reason is the one reported.
  if (const std::optional<std::string> refused = not_for(options.client_id);
      refused.has_value() &&
      (options.ui_client_id.empty() || not_for(options.ui_client_id).has_value())) {
    return Denied(*refused);
  }
  return absl::OkStatus();
}

ClaimedUser ClaimsOf(const Json& claims, const OidcOptions& options) {
  ClaimedUser user;
  if (const Json* name = FindClaim(claims, options.username_claim);
      name != nullptr && name->is_string()) {
    user.name = name->get<std::string>();
  }
  if (const Json* roles = FindClaim(claims, options.roles_claim); roles != nullptr) {
    user.roles = RolesOf(roles);
  }
  return user;
}

}  // namespace discovery::auth::oidc_internal
