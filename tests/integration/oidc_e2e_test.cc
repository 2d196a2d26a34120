// End-to-end tests of OIDC users against a real provider, Debian's glewlwyd (GlewlwydProcess),
// configured the usual way: roles are claims of the ID token and of userinfo only, so refreshed
// access tokens carry none. `discovery login` with right and wrong passwords, the role-gated
// operations (403 for a verified user without the role), tokens that must be refused with 401 /
// UNAUTHENTICATED (expired, for another client, signed by another key, alg none, HS256) and the
// CLI's refresh, after which an admin keeps her rights (discoveryd reads userinfo).
// discoveryd and the CLI are the real binaries.
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <array>
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
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
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

constexpr const char* kAdminRole = "discovery-admin";

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

// `token` re-signed HS256 with a key of the attacker's choosing (the algorithm confusion).
std::string WithHs256(const std::string& token) {
  const std::string input =
      auth::Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." + Split(token)[1];
  const std::string key = "attacker-chosen-key";
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  std::size_t size = mac.size();
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
            reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(),
            mac.size(), &size);
  return input + "." +
         auth::Base64UrlEncode(std::string(reinterpret_cast<const char*>(mac.data()), size));
}

// The decoded payload of a JWT; null when it is not one.
Json Payload(const std::string& token) {
  const std::vector<std::string> parts = Split(token);
  if (parts.size() != 3) {
    return nullptr;
  }
  absl::StatusOr<std::string> decoded = auth::Base64UrlDecode(parts[1]);
  return decoded.ok() ? Json::parse(*decoded, nullptr, /*allow_exceptions=*/false) : Json();
}

// The id_token of the CLI's token file (a YAML line `id_token: "..."`).
std::string StoredToken(const std::string& file) {
  const std::size_t at = file.find("id_token: ");
  if (at == std::string::npos) {
    return "";
  }
  const std::size_t start = at + std::string("id_token: ").size();
  std::string value = file.substr(start, file.find('\n', start) - start);
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  return value;
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

  static absl::StatusOr<std::unique_ptr<DiscoverydProcess>> StartDiscoveryd(
      const std::string& issuer, const std::string& client_id) {
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

  // NamespaceAPI/ListNamespace over gRPC with `token` as bearer, against `server`.
  static grpc::Status GrpcList(const DiscoverydProcess& server, const std::string& token) {
    const auto channel =
        grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials());
    const auto stub = ::postfinance::discovery::v1::NamespaceAPI::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    context.AddMetadata("authorization", "Bearer " + token);
    ::postfinance::discovery::v1::ListNamespaceResponse response;
    return stub->ListNamespace(&context, {}, &response);
  }

  // Expects `token` refused as not authenticated by `server`: REST 401 with the RFC 6750
  // challenge, gRPC UNAUTHENTICATED. Returns the REST body.
  static std::string ExpectUnauthenticated(const DiscoverydProcess& server,
                                           const std::string& token) {
    absl::StatusOr<HttpResult> rest = HttpRequest("GET", server.http_url() + "/v1/namespaces", "",
                                                  {{"Authorization", "Bearer " + token}});
    EXPECT_THAT(rest, IsOk());
    if (!rest.ok()) {
      return "";
    }
    EXPECT_EQ(rest->status, 401) << rest->body;
    EXPECT_THAT(rest->Header("WWW-Authenticate").value_or(""),
                StartsWith(R"(Bearer error="invalid_token", error_description=")"));
    const grpc::Status grpc_status = GrpcList(server, token);
    EXPECT_EQ(grpc_status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << grpc_status.error_message();
    return rest->body;
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

TEST_F(OidcTest, ForgedTokensAreUnauthenticated) {
  StartAll();
  const std::string token = IdToken("alice", "alice-pw");
  ASSERT_EQ(Rest("GET", "/v1/namespaces", token).status, 200);
  ASSERT_TRUE(GrpcList(*discoveryd_, token).ok());

  EXPECT_THAT(ExpectUnauthenticated(*discoveryd_, ResignedWithAnotherKey(token)),
              HasSubstr("personal token is not valid: oidc: "));
  EXPECT_THAT(ExpectUnauthenticated(*discoveryd_, WithAlgNone(token)), HasSubstr("oidc"));
  EXPECT_THAT(ExpectUnauthenticated(*discoveryd_, WithHs256(token)), HasSubstr("algorithm"));
  EXPECT_THAT(ExpectUnauthenticated(*discoveryd_, "not-a-jwt"), HasSubstr("token"));

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
  EXPECT_THAT(ExpectUnauthenticated(*other, token), HasSubstr("audience"));
  // This client's refreshed access token is another client's to that server as well.
  ASSERT_OK_AND_ASSIGN(Json grant, glewlwyd_->PasswordGrant("alice", "alice-pw"));
  ASSERT_OK_AND_ASSIGN(Json refreshed,
                       glewlwyd_->RefreshGrant(grant["refresh_token"].get<std::string>()));
  EXPECT_THAT(ExpectUnauthenticated(*other, refreshed["access_token"].get<std::string>()),
              HasSubstr("audience"));
}

// A verified user without the admin role may not administer: 403 / PERMISSION_DENIED, not 401.
TEST_F(OidcTest, ViewerIsForbidden) {
  StartAll();
  const std::string token = IdToken("bob", "bob-pw");
  const HttpResult result =
      Rest("POST", "/v1/servers", token, Json{{"name", "prometheus9.example.com"}});
  EXPECT_EQ(result.status, 403) << result.body;
  EXPECT_FALSE(result.Header("WWW-Authenticate").has_value());
  EXPECT_THAT(result.body, HasSubstr("user token for bob is not allowed to register a server"));
  EXPECT_EQ(Rest("GET", "/v1/namespaces", token).status, 200);
  // The refusal is in the audit trail.
  EXPECT_THAT(discoveryd_->LogTail(200),
              AllOf(HasSubstr(R"("msg":"audit")"), HasSubstr(R"("who":"bob")"),
                    HasSubstr(R"("outcome":"denied")")));
}

// Tokens living 12 s: the CLI does not refresh while more than a quarter of the lifetime is
// left; an expired token is refused with 401; and after each refresh (glewlwyd answers an
// access token without roles) alice still administers, discoveryd reading her roles from
// userinfo.
TEST_F(OidcTest, AdminKeepsHerRightsAcrossRefreshes) {
  constexpr absl::Duration kLifetime = absl::Seconds(12);
  StartAll(kLifetime);
  const std::string token = IdToken("alice", "alice-pw");
  Login("alice", "alice-pw");
  const std::string at_login = ReadFile(TokenPath());
  CommandResult result = Discovery("server register prometheus1.example.com");
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(ReadFile(TokenPath()), at_login) << "refreshed with most of the lifetime left";

  for (int refresh = 1; refresh <= 2; ++refresh) {
    const std::string before = ReadFile(TokenPath());
    absl::SleepFor(kLifetime + absl::Seconds(1));
    result = Discovery(fmt::format("server register prometheus{}.example.com", refresh + 1));
    EXPECT_TRUE(result.status.success()) << "refresh " << refresh << ": " << result.err;
    const std::string after = ReadFile(TokenPath());
    ASSERT_NE(after, before) << "refresh " << refresh;
    // What the CLI now presents is an access token without roles: the rights come from
    // userinfo.
    const Json claims = Payload(StoredToken(after));
    ASSERT_TRUE(claims.is_object()) << after;
    EXPECT_FALSE(claims.contains("roles")) << claims.dump();
    result = Discovery("namespace register team" + std::to_string(refresh));
    EXPECT_TRUE(result.status.success()) << result.err;
    result = Discovery(fmt::format("token create robot{} -n team{}", refresh, refresh));
    EXPECT_TRUE(result.status.success()) << result.err;
  }

  EXPECT_THAT(ExpectUnauthenticated(*discoveryd_, token), HasSubstr("expired"));
  // Each change left its audit line naming alice.
  const std::string log = discoveryd_->LogTail(400);
  EXPECT_THAT(log, AllOf(HasSubstr(R"("object":"server","op":"register","name":"prometheus3)"),
                         HasSubstr(R"("object":"token","op":"create","token_id":"robot2")"),
                         HasSubstr(R"("who_kind":"user","who":"alice")")));
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
