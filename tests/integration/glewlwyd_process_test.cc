// The glewlwyd harness against Debian's real /usr/bin/glewlwyd: the provider starts configured,
// publishes its discovery document, and issues RS256 tokens whose claims are what the OIDC tests
// rely on (issuer, audience, roles, preferred_username, lifetime), also on refresh.
#include "testing/glewlwyd_process.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/http_client.h"
#include "testing/status_matchers.h"

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// The decoded payload (middle part) of a compact JWS; null when it is not one.
Json Payload(const std::string& token) {
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  if (first == std::string::npos || second == std::string::npos) {
    return nullptr;
  }
  std::string json;
  if (!absl::WebSafeBase64Unescape(token.substr(first + 1, second - first - 1), &json)) {
    return nullptr;
  }
  return Json::parse(json, nullptr, /*allow_exceptions=*/false);
}

// The decoded header (first part) of a compact JWS.
Json Header(const std::string& token) {
  std::string json;
  if (!absl::WebSafeBase64Unescape(token.substr(0, token.find('.')), &json)) {
    return nullptr;
  }
  return Json::parse(json, nullptr, /*allow_exceptions=*/false);
}

class GlewlwydProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<GlewlwydProcess>> started = GlewlwydProcess::Start();
    ASSERT_THAT(started, IsOk());
    shared_glewlwyd = std::move(started).value().release();
  }
  static void TearDownTestSuite() {
    delete shared_glewlwyd;
    shared_glewlwyd = nullptr;
  }
  void SetUp() override { ASSERT_NE(shared_glewlwyd, nullptr) << "glewlwyd did not start"; }

  static GlewlwydProcess* shared_glewlwyd;  // shared: one start for the tests with default options
};

GlewlwydProcess* GlewlwydProcessTest::shared_glewlwyd = nullptr;

TEST_F(GlewlwydProcessTest, PublishesItsDiscoveryDocument) {
  EXPECT_TRUE(shared_glewlwyd->IsRunning());
  EXPECT_EQ(shared_glewlwyd->issuer(), shared_glewlwyd->url() + "/api/oidc");
  EXPECT_THAT(shared_glewlwyd->issuer(), StartsWith("http://127.0.0.1:"));
  EXPECT_EQ(shared_glewlwyd->token_endpoint(), shared_glewlwyd->issuer() + "/token");

  ASSERT_OK_AND_ASSIGN(HttpResult answer,
                       HttpGet(shared_glewlwyd->issuer() + "/.well-known/openid-configuration"));
  ASSERT_EQ(answer.status, 200) << answer.body;
  const Json document = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(document.is_object()) << answer.body;
  EXPECT_EQ(document.value("issuer", ""), shared_glewlwyd->issuer());
  EXPECT_EQ(document.value("token_endpoint", ""), shared_glewlwyd->token_endpoint());
  ASSERT_TRUE(document.contains("jwks_uri")) << answer.body;

  ASSERT_OK_AND_ASSIGN(HttpResult jwks, HttpGet(document["jwks_uri"].get<std::string>()));
  ASSERT_EQ(jwks.status, 200) << jwks.body;
  const Json keys = Json::parse(jwks.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(keys.is_object() && keys.contains("keys")) << jwks.body;
  ASSERT_EQ(keys["keys"].size(), 1U) << jwks.body;
  EXPECT_EQ(keys["keys"][0].value("kty", ""), "RSA");
  EXPECT_EQ(keys["keys"][0].value("alg", ""), "RS256");
}

TEST_F(GlewlwydProcessTest, PasswordGrantGivesIdTokensWithRoles) {
  ASSERT_OK_AND_ASSIGN(Json alice, shared_glewlwyd->PasswordGrant("alice", "alice-pw"));
  ASSERT_TRUE(alice.contains("id_token")) << alice.dump();
  EXPECT_TRUE(alice.contains("refresh_token")) << alice.dump();
  EXPECT_EQ(Header(alice["id_token"].get<std::string>()).value("alg", ""), "RS256");
  const Json claims = Payload(alice["id_token"].get<std::string>());
  ASSERT_TRUE(claims.is_object()) << alice.dump();
  EXPECT_EQ(claims.value("iss", ""), shared_glewlwyd->issuer());
  EXPECT_EQ(claims.value("aud", ""), shared_glewlwyd->options().client_id);
  EXPECT_EQ(claims.value("preferred_username", ""), "alice");
  EXPECT_EQ(claims.value("roles", Json()), Json::array({"discovery-admin"})) << claims.dump();

  ASSERT_OK_AND_ASSIGN(Json bob, shared_glewlwyd->PasswordGrant("bob", "bob-pw"));
  const Json bob_claims = Payload(bob["id_token"].get<std::string>());
  EXPECT_EQ(bob_claims.value("preferred_username", ""), "bob");
  EXPECT_EQ(bob_claims.value("roles", Json()), Json::array({"viewer"})) << bob_claims.dump();
  EXPECT_NE(bob_claims.value("sub", ""), claims.value("sub", ""));

  // The extra scope is granted on request.
  ASSERT_OK_AND_ASSIGN(Json scoped,
                       shared_glewlwyd->PasswordGrant("bob", "bob-pw", "openid discovery"));
  EXPECT_EQ(scoped.value("scope", ""), "openid discovery");
}

TEST_F(GlewlwydProcessTest, WrongPasswordAndUnknownUserAreRefused) {
  EXPECT_THAT(shared_glewlwyd->PasswordGrant("alice", "wrong-pw"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("403")));
  EXPECT_THAT(shared_glewlwyd->PasswordGrant("mallory", "alice-pw"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(shared_glewlwyd->RefreshGrant("not-a-refresh-token"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// Configured the usual way, a refresh gives an access token without roles or username; the
// userinfo endpoint answers them for that token.
TEST_F(GlewlwydProcessTest, RefreshGivesAccessTokensWhoseRolesAreInUserinfo) {
  ASSERT_OK_AND_ASSIGN(Json alice, shared_glewlwyd->PasswordGrant("alice", "alice-pw"));
  ASSERT_OK_AND_ASSIGN(Json refreshed,
                       shared_glewlwyd->RefreshGrant(alice["refresh_token"].get<std::string>()));
  ASSERT_TRUE(refreshed.contains("access_token")) << refreshed.dump();
  EXPECT_FALSE(refreshed.contains("id_token")) << refreshed.dump();
  const std::string access_token = refreshed["access_token"].get<std::string>();
  const Json claims = Payload(access_token);
  ASSERT_TRUE(claims.is_object()) << refreshed.dump();
  EXPECT_EQ(claims.value("iss", ""), shared_glewlwyd->issuer());
  EXPECT_EQ(claims.value("client_id", ""), shared_glewlwyd->options().client_id);
  EXPECT_FALSE(claims.contains("roles")) << claims.dump();
  EXPECT_FALSE(claims.contains("preferred_username")) << claims.dump();

  ASSERT_OK_AND_ASSIGN(Json userinfo, shared_glewlwyd->Userinfo(access_token));
  EXPECT_EQ(userinfo.value("sub", ""), claims.value("sub", "")) << userinfo.dump();
  EXPECT_EQ(userinfo.value("roles", Json()), Json::array({"discovery-admin"})) << userinfo.dump();
  EXPECT_EQ(userinfo.value("preferred_username", ""), "alice") << userinfo.dump();
  EXPECT_THAT(shared_glewlwyd->Userinfo("not-a-token"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(GlewlwydProcessOptionsTest, RolesInAccessTokens) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GlewlwydProcess> glewlwyd,
                       GlewlwydProcess::Start({.roles_in_access_tokens = true}));
  ASSERT_OK_AND_ASSIGN(Json alice, glewlwyd->PasswordGrant("alice", "alice-pw"));
  ASSERT_OK_AND_ASSIGN(Json refreshed,
                       glewlwyd->RefreshGrant(alice["refresh_token"].get<std::string>()));
  const Json claims = Payload(refreshed["access_token"].get<std::string>());
  // additional-parameters joins the roles into one string.
  EXPECT_EQ(claims.value("roles", ""), "discovery-admin") << claims.dump();
}

TEST(GlewlwydProcessOptionsTest, TokenLifetimeAndOwnUsersAndClient) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<GlewlwydProcess> glewlwyd,
      GlewlwydProcess::Start(
          {.users = {{"carol", "carol-pw", {"discovery-admin", "viewer"}}, {"dave", "dave-pw", {}}},
           .client_id = "other-client",
           .client_secret = "other-secret",
           .token_lifetime = absl::Seconds(3)}));
  ASSERT_OK_AND_ASSIGN(Json carol, glewlwyd->PasswordGrant("carol", "carol-pw"));
  EXPECT_EQ(carol.value("expires_in", 0), 3);
  const Json claims = Payload(carol["id_token"].get<std::string>());
  EXPECT_EQ(claims.value("exp", int64_t{0}) - claims.value("iat", int64_t{0}), 3) << claims.dump();
  EXPECT_EQ(claims.value("aud", ""), "other-client");
  EXPECT_EQ(claims.value("roles", Json()), Json::array({"discovery-admin", "viewer"}));

  // A user without roles gets no roles claim at all.
  ASSERT_OK_AND_ASSIGN(Json dave, glewlwyd->PasswordGrant("dave", "dave-pw"));
  const Json dave_claims = Payload(dave["id_token"].get<std::string>());
  EXPECT_EQ(dave_claims.value("preferred_username", ""), "dave");
  EXPECT_FALSE(dave_claims.contains("roles")) << dave_claims.dump();
  // The default users do not exist here.
  EXPECT_THAT(glewlwyd->PasswordGrant("alice", "alice-pw"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(GlewlwydProcessOptionsTest, MissingBinaryFailsWithTheLog) {
  EXPECT_THAT(
      GlewlwydProcess::Start({.binary = "/nonexistent/glewlwyd"}),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot execute /nonexistent/glewlwyd")));
}

}  // namespace
}  // namespace discovery::testing
