#include "auth/oidc_provider.h"

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

#include "auth/oidc_claims.h"
#include "auth/oidc_jwk.h"
#include "common/format.h"
#include "common/status_macros.h"
#include "http_client/http_client.h"

namespace discovery::auth::oidc_internal {
namespace {

using Json = nlohmann::json;

std::string WithoutTrailingSlash(std::string_view url) {
  if (url.ends_with('/')) {
    url.remove_suffix(1);
  }
  return std::string(url);
}

// The provider's document, without keys.
absl::StatusOr<Provider> ParseDocument(const Json& document, const std::string& expected_issuer,
                                       const std::string& url) try {
  Provider provider;
  const auto issuer = document.find("issuer");
  if (issuer == document.end() || !issuer->is_string()) {
    return absl::FailedPreconditionError(
        fmt::format("the discovery document {} has no issuer", url));
  }
  provider.issuer = issuer->get<std::string>();
  if (WithoutTrailingSlash(provider.issuer) != WithoutTrailingSlash(expected_issuer)) {
    return absl::FailedPreconditionError(
        fmt::format(R"(the discovery document {} is for issuer "{}", not "{}")", url,
                    provider.issuer, expected_issuer));
  }
  const auto jwks_uri = document.find("jwks_uri");
  if (jwks_uri == document.end() || !jwks_uri->is_string() ||
      jwks_uri->get_ref<const std::string&>().empty()) {
    return absl::FailedPreconditionError(
        fmt::format("the discovery document {} has no jwks_uri", url));
  }
  provider.jwks_uri = jwks_uri->get<std::string>();
  if (const auto userinfo = document.find("userinfo_endpoint");
      userinfo != document.end() && userinfo->is_string()) {
    provider.userinfo_endpoint = userinfo->get<std::string>();
  }
  if (const auto algs = document.find("id_token_signing_alg_values_supported");
      algs != document.end() && !algs->is_null()) {
    if (!algs->is_array() ||
        !std::all_of(algs->begin(), algs->end(), [](const Json& a) { return a.is_string(); })) {
      return absl::FailedPreconditionError(fmt::format(
          "the discovery document {}: id_token_signing_alg_values_supported is not an array "
          "of strings",
          url));
    }
    provider.algorithms = algs->get<std::vector<std::string>>();
    if (std::none_of(provider.algorithms->begin(), provider.algorithms->end(),
                     [](const std::string& a) { return KeyTypeFor(a).has_value(); })) {
      return absl::FailedPreconditionError(fmt::format(
          "the provider advertises no algorithm this server supports (RS256, ES256): {}",
          algs->dump()));
    }
  }
  return provider;
} catch (const Json::exception& e) {
  return absl::FailedPreconditionError(
      fmt::format("the discovery document {} is unusable: {}", url, e.what()));
}

}  // namespace

absl::StatusOr<Json> FetchJson(const HttpGet& get, const std::string& url, std::string_view what) {
  absl::StatusOr<http_client::Response> response = get(url, "");
  if (!response.ok()) {
    const bool unreachable = response.status().code() == absl::StatusCode::kUnavailable ||
                             response.status().code() == absl::StatusCode::kDeadlineExceeded;
    return absl::Status(
        unreachable ? absl::StatusCode::kUnavailable : absl::StatusCode::kFailedPrecondition,
        fmt::format("cannot fetch {}: {}", what, response.status().message()));
  }
  if (response->status < 200 || response->status > 299) {
    // Overloaded or restarting providers come back; other answers mean a wrong URL.
    const bool transient = response->status >= 500 || response->status == 429;
    return absl::Status(
        transient ? absl::StatusCode::kUnavailable : absl::StatusCode::kFailedPrecondition,
        fmt::format("{} {} answered HTTP status {}", what, url, response->status));
  }
  Json json = Json::parse(response->body, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) {
    return absl::FailedPreconditionError(fmt::format("{} {} is not a JSON object", what, url));
  }
  return json;
}

HttpGet DefaultGet(const OidcOptions& options) {
  return [ca_cert_file = options.ca_cert_file, timeout = options.http_timeout](
             const std::string& url, const std::string& bearer) {
    http_client::Request request{.url = url,
                                 .headers = {{"Accept", "application/json"}},
                                 .ca_cert_file = ca_cert_file,
                                 .timeout = timeout};
    if (!bearer.empty()) {
      request.headers.emplace_back("Authorization", "Bearer " + bearer);
    }
    return http_client::Send(request);
  };
}

absl::StatusOr<Provider> FetchProvider(const HttpGet& get, const std::string& issuer,
                                       absl::Time now) {
  const std::string url = WithoutTrailingSlash(issuer) + "/.well-known/openid-configuration";
  DISCOVERY_ASSIGN_OR_RETURN(const Json document, FetchJson(get, url, "the discovery document"));
  DISCOVERY_ASSIGN_OR_RETURN(Provider provider, ParseDocument(document, issuer, url));
  DISCOVERY_ASSIGN_OR_RETURN(const Json jwks, FetchJson(get, provider.jwks_uri, "the JWKS"));
  DISCOVERY_ASSIGN_OR_RETURN(provider.keys, ParseJwks(jwks, provider.jwks_uri));
  provider.keys_fetched = now;
  return provider;
}

KeyLookup FindKey(const Provider& provider, const std::optional<std::string>& kid,
                  std::string_view alg, KeyType type) {
  KeyLookup lookup;
  if (kid.has_value()) {
    const SigningKey* other_type = nullptr;
    for (const SigningKey& key : provider.keys) {
      if (key.kid != *kid) {
        continue;
      }
      if (key.type != type) {
        other_type = &key;
        continue;
      }
      if (!key.alg.empty() && key.alg != alg) {
        lookup.refusal =
            fmt::format(R"(key "{}" is for algorithm "{}", not "{}")", *kid, key.alg, alg);
        continue;
      }
      lookup.key = &key;
      lookup.refusal.reset();
      return lookup;
    }
    if (other_type != nullptr && !lookup.refusal.has_value()) {
      lookup.refusal = fmt::format(R"(algorithm "{}" does not match key "{}", an {} key)", alg,
                                   *kid, KeyTypeName(other_type->type));
    }
    return lookup;
  }
  std::vector<const SigningKey*> candidates;
  for (const SigningKey& key : provider.keys) {
    if (key.type == type && (key.alg.empty() || key.alg == alg)) {
      candidates.push_back(&key);
    }
  }
  if (candidates.size() == 1) {
    lookup.key = candidates.front();
  } else if (candidates.size() > 1) {
    lookup.refusal = fmt::format("the token has no kid and the provider has {} {} keys",
                                 candidates.size(), KeyTypeName(type));
  }
  return lookup;
}

std::string NoKeyReason(const std::optional<std::string>& kid, KeyType type) {
  return kid.has_value() ? fmt::format("no key with kid \"{}\"", Clip(*kid))
                         : fmt::format("the token has no kid and the provider has no {} key",
                                       KeyTypeName(type));
}

}  // namespace discovery::auth::oidc_internal

namespace discovery::auth {

using oidc_internal::FetchJson;
using oidc_internal::FetchProvider;
using oidc_internal::ParseJwks;
using oidc_internal::Provider;
using oidc_internal::SigningKey;

absl::Status OidcVerifier::Load() {
  absl::MutexLock fetch(&fetch_mu_);
  return LoadLocked();
}

absl::Status OidcVerifier::LoadLocked() const {
  const absl::Time now = options_.clock();
  {
    absl::MutexLock lock(&mu_);
    last_load_attempt_ = now;
  }
  absl::StatusOr<Provider> provider = FetchProvider(get_, options_.issuer, now);
  absl::MutexLock lock(&mu_);
  if (!provider.ok()) {
    last_load_error_ = provider.status();
    return provider.status();
  }
  provider_ = std::make_shared<const Provider>(*std::move(provider));
  last_load_error_ = absl::OkStatus();
  return absl::OkStatus();
}

bool OidcVerifier::loaded() const {
  absl::ReaderMutexLock lock(&mu_);
  return provider_ != nullptr;
}

absl::StatusOr<std::shared_ptr<const oidc_internal::Provider>> OidcVerifier::EnsureLoaded() const {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (provider_ != nullptr) {
      return provider_;
    }
  }
  absl::Status error;
  if (fetch_mu_.TryLock()) {
    bool attempt = false;
    {
      absl::ReaderMutexLock lock(&mu_);
      attempt = provider_ == nullptr &&
                (!last_load_attempt_.has_value() ||
                 options_.clock() - *last_load_attempt_ >= options_.min_jwks_refresh);
      error = last_load_error_;
    }
    if (attempt) {
      error = LoadLocked();
    }
    fetch_mu_.Unlock();
  } else {
    // Another thread is loading (the server's background retries): waiting for it could take
    // the whole HTTP timeout, so answer with what the last attempt said.
    absl::ReaderMutexLock lock(&mu_);
    error = last_load_error_;
  }
  if (error.ok()) {
    absl::ReaderMutexLock lock(&mu_);
    if (provider_ != nullptr) {
      return provider_;
    }
    error = absl::UnavailableError("the provider is being loaded");
  }
  return absl::UnavailableError(
      fmt::format("oidc provider {} is not reachable: {}", options_.issuer, error.message()));
}

void OidcVerifier::RefreshKeys() const {
  absl::MutexLock fetch(&fetch_mu_);
  std::shared_ptr<const Provider> current;
  {
    absl::ReaderMutexLock lock(&mu_);
    current = provider_;
  }
  const absl::Time now = options_.clock();
  // Also true when another thread refetched while this one waited for fetch_mu_.
  if (current == nullptr || now - current->keys_fetched < options_.min_jwks_refresh) {
    return;
  }
  auto next = std::make_shared<Provider>(*current);
  next->keys_fetched = now;
  absl::StatusOr<nlohmann::json> jwks = FetchJson(get_, current->jwks_uri, "the JWKS");
  if (jwks.ok()) {
    // A failed refetch keeps the keys we have: the provider may be briefly down.
    absl::StatusOr<std::vector<SigningKey>> keys = ParseJwks(*jwks, current->jwks_uri);
    if (keys.ok()) {
      next->keys = *std::move(keys);
    }
  }
  absl::MutexLock lock(&mu_);
  provider_ = std::move(next);
}

}  // namespace discovery::auth
