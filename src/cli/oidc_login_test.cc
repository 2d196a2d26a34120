#include "cli/oidc_login.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "auth/base64url.h"

namespace discovery::cli {
namespace {

// An unsigned JWT with `payload` (the CLI never verifies tokens; the server does).
std::string Jwt(const std::string& payload) {
  return auth::Base64UrlEncode(R"({"alg":"RS256","typ":"JWT"})") + "." +
         auth::Base64UrlEncode(payload) + ".c2lnbmF0dXJl";
}

TEST(TokenExpiryTest, ReadsIntegerAndFloatExp) {
  EXPECT_EQ(*TokenExpiry(Jwt(R"({"exp":1700000000})")), absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(*TokenExpiry(Jwt(R"({"exp":1700000000.75})")), absl::FromUnixSeconds(1700000000));
}

TEST(TokenExpiryTest, RejectsWhatIsNotAJwtWithExp) {
  EXPECT_FALSE(TokenExpiry("").ok());
  EXPECT_FALSE(TokenExpiry("not-a-jwt").ok());
  EXPECT_FALSE(TokenExpiry(Jwt(R"({"sub":"x"})")).ok());
  EXPECT_FALSE(TokenExpiry(Jwt(R"({"exp":"soon"})")).ok());
}

// No provider is configured in these options, so any attempt to refresh would fail: a nullopt
// answer proves that nothing was requested.
TEST(RefreshIfExpiredTest, LeavesMachineTokensAndFreshTokensAlone) {
  const OidcClientOptions nowhere;
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  const std::string fresh = Jwt(R"({"exp":1700003600})");
  const std::string expired = Jwt(R"({"exp":1699999000})");

  auto result = RefreshIfExpired(nowhere, {.id_token = fresh, .refresh_token = "r"}, now);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, std::nullopt);

  result = RefreshIfExpired(nowhere,
                            {.machine_token = "m", .id_token = expired, .refresh_token = "r"}, now);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, std::nullopt);

  // A token living 8 s with 3 s left: not refreshed (a quarter of its life is 2 s).
  const std::string short_lived = Jwt(R"({"iat":1699999995,"exp":1700000003})");
  result = RefreshIfExpired(nowhere, {.id_token = short_lived, .refresh_token = "r"}, now);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, std::nullopt);

  result = RefreshIfExpired(nowhere, {.id_token = expired}, now);  // nothing to refresh with
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, std::nullopt);

  // Expired with a refresh token: a refresh is attempted, and without a provider it fails with
  // a message that says what to do.
  result = RefreshIfExpired(nowhere, {.id_token = expired, .refresh_token = "r"}, now);
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("--oidc-endpoint"));
}

TEST(RefreshMarginTest, ThirtySecondsOrAQuarterOfTheLifetime) {
  EXPECT_EQ(RefreshMargin(Jwt(R"({"iat":1700000000,"exp":1700003600})")), absl::Seconds(30));
  EXPECT_EQ(RefreshMargin(Jwt(R"({"iat":1700000000,"exp":1700000020})")), absl::Seconds(5));
  EXPECT_EQ(RefreshMargin(Jwt(R"({"iat":1700000000,"exp":1700000003})")), absl::Seconds(0.75));
  EXPECT_EQ(RefreshMargin(Jwt(R"({"exp":1700000003})")), absl::Seconds(30));  // no iat
  EXPECT_EQ(RefreshMargin(Jwt(R"({"iat":1700000009,"exp":1700000003})")), absl::ZeroDuration());
  EXPECT_EQ(RefreshMargin("not-a-jwt"), absl::Seconds(30));
}

// With a token living 20 s the CLI refreshes in its last 5 s only, not before every command.
TEST(RefreshIfExpiredTest, ShortLivedTokensAreRefreshedInTheirLastQuarter) {
  const OidcClientOptions nowhere;
  const std::string token = Jwt(R"({"iat":1700000000,"exp":1700000020})");
  auto result = RefreshIfExpired(nowhere, {.id_token = token, .refresh_token = "r"},
                                 absl::FromUnixSeconds(1700000014));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, std::nullopt);
  // In the last quarter a refresh is attempted (and fails here: no provider).
  result = RefreshIfExpired(nowhere, {.id_token = token, .refresh_token = "r"},
                            absl::FromUnixSeconds(1700000016));
  EXPECT_FALSE(result.ok());
}

}  // namespace
}  // namespace discovery::cli
