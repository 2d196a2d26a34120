#include "auth/oidc_verifier.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <cctype>
#include <cstddef>
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
#include "common/format.h"
#include "http_client/http_client.h"

namespace discovery::auth {
namespace {

using Json = nlohmann::json;

// How far in the future `nbf` may lie (clock skew between the provider and us).
constexpr absl::Duration kNotBeforeLeeway = absl::Minutes(5);
// Shorter RSA keys are ignored: they are not safe for signatures any more.
constexpr int kMinRsaBits = 2048;
constexpr std::size_t kP256CoordinateSize = 32;

enum class KeyType { kRsa, kEc };

const char* KeyTypeName(KeyType type) { return type == KeyType::kRsa ? "RSA" : "EC P-256"; }

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct EvpPkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct EvpMdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BignumDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* bld) const { OSSL_PARAM_BLD_free(bld); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};

using BignumPtr = std::unique_ptr<BIGNUM, BignumDeleter>;

const unsigned char* Bytes(std::string_view data) {
  return reinterpret_cast<const unsigned char*>(data.data());
}

// A token that fails verification has not authenticated anybody: 401, not 403 (RFC 6750 §3.1),
// so that clients log in again instead of concluding they may not.
absl::Status Denied(std::string_view reason) {
  return absl::UnauthenticatedError(fmt::format("personal token is not valid: oidc: {}", reason));
}

// RFC 9068 §2.1: "at+jwt", optionally with the "application/" prefix, in any case.
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

// The algorithms this verifier implements, with the key type each needs.
std::optional<KeyType> KeyTypeFor(std::string_view alg) {
  if (alg == "RS256") {
    return KeyType::kRsa;
  }
  if (alg == "ES256") {
    return KeyType::kEc;
  }
  return std::nullopt;
}

std::string WithoutTrailingSlash(std::string_view url) {
  if (url.ends_with('/')) {
    url.remove_suffix(1);
  }
  return std::string(url);
}

// JWK members are unpadded base64url (RFC 7517); some providers pad anyway.
absl::StatusOr<std::string> DecodeJwkMember(const Json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    return absl::InvalidArgumentError(fmt::format("no string {}", name));
  }
  std::string_view text = it->get_ref<const std::string&>();
  while (text.ends_with('=')) {
    text.remove_suffix(1);
  }
  absl::StatusOr<std::string> decoded = Base64UrlDecode(text);
  if (!decoded.ok() || decoded->empty()) {
    return absl::InvalidArgumentError(fmt::format("{} is not base64url", name));
  }
  return decoded;
}

// EVP_PKEY_fromdata for a public key of `type_name` ("RSA", "EC") from the built parameters,
// then OpenSSL's public key validation (RSA exponent and modulus, EC point on the curve).
absl::StatusOr<std::shared_ptr<EVP_PKEY>> KeyFromParams(const char* type_name,
                                                        OSSL_PARAM_BLD* bld) {
  const std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld));
  const std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type_name, nullptr));
  EVP_PKEY* raw = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return absl::InvalidArgumentError("OpenSSL does not accept the key");
  }
  std::shared_ptr<EVP_PKEY> key(raw, EvpPkeyDeleter());
  const std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxDeleter> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
    return absl::InvalidArgumentError("the public key is invalid");
  }
  return key;
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> RsaKey(const Json& jwk) {
  absl::StatusOr<std::string> n = DecodeJwkMember(jwk, "n");
  absl::StatusOr<std::string> e = DecodeJwkMember(jwk, "e");
  if (!n.ok() || !e.ok()) {
    return !n.ok() ? n.status() : e.status();
  }
  const BignumPtr n_bn(BN_bin2bn(Bytes(*n), static_cast<int>(n->size()), nullptr));
  const BignumPtr e_bn(BN_bin2bn(Bytes(*e), static_cast<int>(e->size()), nullptr));
  const std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (n_bn == nullptr || e_bn == nullptr || bld == nullptr ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1) {
    return absl::InternalError("OpenSSL failed to build RSA parameters");
  }
  absl::StatusOr<std::shared_ptr<EVP_PKEY>> key = KeyFromParams("RSA", bld.get());
  if (key.ok() && EVP_PKEY_get_bits(key->get()) < kMinRsaBits) {
    return absl::InvalidArgumentError(fmt::format("shorter than {} bits", kMinRsaBits));
  }
  return key;
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> EcKey(const Json& jwk) {
  const auto crv = jwk.find("crv");
  if (crv == jwk.end() || !crv->is_string() || *crv != "P-256") {
    return absl::InvalidArgumentError("curve is not P-256");
  }
  absl::StatusOr<std::string> x = DecodeJwkMember(jwk, "x");
  absl::StatusOr<std::string> y = DecodeJwkMember(jwk, "y");
  if (!x.ok() || !y.ok()) {
    return !x.ok() ? x.status() : y.status();
  }
  if (x->size() != kP256CoordinateSize || y->size() != kP256CoordinateSize) {
    return absl::InvalidArgumentError("coordinates are not 32 bytes");
  }
  // The uncompressed SEC 1 point encoding.
  const std::string point = "\x04" + *x + *y;
  const std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return absl::InternalError("OpenSSL failed to build EC parameters");
  }
  return KeyFromParams("EC", bld.get());
}

// ES256 signatures are r || s (RFC 7518 §3.4); OpenSSL verifies DER ECDSA-Sig-Value.
std::optional<std::string> EcdsaDer(std::string_view raw) {
  if (raw.size() != 2 * kP256CoordinateSize) {
    return std::nullopt;
  }
  BignumPtr r(BN_bin2bn(Bytes(raw), static_cast<int>(kP256CoordinateSize), nullptr));
  BignumPtr s(BN_bin2bn(Bytes(raw.substr(kP256CoordinateSize)),
                        static_cast<int>(kP256CoordinateSize), nullptr));
  const std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || sig == nullptr ||
      ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return std::nullopt;
  }
  // ECDSA_SIG owns them now.
  static_cast<void>(r.release());
  static_cast<void>(s.release());
  unsigned char* der = nullptr;
  const int size = i2d_ECDSA_SIG(sig.get(), &der);
  if (size <= 0) {
    return std::nullopt;
  }
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(size));
  OPENSSL_free(der);
  return out;
}

bool SignatureVerifies(EVP_PKEY* key, KeyType type, std::string_view signing_input,
                       std::string_view signature) {
  std::string der;
  if (type == KeyType::kEc) {
    std::optional<std::string> converted = EcdsaDer(signature);
    if (!converted.has_value()) {
      return false;
    }
    der = *std::move(converted);
    signature = der;
  }
  const std::unique_ptr<EVP_MD_CTX, EvpMdCtxDeleter> ctx(EVP_MD_CTX_new());
  return ctx != nullptr &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(signing_input),
                          signing_input.size()) == 1;
}

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

bool StringMemberEquals(const Json& object, const char* name, std::string_view value) {
  const auto it = object.find(name);
  return it != object.end() && it->is_string() && it->get_ref<const std::string&>() == value;
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

// A token's value quoted in an error: the token is untrusted, so its values may be huge.
std::string Clip(std::string_view value) {
  constexpr std::size_t kMaxQuoted = 100;
  return value.size() <= kMaxQuoted ? std::string(value)
                                    : fmt::format("{}...", value.substr(0, kMaxQuoted));
}

std::string FormatNumericDate(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", time, absl::UTCTimeZone());
}

struct SigningKey {
  std::string kid;
  KeyType type = KeyType::kRsa;
  // The JWK's `alg`; "" when it names none.
  std::string alg;
  std::shared_ptr<EVP_PKEY> key;
};

// GETs `url` and parses a JSON object; `what` names the document in errors.
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

// The usable signing keys of a JWKS. Keys of other types, curves or uses, and keys OpenSSL
// rejects, are skipped: one odd key must not make the provider's other keys unusable.
absl::StatusOr<std::vector<SigningKey>> ParseJwks(const Json& jwks, const std::string& url) try {
  const auto keys = jwks.find("keys");
  if (keys == jwks.end() || !keys->is_array()) {
    return absl::FailedPreconditionError(fmt::format("the JWKS {} has no keys array", url));
  }
  std::vector<SigningKey> usable;
  for (const Json& jwk : *keys) {
    // Keys meant for encryption only ("use":"enc") do not sign tokens.
    if (!jwk.is_object() || (jwk.contains("use") && !StringMemberEquals(jwk, "use", "sig"))) {
      continue;
    }
    SigningKey key;
    absl::StatusOr<std::shared_ptr<EVP_PKEY>> pkey;
    if (StringMemberEquals(jwk, "kty", "RSA")) {
      key.type = KeyType::kRsa;
      pkey = RsaKey(jwk);
    } else if (StringMemberEquals(jwk, "kty", "EC")) {
      key.type = KeyType::kEc;
      pkey = EcKey(jwk);
    } else {
      continue;
    }
    if (!pkey.ok()) {
      continue;
    }
    key.key = *std::move(pkey);
    if (const auto kid = jwk.find("kid"); kid != jwk.end() && kid->is_string()) {
      key.kid = kid->get<std::string>();
    }
    if (const auto alg = jwk.find("alg"); alg != jwk.end() && alg->is_string()) {
      key.alg = alg->get<std::string>();
    }
    usable.push_back(std::move(key));
  }
  if (usable.empty()) {
    return absl::FailedPreconditionError(
        fmt::format("the JWKS {} has no usable RS256 or ES256 signing key", url));
  }
  return usable;
} catch (const Json::exception& e) {
  return absl::FailedPreconditionError(fmt::format("the JWKS {} is unusable: {}", url, e.what()));
}

}  // namespace

namespace oidc_internal {

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

}  // namespace oidc_internal

namespace {

using oidc_internal::Provider;

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

// How a token's key was looked up.
struct KeyLookup {
  const SigningKey* key = nullptr;
  // Set when looking again after refetching the JWKS cannot help.
  std::optional<std::string> refusal;
};

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

// The user as the configured claims of `claims` name them; nullopt members for missing claims.
struct ClaimedUser {
  std::optional<std::string> name;
  std::optional<std::vector<std::string>> roles;
};

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

}  // namespace

OidcVerifier::OidcVerifier(OidcOptions options, HttpGet get)
    : options_(std::move(options)),
      get_(get ? std::move(get) : DefaultGet(options_)),
      userinfo_(options_.userinfo_cache_size) {}

OidcVerifier::~OidcVerifier() = default;

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
  const std::string url =
      WithoutTrailingSlash(options_.issuer) + "/.well-known/openid-configuration";
  absl::StatusOr<Provider> provider = [&]() -> absl::StatusOr<Provider> {
    absl::StatusOr<Json> document = FetchJson(get_, url, "the discovery document");
    if (!document.ok()) {
      return document.status();
    }
    absl::StatusOr<Provider> parsed = ParseDocument(*document, options_.issuer, url);
    if (!parsed.ok()) {
      return parsed.status();
    }
    absl::StatusOr<Json> jwks = FetchJson(get_, parsed->jwks_uri, "the JWKS");
    if (!jwks.ok()) {
      return jwks.status();
    }
    absl::StatusOr<std::vector<SigningKey>> keys = ParseJwks(*jwks, parsed->jwks_uri);
    if (!keys.ok()) {
      return keys.status();
    }
    parsed->keys = *std::move(keys);
    parsed->keys_fetched = now;
    return parsed;
  }();
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
  absl::StatusOr<Json> jwks = FetchJson(get_, current->jwks_uri, "the JWKS");
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

// The checks make nlohmann's accessors safe; the try block keeps a missed case from escaping.
absl::StatusOr<Principal> OidcVerifier::Verify(std::string_view token) const try {
  absl::StatusOr<DecodedJwt> jwt = DecodeJwt(token);
  if (!jwt.ok()) {
    return Denied(fmt::format("malformed token: {}", jwt.status().message()));
  }
  const auto& alg = jwt->header.at("alg").get_ref<const std::string&>();
  const std::optional<KeyType> type = KeyTypeFor(alg);
  if (!type.has_value()) {
    return Denied(fmt::format("unsupported algorithm \"{}\"", Clip(alg)));
  }
  if (jwt->header.contains("crit")) {
    return Denied("critical header parameters are not supported");
  }
  std::optional<std::string> kid;
  if (const auto it = jwt->header.find("kid"); it != jwt->header.end()) {
    if (!it->is_string()) {
      return Denied("malformed token: kid is not a string");
    }
    kid = it->get<std::string>();
  }
  absl::StatusOr<std::string> signature = Base64UrlDecode(jwt->signature_segment);
  if (!signature.ok()) {
    return Denied(fmt::format("malformed token: could not decode signature: {}",
                              signature.status().message()));
  }

  absl::StatusOr<std::shared_ptr<const Provider>> provider = EnsureLoaded();
  if (!provider.ok()) {
    return provider.status();
  }
  if ((*provider)->algorithms.has_value() &&
      std::find((*provider)->algorithms->begin(), (*provider)->algorithms->end(), alg) ==
          (*provider)->algorithms->end()) {
    return Denied(fmt::format("algorithm \"{}\" is not advertised by the provider", alg));
  }
  KeyLookup lookup = FindKey(**provider, kid, alg, *type);
  if (lookup.key == nullptr && !lookup.refusal.has_value()) {
    // The provider may have rotated its keys since we fetched them.
    RefreshKeys();
    {
      absl::ReaderMutexLock lock(&mu_);
      *provider = provider_;
    }
    lookup = FindKey(**provider, kid, alg, *type);
  }
  if (lookup.key == nullptr) {
    return Denied(lookup.refusal.value_or(NoKeyReason(kid, *type)));
  }
  if (!SignatureVerifies(lookup.key->key.get(), lookup.key->type, jwt->signing_input, *signature)) {
    return Denied("signature does not verify");
  }

  const Json& claims = jwt->payload;
  const auto iss = claims.find("iss");
  if (iss == claims.end() || !iss->is_string()) {
    return Denied("token has no issuer");
  }
  if (*iss != (*provider)->issuer) {
    return Denied(fmt::format(R"(issuer "{}" is not "{}")",
                              Clip(iss->get_ref<const std::string&>()), (*provider)->issuer));
  }
  const absl::Time now = options_.clock();
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
  // ID tokens name the client in `aud`; JWT access tokens (RFC 9068) in `client_id` (or `azp`),
  // and glewlwyd's carry the scope string in `aud`. Only a token typed as an access token may
  // use the second way: an ID token issued to another client names ours at most in `azp`.
  const bool access_token = IsAccessTokenType(jwt->header);
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
  if (const std::optional<std::string> refused = not_for(options_.client_id);
      refused.has_value() &&
      (options_.ui_client_id.empty() || not_for(options_.ui_client_id).has_value())) {
    return Denied(*refused);
  }

  ClaimedUser user = ClaimsOf(claims, options_);
  if (access_token && (!user.name.has_value() || !user.roles.has_value()) &&
      !(*provider)->userinfo_endpoint.empty()) {
    std::string subject;
    if (const auto sub = claims.find("sub"); sub != claims.end() && sub->is_string()) {
      subject = sub->get<std::string>();
    }
    absl::StatusOr<Principal> from_userinfo = userinfo_.Get(token, now, **expires, [&] {
      return FetchUserinfo((*provider)->userinfo_endpoint, token, subject);
    });
    if (!from_userinfo.ok()) {
      return from_userinfo.status();
    }
    if (!user.name.has_value()) {
      user.name = from_userinfo->name;
    }
    if (!user.roles.has_value()) {
      user.roles = from_userinfo->roles;
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
