// End-to-end tests of OIDC users against a real provider, Debian's glewlwyd (GlewlwydProcess):
// `discovery login` with right and wrong passwords, the role-gated operations, tokens that must
// be refused (expired, for another client, signed by another key, alg none) and the refresh of an
// expired ID token by the CLI. discoveryd and the CLI are the real binaries.
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "testing/discoveryd_process.h"
#include "testing/glewlwyd_process.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERY_BINARY
#error "DISCOVERY_BINARY must name the discovery executable"
#endif
#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kAdminRole[] = "discovery-admin";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// The three parts of a compact JWS.
std::vector<std::string> Split(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot = token.find('.'); dot != std::string::npos; dot = token.find('.', start)) {
    parts.push_back(token.substr(start, dot - start));
    start = dot + 1;
  }
  parts.push_back(token.substr(start));
  return parts;
}

// `token` re-signed (RS256) with a fresh RSA key the provider never published.
std::string ResignedWithAnotherKey(const std::string& token) {
  const std::vector<std::string> parts = Split(token);
  const std::string input = parts[0] + "." + parts[1];
  EVP_PKEY* key = EVP_RSA_gen(2048);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t size = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx, nullptr, &size, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string signature(size, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &size,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  signature.resize(size);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return input + "." + auth::Base64UrlEncode(signature);
}

// `token` with header {"alg":"none"} and no signature.
std::string WithAlgNone(const std::string& token) {
  return auth::Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + Split(token)[1] + ".";
}

class OidcTest : public ::testing::Test {
 protected:
  void StartAll(absl::Duration token_lifetime = absl::Hours(1),
                const std::string& client_id_of_server = "") {
    ASSERT_OK_AND_ASSIGN(glewlwyd_, GlewlwydProcess::Start({.token_lifetime = token_lifetime}));
    ASSERT_OK_AND_ASSIGN(discoveryd_,
                         StartDiscoveryd(glewlwyd_->issuer(), client_id_of_server.empty()
                                                                  ? glewlwyd_->options().client_id
                                                                  : client_id_of_server));
    ASSERT_OK_AND_ASSIGN(home_, MakeTempDir("oidc-cli-home"));
    ASSERT_THAT(
        RunCommand({.argv = {"/bin/mkdir", "-p", home_ + "/.config/discovery"}}, absl::Seconds(5)),
        IsOk());
    std::ofstream(home_ + "/.config/discovery/config.yaml") << fmt::format(
        "address: {}\ninsecure: true\noidc-endpoint: {}\noidc-client-id: {}\n"
        "oidc-client-secret: {}\n",
        discoveryd_->grpc_address(), glewlwyd_->issuer(), glewlwyd_->options().client_id,
        glewlwyd_->options().client_secret);
  }

  absl::StatusOr<std::unique_ptr<DiscoverydProcess>> StartDiscoveryd(const std::string& issuer,
                                                                     const std::string& client_id) {
    return DiscoverydProcess::Start(
        {.binary = DISCOVERYD_BINARY,
         .extra_args = {"--oidc-endpoint=" + issuer, "--oidc-client-id=" + client_id,
                        std::string("--oidc-roles=") + kAdminRole,
                        "--oidc-username-claim=preferred_username"}});
  }

  void TearDown() override {
    if (!home_.empty()) {
      RunCommand({.argv = {"/bin/rm", "-rf", home_}}, absl::Seconds(10)).IgnoreError();
    }
  }

  std::string TokenPath() const { return home_ + "/.config/discovery/.token"; }

  // Runs `discovery <args>` in the test's home; `input` goes to its stdin.
  CommandResult Discovery(const std::string& args, const std::string& input = "") {
    std::vector<std::string> env = {"HOME=" + home_, "USER=nobody-in-particular"};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      if (entry.starts_with("DISCOVERY_")) {
        env.emplace_back(entry.substr(0, entry.find('=')));
      }
    }
    absl::StatusOr<CommandResult> result = RunCommand(
        {.argv = {"/bin/sh", "-c",
                  fmt::format("printf '%s\\n' '{}' | {} {}", input, DISCOVERY_BINARY, args)},
         .env = env,
         .working_dir = home_},
        absl::Seconds(60));
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *std::move(result) : CommandResult{};
  }

  void Login(const std::string& user, const std::string& password) {
    const CommandResult result =
        Discovery("login --username " + user + " --password-stdin", password);
    ASSERT_TRUE(result.status.success()) << result.err;
  }

  // A REST call with `token` as bearer.
  HttpResult Rest(const std::string& method, const std::string& path, const std::string& token,
                  const Json& body = nullptr) {
    absl::StatusOr<HttpResult> result =
        HttpRequest(method, discoveryd_->http_url() + path, body.is_null() ? "" : body.dump(),
                    {{"Authorization", "Bearer " + token}});
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *std::move(result) : HttpResult{};
  }

  std::string IdToken(const std::string& user, const std::string& password) {
    absl::StatusOr<Json> answer = glewlwyd_->PasswordGrant(user, password);
    EXPECT_THAT(answer, IsOk());
    return answer.ok() ? (*answer)["id_token"].get<std::string>() : "";
  }

  std::unique_ptr<GlewlwydProcess> glewlwyd_;
  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string home_;
};

TEST_F(OidcTest, LoginWithCorrectAndWrongPassword) {
  StartAll();
  CommandResult result = Discovery("login --username alice --password-stdin", "wrong-pw");
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, StartsWith("discovery: login refused: status "));
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;

  Login("alice", "alice-pw");
  struct stat info {};
  ASSERT_EQ(stat(TokenPath().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  EXPECT_THAT(ReadFile(TokenPath()), AllOf(HasSubstr("id_token:"), HasSubstr("refresh_token:"),
                                           Not(HasSubstr("machine_token"))));
  result = Discovery("namespace list");
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.out, HasSubstr("default"));

  // An external login command is only printed.
  result = Discovery("login --oidc-external-login-cmd 'sso-login --discovery'");
  EXPECT_TRUE(result.status.success());
  EXPECT_EQ(result.err, "login with the following command:\n\nsso-login --discovery\n");
}

TEST_F(OidcTest, AdminRoleGatesServersNamespacesAndTokens) {
  StartAll();
  Login("alice", "alice-pw");
  CommandResult result = Discovery("server register prometheus1.example.com");
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery("namespace register team");
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery("token create robot -n team");
  ASSERT_TRUE(result.status.success()) << result.err;

  Login("bob", "bob-pw");
  result = Discovery("server register prometheus2.example.com");
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, HasSubstr("user token for bob is not allowed to register a server"));
  result = Discovery("namespace register other");
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, HasSubstr("user token for bob is not allowed to register a namespace"));
  result = Discovery("token create robot2 -n team");
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, HasSubstr("not allowed to create a token"));
  // Any user may register services, in any namespace.
  result = Discovery("service register node -n team -e http://node1:9100/metrics");
  EXPECT_TRUE(result.status.success()) << result.err;
  result = Discovery("service list -n team --no-headers");
  EXPECT_THAT(result.out, HasSubstr("http://node1:9100/metrics"));
}

TEST_F(OidcTest, ForgedTokensAreRefused) {
  StartAll();
  const std::string token = IdToken("alice", "alice-pw");
  ASSERT_EQ(Rest("GET", "/v1/namespaces", token).status, 200);

  HttpResult result = Rest("GET", "/v1/namespaces", ResignedWithAnotherKey(token));
  EXPECT_EQ(result.status, 403) << result.body;
  EXPECT_THAT(result.body, HasSubstr("personal token is not valid: oidc: "));
  result = Rest("GET", "/v1/namespaces", WithAlgNone(token));
  EXPECT_NE(result.status, 200) << result.body;
  EXPECT_THAT(result.body, HasSubstr("oidc"));

  // A discoveryd for another client id refuses the provider's tokens for this one.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> other,
                       StartDiscoveryd(glewlwyd_->issuer(), "another-client"));
  // Until its provider is loaded in the background it answers 503 (retryable) to user tokens.
  absl::StatusOr<HttpResult> foreign;
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  do {
    foreign = HttpRequest("GET", other->http_url() + "/v1/namespaces", "",
                          {{"Authorization", "Bearer " + token}});
    ASSERT_THAT(foreign, IsOk());
    absl::SleepFor(absl::Milliseconds(100));
  } while (foreign->status == 503 && absl::Now() < deadline);
  EXPECT_EQ(foreign->status, 403) << foreign->body;
  EXPECT_THAT(foreign->body, HasSubstr("audience"));
}

// With ID tokens living 3 s: an expired one is refused by the server, and the CLI refreshes it
// (glewlwyd answers a refresh with an access token only, which the server accepts).
TEST_F(OidcTest, ExpiredTokensAreRefusedAndTheCliRefreshes) {
  StartAll(absl::Seconds(3));
  const std::string token = IdToken("alice", "alice-pw");
  Login("alice", "alice-pw");
  const std::string before = ReadFile(TokenPath());
  absl::SleepFor(absl::Seconds(4));

  const HttpResult expired = Rest("GET", "/v1/namespaces", token);
  EXPECT_EQ(expired.status, 403) << expired.body;
  EXPECT_THAT(expired.body, HasSubstr("expired"));

  const CommandResult result = Discovery("server register prometheus1.example.com");
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_NE(ReadFile(TokenPath()), before);
}

// A provider that is down at start: discoveryd still serves machine tokens and picks the
// provider up once it answers.
TEST_F(OidcTest, ProviderDownAtStartDoesNotStopMachineTokens) {
  ASSERT_OK_AND_ASSIGN(std::vector<int> ports, FreePorts(1));
  const std::string issuer = fmt::format("http://127.0.0.1:{}/api/oidc", ports[0]);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> server,
                       StartDiscoveryd(issuer, "discovery"));
  ASSERT_OK_AND_ASSIGN(const std::string admin, server->AdminToken());
  absl::StatusOr<HttpResult> machine = HttpRequest("GET", server->http_url() + "/v1/namespaces", "",
                                                   {{"Authorization", "Bearer " + admin}});
  ASSERT_THAT(machine, IsOk());
  EXPECT_EQ(machine->status, 200) << machine->body;
  EXPECT_THAT(server->LogTail(), HasSubstr("OIDC provider not usable yet"));
}

}  // namespace
}  // namespace discovery::testing
