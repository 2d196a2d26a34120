// Fuzzes the bearer-token path of every API call: JWS decoding (auth/jwt.h), base64url,
// HS256 machine-token verification (auth/machine_token.h) and the Authenticator in front of
// them, with an OIDC verifier behind it that trusts one ES256 key. The first byte picks how the
// rest of the input becomes a token:
//   '0' the token itself;
//   '1' "<header>\n<payload>", base64url-encoded and correctly HS256-signed with the machine
//       secret, so that the claim checks behind the signature are reached;
//   '2' the same, ES256-signed with the provider's key (the OIDC claim checks).
// Invariants: errors are the documented status codes and never echo the token or the secret;
// a verified machine token's claims survive being re-issued and verified again.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "fuzz_check.h"
#include "nlohmann/json.hpp"

#include "auth/authenticator.h"
#include "auth/base64url.h"
#include "auth/bearer.h"
#include "auth/jwt.h"
#include "auth/machine_token.h"
#include "auth/oidc_verifier.h"
#include "common/format.h"

namespace {

namespace auth = ::discovery::auth;
using ::discovery::fuzz::Check;

constexpr std::string_view kMachineIssuer = "discovery";
constexpr std::string_view kSecret = "fuzz-secret-0123456789";
constexpr std::string_view kOidcIssuer = "https://idp.example.test";
const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

std::string Bytes(const unsigned char* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// The provider's only key, P-256, generated once per process.
EVP_PKEY* ProviderKey() {
  static const Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  Check(key != nullptr, "P-256 key generation");
  return key.get();
}

std::string Coordinate(const char* name) {
  BIGNUM* bn = nullptr;
  Check(EVP_PKEY_get_bn_param(ProviderKey(), name, &bn) == 1, "EC public key coordinate");
  std::array<unsigned char, 32> out{};
  BN_bn2binpad(bn, out.data(), static_cast<int>(out.size()));
  BN_free(bn);
  return auth::Base64UrlEncode(Bytes(out.data(), out.size()));
}

// Serves the discovery document and the JWKS of the provider, like the unit tests' fake.
absl::StatusOr<discovery::http_client::Response> ProviderGet(const std::string& url,
                                                             const std::string& /*bearer*/) {
  const std::string issuer{kOidcIssuer};
  if (url == issuer + "/.well-known/openid-configuration") {
    const nlohmann::json document = {{"issuer", issuer},
                                     {"jwks_uri", issuer + "/jwks"},
                                     {"id_token_signing_alg_values_supported", {"ES256"}}};
    return discovery::http_client::Response{.status = 200, .body = document.dump()};
  }
  if (url == issuer + "/jwks") {
    const nlohmann::json jwk = {{"kty", "EC"},
                                {"crv", "P-256"},
                                {"kid", "ec1"},
                                {"x", Coordinate(OSSL_PKEY_PARAM_EC_PUB_X)},
                                {"y", Coordinate(OSSL_PKEY_PARAM_EC_PUB_Y)}};
    return discovery::http_client::Response{.status = 200,
                                            .body = nlohmann::json{{"keys", {jwk}}}.dump()};
  }
  return discovery::http_client::Response{.status = 404, .body = "not found"};
}

const auth::Authenticator& TheAuthenticator() {
  static auth::OidcVerifier verifier({.issuer = std::string{kOidcIssuer},
                                      .client_id = "discovery",
                                      .username_claim = "preferred_username",
                                      .roles_claim = "realm_access.roles",
                                      .clock = [] { return kNow; }},
                                     ProviderGet);
  static const bool loaded = verifier.Load().ok();
  Check(loaded, "the fake provider loads");
  static const auth::Authenticator authenticator(
      {.issuer = std::string{kMachineIssuer},
       .secret = std::string{kSecret},
       .user_tokens = [](std::string_view token) { return verifier.Verify(token); },
       .clock = [] { return kNow; }});
  return authenticator;
}

std::string HmacSha256(std::string_view input) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  Check(HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(),
             &size) != nullptr,
        "HMAC");
  return Bytes(mac.data(), size);
}

// ECDSA P-256 with SHA-256, as JWS wants it: r || s, 32 bytes each.
std::string Es256(std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  Check(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, ProviderKey()) == 1,
        "ECDSA init");
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  size_t size = 0;
  Check(EVP_DigestSign(ctx.get(), nullptr, &size, data, input.size()) == 1, "ECDSA size");
  std::vector<unsigned char> der(size);
  Check(EVP_DigestSign(ctx.get(), der.data(), &size, data, input.size()) == 1, "ECDSA sign");
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(size));  // NOLINT
  Check(sig != nullptr, "ECDSA signature decodes");
  std::array<unsigned char, 64> rs{};
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs.data(), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs.data() + 32, 32);
  ECDSA_SIG_free(sig);
  return Bytes(rs.data(), rs.size());
}

// "<header>\n<payload>" as a signed compact JWS; without '\n' the whole text is the payload of
// a standard header.
std::string SignedToken(std::string_view text, bool ec) {
  std::string_view header = ec ? R"({"alg":"ES256","kid":"ec1"})" : R"({"alg":"HS256"})";
  std::string_view payload = text;
  if (const size_t newline = text.find('\n'); newline != std::string_view::npos) {
    header = text.substr(0, newline);
    payload = text.substr(newline + 1);
  }
  const std::string input = auth::Base64UrlEncode(header) + "." + auth::Base64UrlEncode(payload);
  return input + "." + auth::Base64UrlEncode(ec ? Es256(input) : HmacSha256(input));
}

// `signed_token` is the token when this input built it ("" for a raw token): a raw token is the
// fuzzer's text and may well be a piece of an error message ("valid token: ..."), while a
// built one is base64url segments that no message holds unless it echoes the token.
// True when `token` itself carries `needle` (raw, in a decoded segment, or in a claim), so a
// message quoting the token's claims may show it without leaking anything.
bool TokenCarries(std::string_view token, std::string_view needle) {
  if (token.find(needle) != std::string_view::npos) {
    return true;
  }
  size_t start = 0;
  while (start <= token.size()) {
    const size_t dot = std::min(token.find('.', start), token.size());
    const absl::StatusOr<std::string> decoded =
        auth::Base64UrlDecode(token.substr(start, dot - start));
    if (decoded.ok() && decoded->find(needle) != std::string::npos) {
      return true;
    }
    start = dot + 1;
  }
  const absl::StatusOr<auth::DecodedJwt> jwt = auth::DecodeJwt(token);
  return jwt.ok() &&
         (jwt->header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).find(needle) !=
              std::string::npos ||
          jwt->payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  .find(needle) != std::string::npos);
}

void CheckNoSecrets(const absl::Status& status, std::string_view token,
                    std::string_view signed_token) {
  const std::string_view message = discovery::ToStd(status.message());
  Check(TokenCarries(token, kSecret) || message.find(kSecret) == std::string_view::npos,
        "messages never hold the secret", message);
  Check(signed_token.empty() || message.find(signed_token) == std::string_view::npos,
        "messages never hold the token", message);
}

void FuzzDecoding(std::string_view token) {
  const absl::StatusOr<auth::DecodedJwt> decoded = auth::DecodeJwt(token);
  const absl::StatusOr<std::optional<std::string>> issuer = auth::PeekIssuer(token);
  Check(decoded.ok() == issuer.ok(), "PeekIssuer accepts what DecodeJwt accepts", token);
  if (!decoded.ok()) {
    Check(decoded.status().code() == absl::StatusCode::kInvalidArgument,
          "decode errors are InvalidArgument", decoded.status().message());
    Check(issuer.status().code() == absl::StatusCode::kInvalidArgument,
          "peek errors are InvalidArgument", issuer.status().message());
    return;
  }
  Check(decoded->header.is_object() && decoded->payload.is_object() &&
            decoded->header.contains("alg") && decoded->header["alg"].is_string(),
        "a decoded JWT has object header with string alg and object payload", token);
  Check(
      std::string{decoded->signing_input} + "." + std::string{decoded->signature_segment} == token,
      "the segments are the token", token);
  for (const char* claim : {"exp", "nbf", "iat"}) {
    const auto date = auth::NumericDateClaim(decoded->payload, claim);
    if (!date.ok()) {
      Check(date.status().code() == absl::StatusCode::kInvalidArgument,
            "claim errors are InvalidArgument", date.status().message());
    }
  }
}

// Verifies as the server does; a verified token is re-issued with its own claims and must
// verify to the same claims again.
void FuzzMachineToken(std::string_view token, std::string_view signed_token) {
  const absl::StatusOr<auth::MachineClaims> claims =
      auth::VerifyMachineToken(token, kMachineIssuer, kSecret, kNow);
  if (!claims.ok()) {
    const absl::StatusCode code = claims.status().code();
    Check(code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kUnauthenticated,
          "verification errors are InvalidArgument or Unauthenticated", claims.status().message());
    Check(absl::StartsWith(claims.status().message(), "invalid token: "),
          "verification errors are prefixed", claims.status().message());
    CheckNoSecrets(claims.status(), token, signed_token);
    return;
  }
  auth::MachineClaims expected = *claims;
  absl::Duration lifetime = absl::ZeroDuration();
  if (expected.expires.has_value()) {
    Check(*expected.expires > kNow, "a verified token has not expired", token);
    if (*expected.expires == absl::InfiniteFuture()) {
      // Re-issuing writes no exp for an infinite lifetime: both never expire.
      expected.expires.reset();
    } else {
      lifetime = *expected.expires - kNow;
    }
  }
  const absl::StatusOr<std::string> reissued =
      auth::CreateMachineToken({.issuer = std::string{kMachineIssuer},
                                .secret = std::string{kSecret},
                                .admin = claims->admin},
                               claims->id, claims->namespaces, lifetime, kNow);
  Check(reissued.ok(), "verified claims can be re-issued", reissued.status().message());
  const absl::StatusOr<auth::MachineClaims> again =
      auth::VerifyMachineToken(*reissued, kMachineIssuer, kSecret, kNow);
  Check(again.ok(), "a re-issued token verifies", *reissued);
  Check(*again == expected, "a re-issued token has the same claims", *reissued);
  (void)auth::MachinePrincipal(*claims);
}

void FuzzAuthenticate(std::string_view token, std::string_view signed_token) {
  const absl::StatusOr<auth::Principal> principal =
      TheAuthenticator().Authenticate("Bearer " + std::string{token});
  if (principal.ok()) {
    return;
  }
  const absl::StatusCode code = principal.status().code();
  // RFC 6750 §3.1: whatever is wrong with a bearer, it authenticates nobody (401, never 403).
  Check(code == absl::StatusCode::kUnauthenticated, "authentication errors are Unauthenticated",
        principal.status().message());
  CheckNoSecrets(principal.status(), token, signed_token);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token;
  switch (data[0] % 3) {
    case 0: {
      token = std::string{input};
      (void)auth::BearerToken(input);
      const absl::StatusOr<std::string> decoded = auth::Base64UrlDecode(input);
      if (decoded.ok()) {
        Check(auth::Base64UrlEncode(*decoded) == input, "only canonical base64url decodes", input);
      }
      break;
    }
    case 1:
      token = SignedToken(input, /*ec=*/false);
      break;
    default:
      token = SignedToken(input, /*ec=*/true);
      break;
  }
  const std::string_view signed_token = data[0] % 3 == 0 ? std::string_view() : token;
  FuzzDecoding(token);
  FuzzMachineToken(token, signed_token);
  FuzzAuthenticate(token, signed_token);
  return 0;
}
