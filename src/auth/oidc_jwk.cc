#include "auth/oidc_jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "auth/oidc_claims.h"
#include "common/status_macros.h"

namespace discovery::auth::oidc_internal {
namespace {

using Json = nlohmann::json;

// Shorter RSA keys are ignored: they are not safe for signatures any more.
constexpr int kMinRsaBits = 2048;
constexpr std::size_t kP256CoordinateSize = 32;

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
  DISCOVERY_ASSIGN_OR_RETURN(const std::string n, DecodeJwkMember(jwk, "n"));
  DISCOVERY_ASSIGN_OR_RETURN(const std::string e, DecodeJwkMember(jwk, "e"));
  const BignumPtr n_bn(BN_bin2bn(Bytes(n), static_cast<int>(n.size()), nullptr));
  const BignumPtr e_bn(BN_bin2bn(Bytes(e), static_cast<int>(e.size()), nullptr));
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
  DISCOVERY_ASSIGN_OR_RETURN(const std::string x, DecodeJwkMember(jwk, "x"));
  DISCOVERY_ASSIGN_OR_RETURN(const std::string y, DecodeJwkMember(jwk, "y"));
  if (x.size() != kP256CoordinateSize || y.size() != kP256CoordinateSize) {
    return absl::InvalidArgumentError("coordinates are not 32 bytes");
  }
  // The uncompressed SEC 1 point encoding.
  const std::string point = "\x04" + x + y;
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

}  // namespace

const char* KeyTypeName(KeyType type) { return type == KeyType::kRsa ? "RSA" : "EC P-256"; }

std::optional<KeyType> KeyTypeFor(std::string_view alg) {
  if (alg == "RS256") {
    return KeyType::kRsa;
  }
  if (alg == "ES256") {
    return KeyType::kEc;
  }
  return std::nullopt;
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

}  // namespace discovery::auth::oidc_internal
