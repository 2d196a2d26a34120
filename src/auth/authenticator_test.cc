#include "auth/authenticator.h"

#include <atomic>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "auth/base64url.h"
#include "testing/status_matchers.h"

namespace discovery::auth {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class AuthenticatorTest : public ::testing::Test {
 protected:
  static Authenticator Make(UserTokenVerifier users = nullptr) {
    return Authenticator({.issuer = "discovery.example.com",
                          .secret = "s3cret-value",
                          .user_tokens = std::move(users),
                          .clock = [] { return kNow; }});
  }
  static std::string Token(std::string issuer, std::string secret, absl::Duration expires,
                           absl::Time now = kNow) {
    absl::StatusOr<std::string> token = CreateMachineToken(
        {.issuer = std::move(issuer), .secret = std::move(secret)}, "ci", {"team-a"}, expires, now);
    EXPECT_THAT(token, IsOk());
    return *token;
  }
};

TEST_F(AuthenticatorTest, AcceptsOurMachineTokens) {
  absl::StatusOr<Principal> principal = Make().Authenticate(
      "Bearer " + Token("discovery.example.com", "s3cret-value", absl::Hours(1)));
  ASSERT_THAT(principal, IsOk());
  EXPECT_EQ(principal->kind, Principal::Kind::kMachine);
  EXPECT_EQ(principal->name, "ci");
  EXPECT_EQ(principal->namespaces, std::vector<std::string>{"team-a"});
}

// After a rotation the new secret signs; tokens of the previous one keep working until they
// are reissued, but their other checks still apply.
TEST_F(AuthenticatorTest, AcceptsTokensOfPreviousSecretsDuringARotation) {
  const Authenticator rotated({.issuer = "discovery.example.com",
                               .secret = "new-secret",
                               .previous_secrets = {"", "s3cret-value"},
                               .clock = [] { return kNow; }});
  EXPECT_THAT(rotated.Authenticate("Bearer " +
                                   Token("discovery.example.com", "s3cret-value", absl::Hours(1))),
              IsOk());
  EXPECT_THAT(rotated.Authenticate("Bearer " +
                                   Token("discovery.example.com", "new-secret", absl::Hours(1))),
              IsOk());
  EXPECT_THAT(rotated.Authenticate("Bearer " + Token("discovery.example.com", "s3cret-value",
                                                     absl::Hours(1), kNow - absl::Hours(2))),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
  EXPECT_THAT(rotated.Authenticate(
                  "Bearer " + Token("discovery.example.com", "retired-secret", absl::Hours(1))),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature is invalid")));
  // Without the previous secret its tokens are refused.
  EXPECT_THAT(
      Make().Authenticate("Bearer " + Token("discovery.example.com", "new-secret", absl::Hours(1))),
      StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AuthenticatorTest, RejectsBadCredentialsWithoutEchoingThem) {
  const Authenticator authenticator = Make();
  EXPECT_THAT(authenticator.Authenticate(""),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("failed to get authentication token")));
  EXPECT_THAT(authenticator.Authenticate("Basic dXNlcjpwdw=="),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(authenticator.Authenticate("Bearer not-a-jwt"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("failed to parse")));
  const std::string forged = Token("discovery.example.com", "other-secret", absl::Hours(1));
  EXPECT_THAT(authenticator.Authenticate("Bearer " + forged),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(HasSubstr("machine token is invalid"), Not(HasSubstr(forged)),
                             Not(HasSubstr("s3cret-value")))));
  const std::string expired =
      Token("discovery.example.com", "s3cret-value", absl::Hours(1), kNow - absl::Hours(2));
  EXPECT_THAT(authenticator.Authenticate("Bearer " + expired),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
  // alg:none with our issuer.
  const std::string none = Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." +
                           Base64UrlEncode(R"({"iss":"discovery.example.com","jti":"x"})") + ".";
  EXPECT_THAT(authenticator.Authenticate("Bearer " + none),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("machine token is invalid")));
  EXPECT_THAT(
      authenticator.Authenticate("Bearer " + Token("someone-else", "s3cret-value", absl::Hours(1))),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not trusted")));
}

TEST_F(AuthenticatorTest, HandsOtherIssuersToTheUserTokenVerifier) {
  const Authenticator authenticator = Make([](std::string_view) -> absl::StatusOr<Principal> {
    return Principal{.kind = Principal::Kind::kUser, .name = "alice", .roles = {"admin"}};
  });
  absl::StatusOr<Principal> principal =
      authenticator.Authenticate("bearer " + Token("https://idp.example.com", "x", absl::Hours(1)));
  ASSERT_THAT(principal, IsOk());
  EXPECT_EQ(principal->name, "alice");
}

// A verified machine token is remembered: the next call with it is answered from the cache.
TEST_F(AuthenticatorTest, RemembersVerifiedMachineTokens) {
  const Authenticator authenticator = Make();
  const std::string token = Token("discovery.example.com", "s3cret-value", absl::Hours(1));
  ASSERT_THAT(authenticator.Authenticate("Bearer " + token), IsOk());
  EXPECT_EQ(authenticator.cached_tokens(), 1);
  absl::StatusOr<Principal> again = authenticator.Authenticate("bearer " + token);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->name, "ci");
  EXPECT_EQ(again->namespaces, std::vector<std::string>{"team-a"});
  EXPECT_EQ(authenticator.cached_tokens(), 1);
}

// A remembered token is still refused once its `exp` has passed.
TEST_F(AuthenticatorTest, CachedTokensExpire) {
  auto now = std::make_shared<std::atomic<absl::Time>>(kNow);
  const Authenticator authenticator({.issuer = "discovery.example.com",
                                     .secret = "s3cret-value",
                                     .clock = [now] { return now->load(); }});
  const std::string token = Token("discovery.example.com", "s3cret-value", absl::Hours(1));
  ASSERT_THAT(authenticator.Authenticate("Bearer " + token), IsOk());
  now->store(kNow + absl::Hours(1) - absl::Seconds(1));
  EXPECT_THAT(authenticator.Authenticate("Bearer " + token), IsOk());
  now->store(kNow + absl::Hours(1));
  EXPECT_THAT(authenticator.Authenticate("Bearer " + token),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

// `nbf` and `iat` were checked against the moment of verification; a clock set back before it
// must not find the token in the cache.
TEST_F(AuthenticatorTest, CachedTokensAreNotValidBeforeTheyWereVerified) {
  auto now = std::make_shared<std::atomic<absl::Time>>(kNow);
  const Authenticator authenticator({.issuer = "discovery.example.com",
                                     .secret = "s3cret-value",
                                     .clock = [now] { return now->load(); }});
  const std::string token = Token("discovery.example.com", "s3cret-value", absl::Hours(1));
  ASSERT_THAT(authenticator.Authenticate("Bearer " + token), IsOk());
  now->store(kNow - absl::Seconds(1));
  EXPECT_THAT(authenticator.Authenticate("Bearer " + token),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid before")));
}

// The non-blocking lookup answers only from the cache, with the same expiry.
TEST_F(AuthenticatorTest, CachedPrincipalAnswersOnlyRememberedTokens) {
  auto now = std::make_shared<std::atomic<absl::Time>>(kNow);
  const Authenticator authenticator(
      {.issuer = "discovery.example.com",
       .secret = "s3cret-value",
       .user_tokens = [](std::string_view) -> absl::StatusOr<Principal> {
         return Principal{.kind = Principal::Kind::kUser, .name = "alice"};
       },
       .clock = [now] { return now->load(); }});
  const std::string token = Token("discovery.example.com", "s3cret-value", absl::Hours(1));
  EXPECT_EQ(authenticator.CachedPrincipal("Bearer " + token), std::nullopt);
  ASSERT_THAT(authenticator.Authenticate("Bearer " + token), IsOk());
  const std::optional<Principal> cached = authenticator.CachedPrincipal("Bearer " + token);
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->kind, Principal::Kind::kMachine);
  EXPECT_EQ(cached->name, "ci");
  EXPECT_EQ(authenticator.CachedPrincipal(""), std::nullopt);
  EXPECT_EQ(authenticator.CachedPrincipal("Basic " + token), std::nullopt);
  EXPECT_EQ(authenticator.CachedPrincipal("Bearer " + token + "x"), std::nullopt);
  // User tokens are never remembered.
  const std::string user = "Bearer " + Token("https://idp.example.com", "x", absl::Hours(1));
  ASSERT_THAT(authenticator.Authenticate(user), IsOk());
  EXPECT_EQ(authenticator.CachedPrincipal(user), std::nullopt);
  now->store(kNow + absl::Hours(1));
  EXPECT_EQ(authenticator.CachedPrincipal("Bearer " + token), std::nullopt);
}

// Another secret means another Authenticator, which has remembered nothing.
TEST_F(AuthenticatorTest, CachedTokensDoNotSurviveASecretChange) {
  const std::string token = Token("discovery.example.com", "s3cret-value", absl::Hours(1));
  const Authenticator before = Make();
  ASSERT_THAT(before.Authenticate("Bearer " + token), IsOk());
  const Authenticator after(
      {.issuer = "discovery.example.com", .secret = "new-secret", .clock = [] { return kNow; }});
  EXPECT_EQ(after.cached_tokens(), 0);
  EXPECT_THAT(after.Authenticate("Bearer " + token),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature is invalid")));
}

TEST_F(AuthenticatorTest, RemembersNoFailuresAndNoUserTokens) {
  int user_verifications = 0;
  const Authenticator authenticator =
      Make([&user_verifications](std::string_view) -> absl::StatusOr<Principal> {
        ++user_verifications;
        return Principal{.kind = Principal::Kind::kUser, .name = "alice"};
      });
  const std::string forged = Token("discovery.example.com", "other-secret", absl::Hours(1));
  const std::string expired =
      Token("discovery.example.com", "s3cret-value", absl::Hours(1), kNow - absl::Hours(2));
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(authenticator.Authenticate("Bearer " + forged),
                StatusIs(absl::StatusCode::kUnauthenticated));
    EXPECT_THAT(authenticator.Authenticate("Bearer " + expired),
                StatusIs(absl::StatusCode::kUnauthenticated));
    EXPECT_THAT(authenticator.Authenticate("Bearer " +
                                           Token("https://idp.example.com", "x", absl::Hours(1))),
                IsOk());
  }
  EXPECT_EQ(user_verifications, 2);
  EXPECT_EQ(authenticator.cached_tokens(), 0);
}

TEST_F(AuthenticatorTest, RemembersAtMostTheConfiguredNumberOfTokens) {
  const Authenticator authenticator({.issuer = "discovery.example.com",
                                     .secret = "s3cret-value",
                                     .clock = [] { return kNow; },
                                     .verified_token_cache_size = 4});
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<std::string> token =
        CreateMachineToken({.issuer = "discovery.example.com", .secret = "s3cret-value"},
                           "ci-" + std::to_string(i), {}, absl::Hours(1), kNow);
    ASSERT_THAT(token, IsOk());
    absl::StatusOr<Principal> principal = authenticator.Authenticate("Bearer " + *token);
    ASSERT_THAT(principal, IsOk());
    EXPECT_EQ(principal->name, "ci-" + std::to_string(i));
    EXPECT_LE(authenticator.cached_tokens(), 4);
  }
  EXPECT_EQ(authenticator.cached_tokens(), 4);

  const Authenticator uncached({.issuer = "discovery.example.com",
                                .secret = "s3cret-value",
                                .clock = [] { return kNow; },
                                .verified_token_cache_size = 0});
  EXPECT_THAT(uncached.Authenticate("Bearer " +
                                    Token("discovery.example.com", "s3cret-value", absl::Hours(1))),
              IsOk());
  EXPECT_EQ(uncached.cached_tokens(), 0);
}

// A revoked machine token is refused from the next request on, also when it was cached, and
// the non-blocking lookup no longer answers for it.
TEST_F(AuthenticatorTest, RevokedMachineTokensAreRefused) {
  auto revoked = std::make_shared<std::atomic<bool>>(false);
  const Authenticator authenticator(
      {.issuer = "discovery.example.com",
       .secret = "s3cret-value",
       .user_tokens = [](std::string_view) -> absl::StatusOr<Principal> {
         return Principal{.kind = Principal::Kind::kUser, .name = "ci"};
       },
       .revoked = [revoked](std::string_view id) { return id == "ci" && revoked->load(); },
       .clock = [] { return kNow; }});
  const std::string token =
      "Bearer " + Token("discovery.example.com", "s3cret-value", absl::Hours(1));
  ASSERT_THAT(authenticator.Authenticate(token), IsOk());
  ASSERT_TRUE(authenticator.CachedPrincipal(token).has_value());
  revoked->store(true);
  EXPECT_THAT(
      authenticator.Authenticate(token),
      StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("machine token ci is revoked")));
  EXPECT_EQ(authenticator.CachedPrincipal(token), std::nullopt);
  // A user whose name equals the id is not a machine token.
  const std::string user = "Bearer " + Token("https://idp.example.com", "x", absl::Hours(1));
  EXPECT_THAT(authenticator.Authenticate(user), IsOk());
  // A fresh Authenticator (nothing cached) refuses it as well.
  const Authenticator fresh({.issuer = "discovery.example.com",
                             .secret = "s3cret-value",
                             .revoked = [](std::string_view id) { return id == "ci"; },
                             .clock = [] { return kNow; }});
  EXPECT_THAT(fresh.Authenticate(token), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(fresh.cached_tokens(), 0U);
}

}  // namespace
}  // namespace discovery::auth
