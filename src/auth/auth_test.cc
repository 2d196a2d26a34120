#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "auth/base64url.h"
#include "auth/bearer.h"
#include "auth/machine_token.h"
#include "auth/principal.h"
#include "testing/status_matchers.h"

namespace discovery::auth {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Optional;

// The token of the original README (`token create -n default,default-blackbox ansible-user`).
// Its payload is
// {"jti":"ansible-user","iat":1612513589.0078669,"iss":"thesecret","nbf":1612513589.0078669,
//  "namespaces":["default","default-blackbox"]}
// and, because the original swapped secret and issuer (docs/decisions.md D1), it is signed with the
// key "discovery.postfinance.ch" and carries iss "thesecret".
constexpr std::string_view kReadmeToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJqdGkiOiJhbnNpYmxlLXVzZXIiLCJpYXQiOjE2MTI1MTM1ODkuMDA3ODY2OSwiaXNzIjoidGhlc2VjcmV0Iiwi"
    "bmJmIjoxNjEyNTEzNTg5LjAwNzg2NjksIm5hbWVzcGFjZXMiOlsiZGVmYXVsdCIsImRlZmF1bHQtYmxhY2tib3gi"
    "XX0.IUKFuyKMAU5aRZJPLp67Uei9o2G5neJz_Ha86JZnd8o";
constexpr std::string_view kReadmeSecret = "discovery.postfinance.ch";
constexpr std::string_view kReadmeIssuer = "thesecret";
const absl::Time kReadmeIssuedAt = absl::FromUnixSeconds(1612513589);

// The Go jwt_test's compatibility setting.
constexpr std::string_view kIssuer = "issuer";
constexpr std::string_view kSecret = "thesecret";

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

// A table-driven input (a token or a payload) and a substring of the expected error.
struct Case {
  std::string input;
  std::string reason;
};

std::string HeaderSegment(std::string_view header_json) { return Base64UrlEncode(header_json); }

// Signs header.payload with raw OpenSSL HMAC, independent of the code under test.
std::string SignRaw(const EVP_MD* md, std::string_view header_json, std::string_view payload_json,
                    std::string_view key) {
  std::string signing_input = Base64UrlEncode(header_json) + "." + Base64UrlEncode(payload_json);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_size = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
       mac.data(), &mac_size);
  return signing_input + "." +
         Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac_size));
}

std::string SignHs256(std::string_view payload_json, std::string_view key = kSecret) {
  return SignRaw(EVP_sha256(), R"({"alg":"HS256","typ":"JWT"})", payload_json, key);
}

std::string PayloadJson(std::string_view token) {
  const std::size_t first = token.find('.');
  const std::size_t second = token.find('.', first + 1);
  absl::StatusOr<std::string> payload =
      Base64UrlDecode(token.substr(first + 1, second - first - 1));
  EXPECT_THAT(payload, IsOk());
  return payload.ok() ? *payload : std::string();
}

MachineTokenOptions Options() {
  return MachineTokenOptions{.issuer = std::string(kIssuer), .secret = std::string(kSecret)};
}

// ---- base64url ----

TEST(Base64UrlTest, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
}

TEST(Base64UrlTest, DecodesWhatItEncodes) {
  for (std::string_view text : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff\xbf"}) {
    EXPECT_THAT(Base64UrlDecode(Base64UrlEncode(text)), IsOkAndHolds(std::string(text)));
  }
}

TEST(Base64UrlTest, RoundTripsInputsLongerThanOneChunk) {
  std::string data;
  for (int i = 0; i < 100001; ++i) {
    data.push_back(static_cast<char>((i * 131 + 7) % 256));
  }
  const std::string encoded = Base64UrlEncode(data);
  EXPECT_EQ(encoded.size(), (data.size() * 4 + 2) / 3);
  EXPECT_THAT(Base64UrlDecode(encoded), IsOkAndHolds(data));
}

TEST(Base64UrlTest, RejectsPaddingForeignCharactersAndImpossibleLengths) {
  const std::vector<std::string_view> bad = {
      "Zg==", "Zm8=", "Z",     "Zm9vY",  "Zm9v!",
      "Zm+v", "Zm/v", "Zm 9v", "Zm9v\n", std::string_view("Zm\0v", 4)};
  for (std::string_view text : bad) {
    EXPECT_THAT(Base64UrlDecode(text), StatusIs(absl::StatusCode::kInvalidArgument)) << text;
  }
}

TEST(Base64UrlTest, RejectsNonCanonicalTrailingBits) {
  EXPECT_THAT(Base64UrlDecode("Zg"), IsOkAndHolds(std::string("f")));
  EXPECT_THAT(Base64UrlDecode("Zh"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-zero trailing bits")));
  EXPECT_THAT(Base64UrlDecode("Zm8"), IsOkAndHolds(std::string("fo")));
  EXPECT_THAT(Base64UrlDecode("Zm9"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("non-zero trailing bits")));
}

// ---- CreateMachineToken ----

TEST(CreateMachineTokenTest, MatchesIndependentlyComputedToken) {
  // Computed with Python's hmac/base64/json for the same inputs.
  const MachineTokenOptions options{.issuer = "discovery.example.com", .secret = "s3cret"};
  EXPECT_THAT(
      CreateMachineToken(options, "ansible-user", {"default", "default-blackbox"}, absl::Hours(1),
                         kReadmeIssuedAt + absl::Milliseconds(7)),
      IsOkAndHolds(std::string(
          "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
          "eyJpc3MiOiJkaXNjb3ZlcnkuZXhhbXBsZS5jb20iLCJleHAiOjE2MTI1MTcxODksIm5iZiI6MTYxMjUxMzU4OSwi"
          "aWF0IjoxNjEyNTEzNTg5LCJqdGkiOiJhbnNpYmxlLXVzZXIiLCJuYW1lc3BhY2VzIjpbImRlZmF1bHQiLCJkZWZh"
          "dWx0LWJsYWNrYm94Il19.kD0jN49F3mVlsjdNqnCN4bTVjrL_cGrZz-_j2YxqW3E")));
}

TEST(CreateMachineTokenTest, WritesClaimsInTheOriginalOrder) {
  absl::StatusOr<std::string> token =
      CreateMachineToken(Options(), "id", {"a", "b"}, absl::Seconds(90), kNow);
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(PayloadJson(*token),
            R"({"iss":"issuer","exp":1700000090,"nbf":1700000000,"iat":1700000000,)"
            R"("jti":"id","namespaces":["a","b"]})");
}

TEST(CreateMachineTokenTest, OmitsExpForNonPositiveOrInfiniteDurationsAndEmptyNamespaces) {
  for (absl::Duration expires : {absl::ZeroDuration(), absl::Seconds(-5), -absl::InfiniteDuration(),
                                 absl::InfiniteDuration()}) {
    absl::StatusOr<std::string> token = CreateMachineToken(Options(), "", {}, expires, kNow);
    ASSERT_THAT(token, IsOk());
    EXPECT_EQ(PayloadJson(*token),
              R"({"iss":"issuer","nbf":1700000000,"iat":1700000000,"jti":""})");
  }
}

TEST(CreateMachineTokenTest, UsesTheSecretAsKeyAndTheIssuerAsIss) {
  // docs/decisions.md D1: the original signed with the issuer and wrote the secret into `iss`.
  absl::StatusOr<std::string> token =
      CreateMachineToken(Options(), "id", {}, absl::ZeroDuration(), kNow);
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(PayloadJson(*token), HasSubstr(R"("iss":"issuer")"));
  EXPECT_THAT(PayloadJson(*token), ::testing::Not(HasSubstr(std::string(kSecret))));
  EXPECT_EQ(*token, SignHs256(PayloadJson(*token), kSecret));
  // The original's swapped reading of the two values no longer verifies.
  // NOLINTNEXTLINE(readability-suspicious-call-argument)
  EXPECT_THAT(VerifyMachineToken(*token, kSecret, kIssuer, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(CreateMachineTokenTest, AdminOptionAddsTheAdminClaim) {
  MachineTokenOptions options = Options();
  options.admin = true;
  absl::StatusOr<std::string> token =
      CreateMachineToken(options, "ops", {}, absl::ZeroDuration(), kNow);
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(PayloadJson(*token),
            R"({"iss":"issuer","nbf":1700000000,"iat":1700000000,"jti":"ops","admin":true})");
  absl::StatusOr<MachineClaims> claims = VerifyMachineToken(*token, kIssuer, kSecret, kNow);
  ASSERT_THAT(claims, IsOk());
  EXPECT_TRUE(claims->admin);
}

TEST(CreateMachineTokenTest, ReplacesInvalidUtf8LikeGo) {
  absl::StatusOr<std::string> token =
      CreateMachineToken(Options(), "bad\xff", {"ns\xc3"}, absl::ZeroDuration(), kNow);
  ASSERT_THAT(token, IsOk());
  absl::StatusOr<MachineClaims> claims = VerifyMachineToken(*token, kIssuer, kSecret, kNow);
  ASSERT_THAT(claims, IsOk());
  EXPECT_EQ(claims->id, "bad\xef\xbf\xbd");
  EXPECT_THAT(claims->namespaces, ElementsAre("ns\xef\xbf\xbd"));
}

TEST(CreateMachineTokenTest, RefusesAnEmptySecret) {
  EXPECT_THAT(CreateMachineToken(MachineTokenOptions{.issuer = "issuer"}, "id", {},
                                 absl::ZeroDuration(), kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// ---- VerifyMachineToken: accepted tokens ----

TEST(VerifyMachineTokenTest, RoundTripsACreatedToken) {
  absl::StatusOr<std::string> token = CreateMachineToken(
      Options(), "ansible-user", {"default", "default-blackbox"}, absl::Hours(1), kNow);
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(VerifyMachineToken(*token, kIssuer, kSecret, kNow + absl::Minutes(59)),
              IsOkAndHolds(MachineClaims{.id = "ansible-user",
                                         .namespaces = {"default", "default-blackbox"},
                                         .expires = kNow + absl::Hours(1)}));
}

TEST(VerifyMachineTokenTest, AcceptsTheReadmeToken) {
  const MachineClaims expected{
      .id = "ansible-user", .namespaces = {"default", "default-blackbox"}, .expires = std::nullopt};
  EXPECT_THAT(VerifyMachineToken(kReadmeToken, kReadmeIssuer, kReadmeSecret,
                                 kReadmeIssuedAt + absl::Hours(24 * 365)),
              IsOkAndHolds(expected));
  // Float NumericDates are truncated to whole seconds, as Go's jwt does.
  EXPECT_THAT(VerifyMachineToken(kReadmeToken, kReadmeIssuer, kReadmeSecret, kReadmeIssuedAt),
              IsOkAndHolds(expected));
  EXPECT_THAT(VerifyMachineToken(kReadmeToken, kReadmeIssuer, kReadmeSecret,
                                 kReadmeIssuedAt - absl::Seconds(1)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid before")));
}

TEST(VerifyMachineTokenTest, AcceptsFloatAndIntegerNumericDates) {
  // The compatibility tokens of the Go jwt_test: issuer "issuer", key "thesecret", no exp.
  const std::string old_token =
      SignHs256(R"({"jti":"old","iat":1612513589.0078669,"iss":"issuer","nbf":1612513589.0078669,)"
                R"("namespaces":["default"]})");
  absl::StatusOr<std::string> new_token =
      CreateMachineToken(Options(), "new", {"default"}, absl::ZeroDuration(), kReadmeIssuedAt);
  ASSERT_THAT(new_token, IsOk());
  EXPECT_THAT(PayloadJson(*new_token), HasSubstr(R"("iat":1612513589,)"));

  const absl::Time now = kReadmeIssuedAt + absl::Seconds(1);
  EXPECT_THAT(VerifyMachineToken(old_token, kIssuer, kSecret, now),
              IsOkAndHolds(MachineClaims{.id = "old", .namespaces = {"default"}}));
  EXPECT_THAT(VerifyMachineToken(*new_token, kIssuer, kSecret, now),
              IsOkAndHolds(MachineClaims{.id = "new", .namespaces = {"default"}}));
}

TEST(VerifyMachineTokenTest, AcceptsAFloatExpiry) {
  const std::string token = SignHs256(R"({"iss":"issuer","exp":1700000100.9,"jti":"f"})");
  EXPECT_THAT(VerifyMachineToken(token, kIssuer, kSecret, kNow),
              IsOkAndHolds(MachineClaims{.id = "f", .expires = kNow + absl::Seconds(100)}));
  EXPECT_THAT(VerifyMachineToken(token, kIssuer, kSecret, kNow + absl::Seconds(100)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

TEST(VerifyMachineTokenTest, AcceptsMissingOptionalClaimsAndNulls) {
  EXPECT_THAT(VerifyMachineToken(SignHs256(R"({"iss":"issuer"})"), kIssuer, kSecret, kNow),
              IsOkAndHolds(MachineClaims{}));
  EXPECT_THAT(
      VerifyMachineToken(SignHs256(R"({"iss":"issuer","jti":null,"namespaces":null,"exp":null,)"
                                   R"("nbf":null,"iat":null,"admin":null,"aud":"x","sub":"y"})"),
                         kIssuer, kSecret, kNow),
      IsOkAndHolds(MachineClaims{}));
}

TEST(VerifyMachineTokenTest, ToleratesHugeNumericDates) {
  for (std::string_view exp :
       {"18446744073709551615", "9223372036854775807", "1e300", "-9223372036854775808", "-1e300"}) {
    const std::string token =
        SignHs256(std::string(R"({"iss":"issuer","exp":)") + std::string(exp) + "}");
    absl::StatusOr<MachineClaims> claims = VerifyMachineToken(token, kIssuer, kSecret, kNow);
    if (exp.front() == '-') {
      EXPECT_THAT(claims, StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
    } else {
      EXPECT_THAT(claims, IsOk()) << exp;
    }
  }
}

// ---- VerifyMachineToken: rejected tokens ----

TEST(VerifyMachineTokenTest, RejectsAWrongIssuer) {
  absl::StatusOr<std::string> token = CreateMachineToken(Options(), "id", {}, absl::Hours(1), kNow);
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(VerifyMachineToken(*token, "other", kSecret, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       "invalid token: wrong issuer is 'issuer', not other"));
}

TEST(VerifyMachineTokenTest, RejectsADifferentSecret) {
  absl::StatusOr<std::string> token = CreateMachineToken(Options(), "id", {}, absl::Hours(1), kNow);
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(VerifyMachineToken(*token, kIssuer, "othersecret", kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, "invalid token: signature is invalid"));
}

TEST(VerifyMachineTokenTest, RejectsTheReadmeTokenUnderTheSwappedOriginalKey) {
  // docs/decisions.md D1: with the fix, the public default issuer string is no longer the key.
  EXPECT_THAT(VerifyMachineToken(kReadmeToken, kReadmeIssuer, kReadmeIssuer, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature is invalid")));
}

TEST(VerifyMachineTokenTest, RejectsForgedSignatures) {
  absl::StatusOr<std::string> token =
      CreateMachineToken(Options(), "id", {"default"}, absl::ZeroDuration(), kNow);
  ASSERT_THAT(token, IsOk());
  const std::size_t last_dot = token->rfind('.');
  const std::string signing_input = token->substr(0, last_dot);

  // The payload swapped for one with more namespaces, the signature kept.
  const std::string widened =
      HeaderSegment(R"({"alg":"HS256","typ":"JWT"})") + "." +
      Base64UrlEncode(R"({"iss":"issuer","nbf":1700000000,"iat":1700000000,"jti":"id",)"
                      R"("namespaces":["default","prod"]})") +
      token->substr(last_dot);
  const std::string flipped = signing_input + "." + (token->at(last_dot + 1) == 'A' ? "B" : "A") +
                              token->substr(last_dot + 2);
  absl::StatusOr<std::string> signature = Base64UrlDecode(token->substr(last_dot + 1));
  ASSERT_THAT(signature, IsOk());
  const std::string truncated = signing_input + "." + Base64UrlEncode(signature->substr(0, 16));
  const std::string empty = signing_input + ".";
  const std::string self_signed = SignHs256(PayloadJson(*token), "attacker");
  for (const std::string& forged : {widened, flipped, truncated, empty, self_signed}) {
    EXPECT_THAT(VerifyMachineToken(forged, kIssuer, kSecret, kNow),
                StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("signature is invalid")))
        << forged;
  }
}

TEST(VerifyMachineTokenTest, RejectsExpiredTokens) {
  absl::StatusOr<std::string> token = CreateMachineToken(Options(), "id", {}, absl::Hours(1), kNow);
  ASSERT_THAT(token, IsOk());
  EXPECT_THAT(
      VerifyMachineToken(*token, kIssuer, kSecret, kNow + absl::Hours(1) - absl::Seconds(1)),
      IsOk());
  EXPECT_THAT(VerifyMachineToken(*token, kIssuer, kSecret, kNow + absl::Hours(1)),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       "invalid token: token is expired since 2023-11-14T23:13:20Z"));
  EXPECT_THAT(VerifyMachineToken(*token, kIssuer, kSecret, kNow + absl::Hours(48)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("expired")));
}

TEST(VerifyMachineTokenTest, RejectsTokensNotValidYet) {
  const std::string nbf = SignHs256(R"({"iss":"issuer","nbf":1700000060})");
  EXPECT_THAT(VerifyMachineToken(nbf, kIssuer, kSecret, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid before")));
  EXPECT_THAT(VerifyMachineToken(nbf, kIssuer, kSecret, kNow + absl::Seconds(60)), IsOk());

  const std::string iat = SignHs256(R"({"iss":"issuer","iat":1700000060.5})");
  EXPECT_THAT(VerifyMachineToken(iat, kIssuer, kSecret, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("used before issued")));
  EXPECT_THAT(VerifyMachineToken(iat, kIssuer, kSecret, kNow + absl::Seconds(60)), IsOk());
}

TEST(VerifyMachineTokenTest, PinsTheAlgorithmToHs256) {
  constexpr std::string_view kPayload = R"({"iss":"issuer","jti":"id"})";
  const std::string none =
      HeaderSegment(R"({"alg":"none","typ":"JWT"})") + "." + Base64UrlEncode(kPayload) + ".";
  EXPECT_THAT(VerifyMachineToken(none, kIssuer, kSecret, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       "invalid token: signing method none is not allowed, only HS256"));

  const std::string hs384 =
      SignRaw(EVP_sha384(), R"({"alg":"HS384","typ":"JWT"})", kPayload, kSecret);
  const std::string hs512 =
      SignRaw(EVP_sha512(), R"({"alg":"HS512","typ":"JWT"})", kPayload, kSecret);
  // Key confusion: an asymmetric algorithm named, the shared secret used as HMAC key.
  const std::string rs256 =
      SignRaw(EVP_sha256(), R"({"alg":"RS256","typ":"JWT"})", kPayload, kSecret);
  const std::string lower =
      SignRaw(EVP_sha256(), R"({"alg":"hs256","typ":"JWT"})", kPayload, kSecret);
  for (const std::string& token : {hs384, hs512, rs256, lower}) {
    EXPECT_THAT(
        VerifyMachineToken(token, kIssuer, kSecret, kNow),
        StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("is not allowed, only HS256")))
        << token;
  }
}

TEST(VerifyMachineTokenTest, RejectsCriticalHeaderParameters) {
  const std::string token = SignRaw(EVP_sha256(), R"({"alg":"HS256","crit":["exp"],"exp":1})",
                                    R"({"iss":"issuer"})", kSecret);
  EXPECT_THAT(VerifyMachineToken(token, kIssuer, kSecret, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("critical")));
}

TEST(VerifyMachineTokenTest, RejectsMalformedTokensAsInvalidArgument) {
  absl::StatusOr<std::string> valid =
      CreateMachineToken(Options(), "id", {"default"}, absl::ZeroDuration(), kNow);
  ASSERT_THAT(valid, IsOk());
  const std::string header = HeaderSegment(R"({"alg":"HS256","typ":"JWT"})");
  const std::string sig = valid->substr(valid->rfind('.') + 1);
  const std::vector<Case> cases = {
      {"", "invalid number of segments"},
      {"abc", "invalid number of segments"},
      {"a.b", "invalid number of segments"},
      {valid->substr(0, valid->rfind('.')), "invalid number of segments"},
      {*valid + ".extra", "invalid number of segments"},
      {"a.b.c.d.e", "invalid number of segments"},
      {"..", "header is not valid JSON"},
      {"!!!.###.$$$", "could not decode header"},
      {header + ".%%%%." + sig, "could not decode payload"},
      {header + "." + Base64UrlEncode("{}") + ".***", "could not decode signature"},
      {header + "=." + Base64UrlEncode("{}") + "." + sig, "padding is not allowed"},
      {header + "." + Base64UrlEncode("not json") + "." + sig, "payload is not valid JSON"},
      {header + "." + Base64UrlEncode(R"(["iss"])") + "." + sig, "payload is not a JSON object"},
      {header + "." + Base64UrlEncode(R"({"iss":"issuer"} trailing)") + "." + sig,
       "payload is not valid JSON"},
      {Base64UrlEncode("[]") + "." + Base64UrlEncode("{}") + "." + sig,
       "header is not a JSON object"},
      {Base64UrlEncode(R"({"typ":"JWT"})") + "." + Base64UrlEncode("{}") + "." + sig,
       "header has no string alg"},
      {Base64UrlEncode(R"({"alg":256})") + "." + Base64UrlEncode("{}") + "." + sig,
       "header has no string alg"},
      {header + "." + Base64UrlEncode("{\"iss\":\"\xff\"}") + "." + sig,
       "payload is not valid JSON"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(VerifyMachineToken(c.input, kIssuer, kSecret, kNow),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.reason)))
        << c.input;
  }
}

TEST(VerifyMachineTokenTest, RejectsClaimsOfTheWrongType) {
  const std::vector<Case> cases = {
      {R"({"iss":42})", "claim iss is not a string"},
      {R"({"iss":"issuer","jti":7})", "claim jti is not a string"},
      {R"({"iss":"issuer","namespaces":"default"})", "claim namespaces is not an array"},
      {R"({"iss":"issuer","namespaces":["default",1]})", "not a string"},
      {R"({"iss":"issuer","exp":"tomorrow"})", "claim exp is not a number"},
      {R"({"iss":"issuer","nbf":true})", "claim nbf is not a number"},
      {R"({"iss":"issuer","iat":[1]})", "claim iat is not a number"},
      {R"({"iss":"issuer","admin":"yes"})", "claim admin is not a boolean"},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(VerifyMachineToken(SignHs256(c.input), kIssuer, kSecret, kNow),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.reason)))
        << c.input;
  }
}

TEST(VerifyMachineTokenTest, NeverCrashesOnAnyPrefixOrSingleByteChange) {
  // docs/decisions.md D4: the original dereferenced nil for tokens without exactly three segments.
  absl::StatusOr<std::string> token =
      CreateMachineToken(Options(), "id", {"default"}, absl::Hours(1), kNow);
  ASSERT_THAT(token, IsOk());
  for (std::size_t length = 0; length < token->size(); ++length) {
    const std::string prefix = token->substr(0, length);
    EXPECT_THAT(VerifyMachineToken(prefix, kIssuer, kSecret, kNow).status().code(),
                AnyOf(absl::StatusCode::kInvalidArgument, absl::StatusCode::kUnauthenticated))
        << prefix;
    (void)PeekIssuer(prefix);
  }
  for (std::size_t i = 0; i < token->size(); ++i) {
    for (char replacement : {'.', '=', 'A', '_', '\0', '\xff'}) {
      std::string changed = *token;
      if (changed[i] == replacement) {
        continue;
      }
      changed[i] = replacement;
      EXPECT_THAT(VerifyMachineToken(changed, kIssuer, kSecret, kNow), ::testing::Not(IsOk()))
          << changed;
      (void)PeekIssuer(changed);
    }
  }
}

TEST(VerifyMachineTokenTest, RejectsAnEmptySecretWithoutComputingAnything) {
  const std::string token = SignHs256(R"({"iss":"issuer"})", "");
  EXPECT_THAT(VerifyMachineToken(token, kIssuer, "", kNow),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(VerifyMachineTokenTest, NeverMentionsTheSecret) {
  absl::StatusOr<std::string> token = CreateMachineToken(Options(), "id", {}, absl::Hours(1), kNow);
  ASSERT_THAT(token, IsOk());
  for (std::string_view secret : {"sup3r-secret-value", "thesecret"}) {
    for (absl::Time now : {kNow, kNow + absl::Hours(2)}) {
      absl::StatusOr<MachineClaims> claims = VerifyMachineToken(*token, "elsewhere", secret, now);
      EXPECT_THAT(std::string(claims.status().message()),
                  ::testing::Not(HasSubstr("sup3r-secret-value")));
    }
  }
}

// ---- PeekIssuer ----

TEST(PeekIssuerTest, ReturnsTheUnverifiedIssuer) {
  EXPECT_THAT(PeekIssuer(kReadmeToken), IsOkAndHolds(Optional(std::string("thesecret"))));
  const std::string rs256 =
      SignRaw(EVP_sha256(), R"({"alg":"RS256","kid":"k1"})", R"({"iss":"https://idp"})", "x");
  EXPECT_THAT(PeekIssuer(rs256), IsOkAndHolds(Optional(std::string("https://idp"))));
}

TEST(PeekIssuerTest, ReturnsNulloptForAMissingOrNonStringIssuer) {
  EXPECT_THAT(PeekIssuer(SignHs256(R"({"jti":"x"})")), IsOkAndHolds(std::nullopt));
  EXPECT_THAT(PeekIssuer(SignHs256(R"({"iss":42})")), IsOkAndHolds(std::nullopt));
  EXPECT_THAT(PeekIssuer(SignHs256(R"({"iss":null})")), IsOkAndHolds(std::nullopt));
}

TEST(PeekIssuerTest, RejectsMalformedTokens) {
  const std::string header = HeaderSegment(R"({"alg":"HS256"})");
  for (const std::string& token :
       {std::string(), std::string("a.b"), std::string("a.b.c.d"), std::string("!!.!!.!!"),
        header + "." + Base64UrlEncode("nope") + ".x",
        Base64UrlEncode(R"({"typ":"JWT"})") + "." + Base64UrlEncode(R"({"iss":"i"})") + ".x"}) {
    EXPECT_THAT(PeekIssuer(token), StatusIs(absl::StatusCode::kInvalidArgument)) << token;
  }
}

TEST(MachinePrincipalTest, CarriesIdNamespacesAndAdmin) {
  EXPECT_EQ(MachinePrincipal(MachineClaims{.id = "ops", .namespaces = {"a"}, .admin = true}),
            (Principal{.kind = Principal::Kind::kMachine,
                       .name = "ops",
                       .namespaces = {"a"},
                       .admin_token = true}));
}

// ---- BearerToken ----

TEST(BearerTokenTest, ReturnsEverythingAfterTheFirstSpace) {
  EXPECT_THAT(BearerToken("bearer abc.def.ghi"), IsOkAndHolds(std::string("abc.def.ghi")));
  EXPECT_THAT(BearerToken("Bearer abc"), IsOkAndHolds(std::string("abc")));
  EXPECT_THAT(BearerToken("BEARER abc"), IsOkAndHolds(std::string("abc")));
  EXPECT_THAT(BearerToken("bEaReR a b "), IsOkAndHolds(std::string("a b ")));
  EXPECT_THAT(BearerToken("bearer "), IsOkAndHolds(IsEmpty()));
}

TEST(BearerTokenTest, RejectsMissingHeadersAndOtherSchemes) {
  EXPECT_THAT(BearerToken(""),
              StatusIs(absl::StatusCode::kUnauthenticated, "Request unauthenticated with bearer"));
  EXPECT_THAT(BearerToken("basic dXNlcjpwdw=="),
              StatusIs(absl::StatusCode::kUnauthenticated, "Request unauthenticated with bearer"));
  EXPECT_THAT(BearerToken(" bearer abc"),
              StatusIs(absl::StatusCode::kUnauthenticated, "Request unauthenticated with bearer"));
  EXPECT_THAT(BearerToken("bearers abc"),
              StatusIs(absl::StatusCode::kUnauthenticated, "Request unauthenticated with bearer"));
}

TEST(BearerTokenTest, RejectsAHeaderWithoutASpace) {
  EXPECT_THAT(BearerToken("bearer"),
              StatusIs(absl::StatusCode::kUnauthenticated, "Bad authorization string"));
  EXPECT_THAT(BearerToken("eyJhbGciOiJIUzI1NiJ9.e30.x"),
              StatusIs(absl::StatusCode::kUnauthenticated, "Bad authorization string"));
}

}  // namespace
}  // namespace discovery::auth
