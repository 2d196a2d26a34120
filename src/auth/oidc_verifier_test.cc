#include "auth/oidc_verifier.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "auth/principal.h"
#include "testing/status_matchers.h"

namespace discovery::auth {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Json = nlohmann::json;

constexpr std::string_view kIssuer = "https://idp.example.test/api/oidc";
constexpr std::string_view kDocumentUrl =
    "https://idp.example.test/api/oidc/.well-known/openid-configuration";
constexpr std::string_view kJwksUrl = "https://idp.example.test/api/oidc/jwks";
constexpr std::string_view kUserinfoUrl = "https://idp.example.test/api/oidc/userinfo";
constexpr std::string_view kClientId = "discovery";
const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::string Bytes(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// BN → fixed-size (or minimal, with size 0) big-endian bytes, base64url.
std::string BnParam(EVP_PKEY* key, const char* name, int size = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, name, &bn), 1) << name;
  std::vector<unsigned char> out(size > 0 ? static_cast<std::size_t>(size)
                                          : static_cast<std::size_t>(BN_num_bytes(bn)));
  if (size > 0) {
    BN_bn2binpad(bn, out.data(), size);
  } else {
    BN_bn2bin(bn, out.data());
  }
  BN_free(bn);
  return Base64UrlEncode(Bytes(out.data(), out.size()));
}

// A key pair generated for the test, with its public JWK.
struct TestKey {
  std::shared_ptr<EVP_PKEY> pkey;
  bool ec = false;

  Json Jwk(std::string_view kid) const {
    Json jwk;
    if (ec) {
      jwk = {{"kty", "EC"},
             {"crv", "P-256"},
             {"x", BnParam(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, 32)},
             {"y", BnParam(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 32)}};
    } else {
      jwk = {{"kty", "RSA"},
             {"n", BnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_N)},
             {"e", BnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_E)}};
    }
    if (!kid.empty()) {
      jwk["kid"] = std::string(kid);
    }
    return jwk;
  }

  // The public key as PEM, the "secret" of the HS256 confusion attack.
  std::string PublicPem() const {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), pkey.get()), 1);
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);  // NOLINT(google-runtime-int)
    return {data, static_cast<std::size_t>(size)};
  }
};

TestKey GenerateRsa() {
  return {std::shared_ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}),
                                    PkeyDeleter()),
          false};
}

TestKey GenerateEc() {
  return {
      std::shared_ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), PkeyDeleter()),
      true};
}

// Generated once: RSA key generation takes a while.
const TestKey& Rsa1() {
  static const TestKey key = GenerateRsa();
  return key;
}
const TestKey& Rsa2() {
  static const TestKey key = GenerateRsa();
  return key;
}
const TestKey& Ec1() {
  static const TestKey key = GenerateEc();
  return key;
}
const TestKey& Ec2() {
  static const TestKey key = GenerateEc();
  return key;
}

// Signs with the key's own mechanism (RSASSA-PKCS1-v1_5 or ECDSA, SHA-256) whatever the header
// claims, so that tests can lie in the header.
std::string SignWith(const TestKey& key, const Json& header, const Json& payload) {
  const std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(payload.dump());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.pkey.get()), 1);
  std::size_t size = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &size, data, input.size()), 1);
  std::vector<unsigned char> signature(size);
  EXPECT_EQ(EVP_DigestSign(ctx.get(), signature.data(), &size, data, input.size()), 1);
  signature.resize(size);
  std::string raw = Bytes(signature.data(), signature.size());
  if (key.ec) {
    // DER ECDSA-Sig-Value → JWS r || s.
    const unsigned char* p = signature.data();
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(size));  // NOLINT
    std::array<unsigned char, 64> rs{};
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs.data(), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs.data() + 32, 32);
    ECDSA_SIG_free(sig);
    raw = Bytes(rs.data(), rs.size());
  }
  return input + "." + Base64UrlEncode(raw);
}

std::string SignHmac(const EVP_MD* md, std::string_view secret, const Json& header,
                     const Json& payload) {
  const std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(payload.dump());
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  HMAC(md, secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &size);
  return input + "." + Base64UrlEncode(Bytes(mac.data(), size));
}

// A settable clock, read from several threads.
class FakeClock {
 public:
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = kStart;
};

// Serves the discovery document and the JWKS, counting the requests.
class FakeProvider {
 public:
  FakeProvider() {
    document_ = {{"issuer", kIssuer},
                 {"jwks_uri", kJwksUrl},
                 {"token_endpoint", std::string(kIssuer) + "/token"},
                 {"userinfo_endpoint", kUserinfoUrl},
                 {"id_token_signing_alg_values_supported", {"RS256", "ES256"}}};
    jwks_ = {{"keys", {Rsa1().Jwk("rsa1"), Ec1().Jwk("ec1")}}};
  }

  HttpGet Getter() {
    return [this](const std::string& url,
                  const std::string& bearer) -> absl::StatusOr<http_client::Response> {
      absl::MutexLock lock(&mu_);
      ++fetches_[url];
      if (down_) {
        return absl::UnavailableError("GET " + url + ": Failed to connect: Connection refused");
      }
      if (url == kUserinfoUrl) {
        const auto it = userinfo_.find(bearer);
        if (bearer.empty() || it == userinfo_.end()) {
          return http_client::Response{.status = 401, .body = ""};
        }
        return http_client::Response{.status = 200, .body = it->second.dump()};
      }
      if (url == kDocumentUrl) {
        return http_client::Response{.status = document_status_, .body = document_.dump()};
      }
      if (url == kJwksUrl) {
        return http_client::Response{.status = 200, .body = jwks_.dump()};
      }
      return http_client::Response{.status = 404, .body = "not found"};
    };
  }

  // What userinfo answers for the bearer `token` (401 for tokens not set).
  void set_userinfo(const std::string& token, Json claims) {
    absl::MutexLock lock(&mu_);
    userinfo_[token] = std::move(claims);
  }
  void set_down(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  void set_document(Json document) {
    absl::MutexLock lock(&mu_);
    document_ = std::move(document);
  }
  void set_document_status(int status) {
    absl::MutexLock lock(&mu_);
    document_status_ = status;
  }
  void set_keys(Json keys) {
    absl::MutexLock lock(&mu_);
    jwks_ = {{"keys", std::move(keys)}};
  }
  Json document() const {
    absl::MutexLock lock(&mu_);
    return document_;
  }
  int fetches(std::string_view url) const {
    absl::MutexLock lock(&mu_);
    const auto it = fetches_.find(std::string(url));
    return it == fetches_.end() ? 0 : it->second;
  }

 private:
  mutable absl::Mutex mu_;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  int document_status_ ABSL_GUARDED_BY(mu_) = 200;
  Json document_ ABSL_GUARDED_BY(mu_);
  Json jwks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> fetches_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Json> userinfo_ ABSL_GUARDED_BY(mu_);
};

class OidcVerifierTest : public ::testing::Test {
 protected:
  std::unique_ptr<OidcVerifier> Make(OidcOptions options = {}) {
    options.issuer = std::string(kIssuer);
    options.client_id = std::string(kClientId);
    options.clock = [this] { return clock_.Now(); };
    return std::make_unique<OidcVerifier>(std::move(options), provider_.Getter());
  }
  std::unique_ptr<OidcVerifier> MakeLoaded(OidcOptions options = {}) {
    std::unique_ptr<OidcVerifier> verifier = Make(std::move(options));
    EXPECT_THAT(verifier->Load(), IsOk());
    return verifier;
  }

  // An ID token as glewlwyd issues it (plus preferred_username).
  Json IdClaims() const {
    const std::int64_t now = absl::ToUnixSeconds(clock_.Now());
    return {{"iss", kIssuer},      {"sub", "mKsCCpjB71RnOaZ5sy8aPClgeFViu0dD"},
            {"aud", kClientId},    {"azp", kClientId},
            {"exp", now + 3600},   {"iat", now},
            {"auth_time", now},    {"preferred_username", "alice"},
            {"username", "alice"}, {"roles", {"discovery-admin", "viewer"}}};
  }
  static Json Header(std::string_view alg, std::string_view kid, std::string_view typ = "JWT") {
    Json header = {{"alg", std::string(alg)}, {"typ", std::string(typ)}};
    if (!kid.empty()) {
      header["kid"] = std::string(kid);
    }
    return header;
  }
  static std::string RsaToken(const Json& claims, std::string_view kid = "rsa1") {
    return SignWith(Rsa1(), Header("RS256", kid), claims);
  }

  FakeClock clock_;
  FakeProvider provider_;
};

MATCHER_P(DeniedBecause, reason, "") {
  return ::testing::ExplainMatchResult(
      StatusIs(absl::StatusCode::kUnauthenticated,
               AllOf(HasSubstr("personal token is not valid: oidc: "), HasSubstr(reason))),
      arg, result_listener);
}

TEST_F(OidcVerifierTest, AcceptsRs256IdToken) {
  auto verifier = MakeLoaded();
  EXPECT_TRUE(verifier->loaded());
  absl::StatusOr<Principal> principal = verifier->Verify(RsaToken(IdClaims()));
  ASSERT_THAT(principal, IsOk());
  EXPECT_EQ(principal->kind, Principal::Kind::kUser);
  EXPECT_EQ(principal->name, "alice");
  EXPECT_THAT(principal->roles, ElementsAre("discovery-admin", "viewer"));
  EXPECT_THAT(principal->namespaces, IsEmpty());
  EXPECT_EQ(provider_.fetches(kDocumentUrl), 1);
  EXPECT_EQ(provider_.fetches(kJwksUrl), 1);
}

TEST_F(OidcVerifierTest, AcceptsEs256IdToken) {
  auto verifier = MakeLoaded();
  absl::StatusOr<Principal> principal =
      verifier->Verify(SignWith(Ec1(), Header("ES256", "ec1"), IdClaims()));
  ASSERT_THAT(principal, IsOk());
  EXPECT_EQ(principal->name, "alice");
}

TEST_F(OidcVerifierTest, AcceptsGlewlwydAccessToken) {
  auto verifier = MakeLoaded();
  // aud is the scope string, client_id names the client, roles come as one joined string.
  Json claims = IdClaims();
  claims["aud"] = "openid sd.read";
  claims.erase("azp");
  claims["client_id"] = kClientId;
  claims["scope"] = "openid sd.read";
  claims["roles"] = "viewer,discovery-admin";
  absl::StatusOr<Principal> principal =
      verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), claims));
  ASSERT_THAT(principal, IsOk());
  EXPECT_THAT(principal->roles, ElementsAre("viewer", "discovery-admin"));
}

TEST_F(OidcVerifierTest, AcceptsAudienceArraysAndAzp) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims["aud"] = {"other", kClientId};
  claims.erase("azp");
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), IsOk());
  // azp alone names the client only in an access token (RFC 9068 typ).
  claims["aud"] = "other";
  claims["azp"] = kClientId;
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), claims)),
              IsOk());
  EXPECT_THAT(
      verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "application/AT+JWT"), claims)),
      IsOk());
}

// --oidc-ui-client-id: the web UI's tokens are accepted like the CLI's; a third client's are not,
// and without the option neither are the UI's.
TEST_F(OidcVerifierTest, AcceptsTheUiClientNextToTheCliClient) {
  Json claims = IdClaims();
  claims["aud"] = "discovery-ui";
  claims["azp"] = "discovery-ui";
  EXPECT_THAT(MakeLoaded()->Verify(RsaToken(claims)), DeniedBecause("audience does not contain"));
  auto verifier = MakeLoaded({.ui_client_id = "discovery-ui"});
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), IsOk());
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
  claims["aud"] = "another-app";
  claims["azp"] = "another-app";
  EXPECT_THAT(
      verifier->Verify(RsaToken(claims)),
      DeniedBecause("audience does not contain the client id \"" + std::string(kClientId) + "\""));
}

// RFC 9068: a token accepted through client_id or azp must say it is an access token; ID tokens
// are matched by aud, whatever their typ.
TEST_F(OidcVerifierTest, ClientIdAndAzpOnlyForAccessTokens) {
  auto verifier = MakeLoaded();
  Json access = IdClaims();
  access["aud"] = "openid discovery";
  access.erase("azp");
  access["client_id"] = kClientId;
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), access)),
              IsOk());
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "JWT"), access)),
              DeniedBecause("typ at+jwt"));
  Json header = Header("RS256", "rsa1");
  header.erase("typ");
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), header, access)), DeniedBecause("typ at+jwt"));
  // An ID token of another client that names ours as authorized party.
  Json id = IdClaims();
  id["aud"] = "other";
  id["azp"] = kClientId;
  EXPECT_THAT(verifier->Verify(RsaToken(id)), DeniedBecause("typ at+jwt"));
  // An ID token is matched by aud with any typ, none included.
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), header, IdClaims())), IsOk());
}

// A refreshed glewlwyd access token: typ at+jwt, client_id, no username and no roles claim.
Json RefreshedAccessClaims(const Json& id_claims) {
  Json access = id_claims;
  access["aud"] = "openid";
  access.erase("azp");
  access.erase("roles");
  access.erase("preferred_username");
  access.erase("username");
  access["client_id"] = kClientId;
  access["scope"] = "openid";
  return access;
}

TEST_F(OidcVerifierTest, AccessTokenWithoutRolesReadsUserinfoOnceUntilItExpires) {
  auto verifier = MakeLoaded({.username_claim = "preferred_username"});
  const Json claims = RefreshedAccessClaims(IdClaims());
  const std::string token = SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), claims);
  provider_.set_userinfo(
      token,
      {{"sub", claims["sub"]}, {"preferred_username", "alice"}, {"roles", {"discovery-admin"}}});
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Principal> principal = verifier->Verify(token);
    ASSERT_THAT(principal, IsOk());
    EXPECT_EQ(principal->name, "alice");
    EXPECT_THAT(principal->roles, ElementsAre("discovery-admin"));
  }
  EXPECT_EQ(provider_.fetches(kUserinfoUrl), 1);
  // A second token of the same user is asked about separately.
  Json other = claims;
  other["jti"] = "second";
  const std::string second = SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), other);
  provider_.set_userinfo(second, {{"sub", claims["sub"]}, {"roles", "viewer"}});
  absl::StatusOr<Principal> viewer = verifier->Verify(second);
  ASSERT_THAT(viewer, IsOk());
  EXPECT_THAT(viewer->roles, ElementsAre("viewer"));
  EXPECT_EQ(viewer->name, "");
  EXPECT_EQ(provider_.fetches(kUserinfoUrl), 2);
  // Once the token expired it is refused before userinfo is asked again.
  clock_.Advance(absl::Seconds(3601));
  EXPECT_THAT(verifier->Verify(token), DeniedBecause("expired"));
  EXPECT_EQ(provider_.fetches(kUserinfoUrl), 2);
}

TEST_F(OidcVerifierTest, UserinfoOnlyForMissingClaimsOfAccessTokens) {
  auto verifier = MakeLoaded();
  // An ID token without roles: its user has none; userinfo is not asked.
  Json id = IdClaims();
  id.erase("roles");
  absl::StatusOr<Principal> principal = verifier->Verify(RsaToken(id));
  ASSERT_THAT(principal, IsOk());
  EXPECT_THAT(principal->roles, IsEmpty());
  // An access token carrying both claims is taken as it is.
  Json access = IdClaims();
  access["aud"] = "openid";
  access["client_id"] = kClientId;
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), access)),
              IsOk());
  EXPECT_EQ(provider_.fetches(kUserinfoUrl), 0);
}

TEST_F(OidcVerifierTest, UserinfoRefusalsAndOutages) {
  auto verifier = MakeLoaded();
  const Json claims = RefreshedAccessClaims(IdClaims());
  const std::string token = SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), claims);
  // The provider does not know the token (any more): it authenticates nobody.
  EXPECT_THAT(verifier->Verify(token), DeniedBecause("userinfo endpoint refused the token"));
  // An answer about somebody else is not used.
  provider_.set_userinfo(token, {{"sub", "somebody-else"}, {"roles", {"discovery-admin"}}});
  EXPECT_THAT(verifier->Verify(token), DeniedBecause("another subject"));
  // The provider down: retryable, and the failure is not remembered.
  provider_.set_userinfo(token, {{"sub", claims["sub"]}, {"roles", {"discovery-admin"}}});
  provider_.set_down(true);
  EXPECT_THAT(verifier->Verify(token),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("is not reachable: userinfo"), Not(HasSubstr(token)))));
  provider_.set_down(false);
  absl::StatusOr<Principal> principal = verifier->Verify(token);
  ASSERT_THAT(principal, IsOk());
  EXPECT_THAT(principal->roles, ElementsAre("discovery-admin"));
}

TEST_F(OidcVerifierTest, ConcurrentRequestsWithOneTokenAskUserinfoOnce) {
  auto verifier = MakeLoaded();
  const Json claims = RefreshedAccessClaims(IdClaims());
  const std::string token = SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), claims);
  provider_.set_userinfo(token, {{"sub", claims["sub"]}, {"roles", {"discovery-admin"}}});
  std::vector<std::thread> threads;
  threads.reserve(8);
  std::atomic<int> admins = 0;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      absl::StatusOr<Principal> principal = verifier->Verify(token);
      if (principal.ok() && principal->roles == std::vector<std::string>{"discovery-admin"}) {
        ++admins;
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(admins.load(), 8);
  EXPECT_EQ(provider_.fetches(kUserinfoUrl), 1);
}

TEST_F(OidcVerifierTest, RefusesTokensForAnotherClient) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims["aud"] = {"other", "third"};
  claims["azp"] = "other";
  EXPECT_THAT(verifier->Verify(RsaToken(claims)),
              DeniedBecause("audience does not contain the client id \"discovery\""));
  // An access token of another client is refused although its typ is at+jwt.
  Json access = IdClaims();
  access["aud"] = "openid";
  access.erase("azp");
  access["client_id"] = "other";
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), access)),
              DeniedBecause("audience"));
  access.erase("aud");
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("RS256", "rsa1", "at+jwt"), access)),
              DeniedBecause("audience"));
}

TEST_F(OidcVerifierTest, RefusesExpiredTokens) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims["exp"] = absl::ToUnixSeconds(kStart) - 1;
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), DeniedBecause("token is expired"));
  // A valid token expires with time (no leeway).
  const std::string token = RsaToken(IdClaims());
  EXPECT_THAT(verifier->Verify(token), IsOk());
  clock_.Advance(absl::Seconds(3601));
  EXPECT_THAT(verifier->Verify(token), DeniedBecause("token is expired"));
}

TEST_F(OidcVerifierTest, RequiresExpiry) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims.erase("exp");
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), DeniedBecause("no expiry"));
  claims["exp"] = "tomorrow";
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), DeniedBecause("malformed token"));
  // Float NumericDates are fine.
  claims["exp"] = static_cast<double>(absl::ToUnixSeconds(kStart)) + 60.5;
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), IsOk());
}

TEST_F(OidcVerifierTest, AllowsNotBeforeUpToFiveMinutesAhead) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims["nbf"] = absl::ToUnixSeconds(kStart + absl::Minutes(4));
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), IsOk());
  claims["nbf"] = absl::ToUnixSeconds(kStart + absl::Minutes(6));
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), DeniedBecause("token is not valid yet"));
  // iat is not checked.
  claims["nbf"] = absl::ToUnixSeconds(kStart);
  claims["iat"] = absl::ToUnixSeconds(kStart + absl::Hours(1));
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), IsOk());
}

TEST_F(OidcVerifierTest, RefusesOtherIssuers) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims["iss"] = "https://evil.example.test";
  EXPECT_THAT(verifier->Verify(RsaToken(claims)),
              DeniedBecause("issuer \"https://evil.example.test\" is not "
                            "\"https://idp.example.test/api/oidc\""));
  claims.erase("iss");
  EXPECT_THAT(verifier->Verify(RsaToken(claims)), DeniedBecause("no issuer"));
}

TEST_F(OidcVerifierTest, RefusesAlgNone) {
  auto verifier = MakeLoaded();
  const std::string token = Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." +
                            Base64UrlEncode(IdClaims().dump()) + ".";
  EXPECT_THAT(verifier->Verify(token), DeniedBecause("unsupported algorithm \"none\""));
}

TEST_F(OidcVerifierTest, RefusesHmacSignedWithThePublicKey) {
  auto verifier = MakeLoaded();
  // The classic confusion: a verifier that used the RSA public key as HMAC secret accepts this.
  const std::string pem = Rsa1().PublicPem();
  ASSERT_THAT(pem, HasSubstr("BEGIN PUBLIC KEY"));
  EXPECT_THAT(verifier->Verify(SignHmac(EVP_sha256(), pem, Header("HS256", "rsa1"), IdClaims())),
              DeniedBecause("unsupported algorithm \"HS256\""));
  EXPECT_THAT(verifier->Verify(SignHmac(EVP_sha512(), pem, Header("HS512", "rsa1"), IdClaims())),
              DeniedBecause("unsupported algorithm \"HS512\""));
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("PS256", "rsa1"), IdClaims())),
              DeniedBecause("unsupported algorithm \"PS256\""));
  // Untrusted values in messages are clipped.
  const std::string long_alg(5000, 'A');
  EXPECT_THAT(
      verifier->Verify(SignWith(Rsa1(), Header(long_alg, "rsa1"), IdClaims())),
      StatusIs(absl::StatusCode::kUnauthenticated, AllOf(HasSubstr(std::string(100, 'A') + "..."),
                                                         Not(HasSubstr(std::string(101, 'A'))))));
}

TEST_F(OidcVerifierTest, RefusesAlgorithmThatDoesNotMatchTheKey) {
  auto verifier = MakeLoaded();
  // Signed by the EC key, but the header claims RS256 and names that key.
  EXPECT_THAT(verifier->Verify(SignWith(Ec1(), Header("RS256", "ec1"), IdClaims())),
              DeniedBecause("algorithm \"RS256\" does not match key \"ec1\""));
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), Header("ES256", "rsa1"), IdClaims())),
              DeniedBecause("algorithm \"ES256\" does not match key \"rsa1\""));
  // A key that names its algorithm is used for that one only.
  Json rsa = Rsa1().Jwk("rsa1");
  rsa["alg"] = "RS512";
  provider_.set_keys({rsa});
  auto pinned = MakeLoaded();
  EXPECT_THAT(pinned->Verify(RsaToken(IdClaims())),
              DeniedBecause("key \"rsa1\" is for algorithm \"RS512\", not \"RS256\""));
}

TEST_F(OidcVerifierTest, RefusesUnadvertisedAlgorithms) {
  Json document = provider_.document();
  document["id_token_signing_alg_values_supported"] = {"RS256"};
  provider_.set_document(document);
  auto verifier = MakeLoaded();
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
  EXPECT_THAT(verifier->Verify(SignWith(Ec1(), Header("ES256", "ec1"), IdClaims())),
              DeniedBecause("algorithm \"ES256\" is not advertised by the provider"));
  // Without the list both are accepted.
  document.erase("id_token_signing_alg_values_supported");
  provider_.set_document(document);
  auto unlisted = MakeLoaded();
  EXPECT_THAT(unlisted->Verify(SignWith(Ec1(), Header("ES256", "ec1"), IdClaims())), IsOk());
}

TEST_F(OidcVerifierTest, RefusesTamperedTokens) {
  auto verifier = MakeLoaded();
  const std::string token = RsaToken(IdClaims());
  Json claims = IdClaims();
  claims["roles"] = {"discovery-admin", "root"};
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  const std::string tampered =
      token.substr(0, first + 1) + Base64UrlEncode(claims.dump()) + token.substr(second);
  EXPECT_THAT(verifier->Verify(tampered), DeniedBecause("signature does not verify"));
  // Signed by another key under a known kid.
  EXPECT_THAT(verifier->Verify(SignWith(Rsa2(), Header("RS256", "rsa1"), IdClaims())),
              DeniedBecause("signature does not verify"));
  EXPECT_THAT(verifier->Verify(SignWith(Ec2(), Header("ES256", "ec1"), IdClaims())),
              DeniedBecause("signature does not verify"));
  // A truncated ES256 signature (63 bytes).
  const std::string es = SignWith(Ec1(), Header("ES256", "ec1"), IdClaims());
  const std::size_t dot = es.rfind('.');
  absl::StatusOr<std::string> signature = Base64UrlDecode(es.substr(dot + 1));
  ASSERT_THAT(signature, IsOk());
  signature->pop_back();
  EXPECT_THAT(verifier->Verify(es.substr(0, dot + 1) + Base64UrlEncode(*signature)),
              DeniedBecause("signature does not verify"));
}

TEST_F(OidcVerifierTest, RefusesMalformedTokensWithoutEchoingThem) {
  auto verifier = MakeLoaded();
  for (const std::string token : {"", "abc", "a.b", "a.b.c.d", "!!.??.xx"}) {
    EXPECT_THAT(verifier->Verify(token), DeniedBecause("malformed token")) << token;
  }
  const std::string tampered = RsaToken(IdClaims()) + "x";
  EXPECT_THAT(verifier->Verify(tampered),
              StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr(tampered))));
  Json critical = Header("RS256", "rsa1");
  critical["crit"] = {"exp"};
  EXPECT_THAT(verifier->Verify(SignWith(Rsa1(), critical, IdClaims())), DeniedBecause("critical"));
}

TEST_F(OidcVerifierTest, UnknownKidRefetchesTheKeysOnce) {
  auto verifier = MakeLoaded();
  ASSERT_EQ(provider_.fetches(kJwksUrl), 1);
  // The provider rotates to a new key.
  provider_.set_keys({Rsa2().Jwk("rsa2")});
  const std::string token = SignWith(Rsa2(), Header("RS256", "rsa2"), IdClaims());
  // Right after loading, the keys are fresh enough: no refetch.
  EXPECT_THAT(verifier->Verify(token), DeniedBecause("no key with kid \"rsa2\""));
  EXPECT_EQ(provider_.fetches(kJwksUrl), 1);

  clock_.Advance(absl::Seconds(11));
  EXPECT_THAT(verifier->Verify(token), IsOk());
  EXPECT_EQ(provider_.fetches(kJwksUrl), 2);
  // Known now: no more fetches; the rotated-out key is gone.
  EXPECT_THAT(verifier->Verify(token), IsOk());
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), DeniedBecause("no key with kid \"rsa1\""));
  EXPECT_EQ(provider_.fetches(kJwksUrl), 2);
  EXPECT_EQ(provider_.fetches(kDocumentUrl), 1);
}

TEST_F(OidcVerifierTest, UnknownKidsRefetchAtMostEveryMinRefresh) {
  auto verifier = MakeLoaded({.min_jwks_refresh = absl::Seconds(30)});
  clock_.Advance(absl::Seconds(31));
  const std::string unknown = SignWith(Rsa2(), Header("RS256", "nope"), IdClaims());
  EXPECT_THAT(verifier->Verify(unknown), DeniedBecause("no key with kid \"nope\""));
  EXPECT_EQ(provider_.fetches(kJwksUrl), 2);
  clock_.Advance(absl::Seconds(10));
  EXPECT_THAT(verifier->Verify(unknown), DeniedBecause("no key with kid \"nope\""));
  EXPECT_THAT(verifier->Verify(SignWith(Rsa2(), Header("RS256", "other"), IdClaims())),
              DeniedBecause("no key with kid \"other\""));
  EXPECT_EQ(provider_.fetches(kJwksUrl), 2);
  clock_.Advance(absl::Seconds(21));
  EXPECT_THAT(verifier->Verify(unknown), DeniedBecause("no key with kid \"nope\""));
  EXPECT_EQ(provider_.fetches(kJwksUrl), 3);
}

TEST_F(OidcVerifierTest, FailedRefetchKeepsTheKeys) {
  auto verifier = MakeLoaded();
  clock_.Advance(absl::Seconds(11));
  provider_.set_down(true);
  EXPECT_THAT(verifier->Verify(SignWith(Rsa2(), Header("RS256", "rsa2"), IdClaims())),
              DeniedBecause("no key with kid \"rsa2\""));
  EXPECT_EQ(provider_.fetches(kJwksUrl), 2);
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
}

TEST_F(OidcVerifierTest, TokenWithoutKidUsesTheOnlyKeyOfItsType) {
  auto verifier = MakeLoaded();
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims(), /*kid=*/"")), IsOk());
  EXPECT_THAT(verifier->Verify(SignWith(Ec1(), Header("ES256", ""), IdClaims())), IsOk());

  provider_.set_keys({Rsa1().Jwk("rsa1"), Rsa2().Jwk("rsa2")});
  auto two = MakeLoaded();
  EXPECT_THAT(two->Verify(RsaToken(IdClaims(), "")),
              DeniedBecause("the token has no kid and the provider has 2 RSA keys"));
  EXPECT_THAT(two->Verify(SignWith(Ec1(), Header("ES256", ""), IdClaims())),
              DeniedBecause("no EC P-256 key"));
}

TEST_F(OidcVerifierTest, SkipsUnusableKeys) {
  Json enc = Rsa2().Jwk("enc");
  enc["use"] = "enc";
  Json p384 = Ec2().Jwk("p384");
  p384["crv"] = "P-384";
  Json broken = Ec2().Jwk("broken");
  broken["x"] = Base64UrlEncode(std::string(32, '\x01'));  // not on the curve
  provider_.set_keys({enc, p384, broken, {{"kty", "oct"}, {"k", "c2VjcmV0"}}, Rsa1().Jwk("rsa1")});
  auto verifier = MakeLoaded();
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
  EXPECT_THAT(verifier->Verify(SignWith(Rsa2(), Header("RS256", "enc"), IdClaims())),
              DeniedBecause("no key with kid \"enc\""));
  EXPECT_THAT(verifier->Verify(SignWith(Ec2(), Header("ES256", "broken"), IdClaims())),
              DeniedBecause("no key with kid \"broken\""));

  provider_.set_keys({enc});
  EXPECT_THAT(Make()->Load(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("no usable RS256 or ES256 signing key")));
}

TEST_F(OidcVerifierTest, ReadsNestedRoles) {
  auto verifier = MakeLoaded({.roles_claim = "realm_access.roles"});
  Json claims = IdClaims();
  claims["realm_access"] = {{"roles", {"discovery-admin", 7, "offline_access"}}};
  absl::StatusOr<Principal> principal = verifier->Verify(RsaToken(claims));
  ASSERT_THAT(principal, IsOk());
  EXPECT_THAT(principal->roles, ElementsAre("discovery-admin", "offline_access"));
  claims["realm_access"] = "roles";
  principal = verifier->Verify(RsaToken(claims));
  ASSERT_THAT(principal, IsOk());
  EXPECT_THAT(principal->roles, IsEmpty());
}

TEST_F(OidcVerifierTest, ReadsRolesFromStrings) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims["roles"] = "viewer,discovery-admin";
  EXPECT_THAT(verifier->Verify(RsaToken(claims))->roles, ElementsAre("viewer", "discovery-admin"));
  claims["roles"] = "viewer discovery-admin";
  EXPECT_THAT(verifier->Verify(RsaToken(claims))->roles, ElementsAre("viewer", "discovery-admin"));
  claims["roles"] = " viewer, discovery-admin ,";
  EXPECT_THAT(verifier->Verify(RsaToken(claims))->roles, ElementsAre("viewer", "discovery-admin"));
  claims["roles"] = "viewer";
  EXPECT_THAT(verifier->Verify(RsaToken(claims))->roles, ElementsAre("viewer"));
}

TEST_F(OidcVerifierTest, MissingOrOddRolesMeanNoRoles) {
  auto verifier = MakeLoaded();
  Json claims = IdClaims();
  claims.erase("roles");
  absl::StatusOr<Principal> principal = verifier->Verify(RsaToken(claims));
  ASSERT_THAT(principal, IsOk());
  EXPECT_THAT(principal->roles, IsEmpty());
  claims["roles"] = {{"admin", true}};
  EXPECT_THAT(verifier->Verify(RsaToken(claims))->roles, IsEmpty());
  claims["roles"] = 42;
  EXPECT_THAT(verifier->Verify(RsaToken(claims))->roles, IsEmpty());
}

TEST_F(OidcVerifierTest, ReadsUsernameClaims) {
  Json claims = IdClaims();
  claims["profile"] = {{"login", "bob"}};
  claims["https://example.test/user"] = "carol";
  EXPECT_EQ(MakeLoaded({.username_claim = "preferred_username"})->Verify(RsaToken(claims))->name,
            "alice");
  EXPECT_EQ(MakeLoaded({.username_claim = "profile.login"})->Verify(RsaToken(claims))->name, "bob");
  // A top-level claim whose name contains dots wins over the path.
  EXPECT_EQ(
      MakeLoaded({.username_claim = "https://example.test/user"})->Verify(RsaToken(claims))->name,
      "carol");
  // Missing or not a string: "".
  EXPECT_EQ(MakeLoaded({.username_claim = "profile.name"})->Verify(RsaToken(claims))->name, "");
  EXPECT_EQ(MakeLoaded({.username_claim = "profile"})->Verify(RsaToken(claims))->name, "");
  EXPECT_EQ(MakeLoaded({.username_claim = "exp"})->Verify(RsaToken(claims))->name, "");
}

TEST_F(OidcVerifierTest, ProviderDownAtLoadThenUp) {
  provider_.set_down(true);
  auto verifier = Make();
  EXPECT_THAT(verifier->Load(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("Connection refused")));
  EXPECT_FALSE(verifier->loaded());
  const std::string token = RsaToken(IdClaims());
  // Verify does not retry within min_jwks_refresh of the failed Load.
  EXPECT_THAT(verifier->Verify(token),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("oidc provider https://idp.example.test/api/oidc is not "
                                       "reachable: "),
                             HasSubstr("Connection refused"), Not(HasSubstr(token)))));
  EXPECT_EQ(provider_.fetches(kDocumentUrl), 1);

  clock_.Advance(absl::Seconds(11));
  EXPECT_THAT(verifier->Verify(token), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(provider_.fetches(kDocumentUrl), 2);

  provider_.set_down(false);
  EXPECT_THAT(verifier->Verify(token), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(provider_.fetches(kDocumentUrl), 2);
  clock_.Advance(absl::Seconds(11));
  EXPECT_THAT(verifier->Verify(token), IsOk());
  EXPECT_TRUE(verifier->loaded());
  EXPECT_EQ(provider_.fetches(kDocumentUrl), 3);
}

TEST_F(OidcVerifierTest, LoadSucceedsOnceTheProviderIsUp) {
  provider_.set_down(true);
  auto verifier = Make();
  EXPECT_THAT(verifier->Load(), StatusIs(absl::StatusCode::kUnavailable));
  provider_.set_down(false);
  EXPECT_THAT(verifier->Load(), IsOk());
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
  // Loading again is harmless.
  EXPECT_THAT(verifier->Load(), IsOk());
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
}

TEST_F(OidcVerifierTest, VerifyLoadsWhenNeverLoaded) {
  auto verifier = Make();
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
  EXPECT_EQ(provider_.fetches(kDocumentUrl), 1);
}

TEST_F(OidcVerifierTest, VerifyDoesNotWaitForAnotherThreadsLoad) {
  absl::Notification fetching;
  absl::Notification release;
  HttpGet getter = provider_.Getter();
  auto verifier =
      std::make_unique<OidcVerifier>(OidcOptions{.issuer = std::string(kIssuer),
                                                 .client_id = std::string(kClientId),
                                                 .clock = [this] { return clock_.Now(); }},
                                     [&](const std::string& url, const std::string& bearer) {
                                       if (!fetching.HasBeenNotified()) {
                                         fetching.Notify();
                                         release.WaitForNotification();
                                       }
                                       return getter(url, bearer);
                                     });
  std::thread loader([&] { EXPECT_THAT(verifier->Load(), IsOk()); });
  fetching.WaitForNotification();
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("is being loaded")));
  release.Notify();
  loader.join();
  EXPECT_THAT(verifier->Verify(RsaToken(IdClaims())), IsOk());
}

TEST_F(OidcVerifierTest, RefusesUnusableDocuments) {
  Json document = provider_.document();
  document["issuer"] = "https://other.example.test/api/oidc";
  provider_.set_document(document);
  EXPECT_THAT(Make()->Load(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is for issuer \"https://other.example.test/api/oidc\"")));

  // One trailing slash is tolerated; tokens must then carry the document's issuer.
  document["issuer"] = std::string(kIssuer) + "/";
  provider_.set_document(document);
  auto slash = MakeLoaded();
  Json claims = IdClaims();
  claims["iss"] = std::string(kIssuer) + "/";
  EXPECT_THAT(slash->Verify(RsaToken(claims)), IsOk());

  document["issuer"] = kIssuer;
  document.erase("jwks_uri");
  provider_.set_document(document);
  EXPECT_THAT(Make()->Load(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no jwks_uri")));

  document["jwks_uri"] = kJwksUrl;
  document["id_token_signing_alg_values_supported"] = {"HS256"};
  provider_.set_document(document);
  EXPECT_THAT(Make()->Load(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no algorithm")));

  provider_.set_document("not an object");
  EXPECT_THAT(Make()->Load(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a JSON object")));

  provider_.set_document(Json::object());
  provider_.set_document_status(404);
  EXPECT_THAT(Make()->Load(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("HTTP status 404")));
  provider_.set_document_status(503);
  EXPECT_THAT(Make()->Load(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("HTTP status 503")));
}

TEST_F(OidcVerifierTest, ConcurrentVerification) {
  auto verifier = MakeLoaded({.min_jwks_refresh = absl::Milliseconds(1)});
  provider_.set_keys({Rsa1().Jwk("rsa1"), Ec1().Jwk("ec1"), Rsa2().Jwk("rsa2")});
  const std::string rsa = RsaToken(IdClaims());
  const std::string ec = SignWith(Ec1(), Header("ES256", "ec1"), IdClaims());
  const std::string rotated = SignWith(Rsa2(), Header("RS256", "rsa2"), IdClaims());
  const std::string unknown = SignWith(Rsa2(), Header("RS256", "nope"), IdClaims());
  const std::string forged = SignWith(Rsa2(), Header("RS256", "rsa1"), IdClaims());

  constexpr int kThreads = 6;
  constexpr int kRounds = 40;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        if (t == 0) {
          clock_.Advance(absl::Milliseconds(2));  // lets unknown kids refetch
        }
        if (!verifier->Verify(rsa).ok() || !verifier->Verify(ec).ok() ||
            verifier->Verify(unknown).ok() || verifier->Verify(forged).ok()) {
          ++wrong;
        }
        // Known once some thread has refetched the keys.
        static_cast<void>(verifier->Verify(rotated));
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_THAT(verifier->Verify(rotated), IsOk());
  EXPECT_GE(provider_.fetches(kJwksUrl), 2);
}

}  // namespace
}  // namespace discovery::auth
