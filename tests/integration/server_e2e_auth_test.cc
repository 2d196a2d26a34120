// End-to-end tests of discoveryd's tokens: the token API, revocation, refusals and what machine
// tokens may change.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "auth/machine_token.h"
#include "integration/server_e2e_fixture.h"
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"
#include "testing/discoveryd_process.h"
#include "testing/etcd_harness.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"

namespace discovery::testing::server_e2e {
namespace {

TEST_P(ServerE2eTest, TokenApiOverGrpcAndRest) {
  // gRPC: create, then read it back.
  pb::CreateRequest create;
  create.set_id("grpc-bot");
  create.add_namespaces("team-a");
  create.add_namespaces("team-b");
  create.set_expires("1h");
  pb::CreateResponse created;
  ASSERT_THAT(tokens_->Create(Context(admin_).get(), create, &created), GrpcOk());
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  pb::InfoRequest info_request;
  info_request.set_token(created.token());
  pb::InfoResponse info;
  ASSERT_THAT(tokens_->Info(Context(admin_).get(), info_request, &info), GrpcOk());
  EXPECT_EQ(info.tokeninfo().id(), "grpc-bot");
  EXPECT_THAT(Strings(info.tokeninfo().namespaces()), ElementsAre("team-a", "team-b"));
  EXPECT_NEAR(info.tokeninfo().expires_at().seconds(), now + 3600, 60);
  // The new token authenticates, and may read but not create tokens.
  pb::ListServerResponse servers;
  EXPECT_THAT(servers_->ListServer(Context(created.token()).get(), {}, &servers), GrpcOk());
  pb::CreateResponse ignored;
  EXPECT_THAT(tokens_->Create(Context(created.token()).get(), create, &ignored),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED, HasSubstr("create a token")));

  create.set_expires("");
  ASSERT_THAT(tokens_->Create(Context(admin_).get(), create, &created), GrpcOk());
  info_request.set_token(created.token());
  ASSERT_THAT(tokens_->Info(Context(admin_).get(), info_request, &info), GrpcOk());
  EXPECT_EQ(info.tokeninfo().expires_at().seconds(), kGoZeroTimeUnixSeconds);

  create.set_expires("soon");
  EXPECT_THAT(tokens_->Create(Context(admin_).get(), create, &created),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("invalid expiry duration")));
  info_request.set_token("abc");
  EXPECT_THAT(tokens_->Info(Context(admin_).get(), info_request, &info),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("not valid")));
  EXPECT_THAT(tokens_->Info(Context("").get(), info_request, &info),
              GrpcIs(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("authentication token")));

  // REST
  Json never =
      OkJson(Rest("POST", "/v1/tokens", admin_, R"({"id":"rest-bot","namespaces":["team-a"]})"));
  EXPECT_THAT(Keys(never), ElementsAre("token"));
  const std::string never_token = never.value("token", "");
  EXPECT_EQ(OkJson(Rest("GET", "/v1/tokens/" + never_token, admin_)),
            Json({{"tokeninfo",
                   {{"id", "rest-bot"}, {"namespaces", {"team-a"}}, {"expiresAt", kGoZeroTime}}}}));
  Json expiring = OkJson(Rest("POST", "/v1/tokens", admin_,
                              R"({"id":"rest-bot","namespaces":["team-a"],"expires":"2h"})"));
  Json expiring_info = OkJson(Rest("GET", "/v1/tokens/" + expiring.value("token", ""), admin_));
  const std::string expires_at = expiring_info["tokeninfo"].value("expiresAt", "");
  EXPECT_THAT(expires_at, MatchesRegex(kRfc3339));
  absl::Time parsed;
  std::string error;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, expires_at, &parsed, &error)) << error;
  EXPECT_NEAR(absl::ToUnixSeconds(parsed), now + 7200, 60);

  EXPECT_THAT(Rest("GET", "/v1/tokens/abc", admin_), RestErrorIs(400, 3, HasSubstr("not valid")));
  EXPECT_THAT(Rest("POST", "/v1/tokens", admin_, R"({"id":"x","expires":"soon"})"),
              RestErrorIs(400, 3, HasSubstr("invalid expiry duration soon")));
  EXPECT_THAT(Rest("POST", "/v1/tokens", never_token, R"({"id":"x"})"),
              RestErrorIs(403, 7, HasSubstr("create a token")));
}

// A machine token revoked by id is refused from then on, over REST (401 with the Bearer challenge)
// and gRPC (UNAUTHENTICATED), also by another replica of the same store (etcd); tokens that were
// not revoked keep working, and the revocation is listed.
TEST_P(ServerE2eTest, RevokedMachineTokensAreRefusedByEveryReplica) {
  const std::string id = "revoked-bot-" + std::to_string(absl::ToUnixNanos(absl::Now()));
  Json created = OkJson(
      Rest("POST", "/v1/tokens", admin_, Json({{"id", id}, {"namespaces", {"team-a"}}}).dump()));
  const std::string bot = created.value("token", "");
  Json other = OkJson(Rest("POST", "/v1/tokens", admin_,
                           Json({{"id", id + "-kept"}, {"namespaces", {"team-a"}}}).dump()));
  const std::string kept = other.value("token", "");
  pb::ListNamespaceRequest list;
  pb::ListNamespaceResponse namespaces;
  ASSERT_THAT(namespaces_->ListNamespace(Context(bot).get(), list, &namespaces), GrpcOk());

  // Only admins revoke.
  pb::RevokeRequest revoke;
  revoke.set_id(id);
  pb::RevokeResponse revoked;
  EXPECT_THAT(tokens_->Revoke(Context(kept).get(), revoke, &revoked),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED, HasSubstr("not allowed")));
  ASSERT_THAT(tokens_->Revoke(Context(admin_).get(), revoke, &revoked), GrpcOk());
  EXPECT_EQ(revoked.revoked().id(), id);

  EXPECT_THAT(namespaces_->ListNamespace(Context(bot).get(), list, &namespaces),
              GrpcIs(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("revoked")));
  ASSERT_OK_AND_ASSIGN(HttpResult rest, Rest("GET", "/v1/namespaces", bot));
  EXPECT_EQ(rest.status, 401) << rest.body;
  EXPECT_THAT(rest.Header("WWW-Authenticate").value_or(""),
              HasSubstr(R"(Bearer error="invalid_token")"));
  ASSERT_THAT(namespaces_->ListNamespace(Context(kept).get(), list, &namespaces), GrpcOk());

  Json listed = OkJson(Rest("GET", "/v1/revoked-tokens", admin_));
  bool found = false;
  for (const Json& entry : listed.value("revoked", Json::array())) {
    found = found || entry.value("id", "") == id;
  }
  EXPECT_TRUE(found) << listed.dump();
  // REST revokes too.
  OkJson(Rest("POST", "/v1/revoked-tokens", admin_, Json({{"id", id + "-kept"}}).dump()));
  EXPECT_THAT(namespaces_->ListNamespace(Context(kept).get(), list, &namespaces),
              GrpcIs(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("revoked")));

  if (GetParam() == Backend::kEtcd) {
    // Another replica on the same store refuses it too.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> replica,
                         DiscoverydProcess::Start(server_->process->options()));
    const std::string url = replica->http_url() + "/v1/namespaces";
    EXPECT_TRUE(Eventually(
        [&] {
          absl::StatusOr<HttpResult> answer =
              HttpRequest("GET", url, "", {{"Authorization", "Bearer " + bot}});
          return answer.ok() && answer->status == 401;
        },
        absl::Seconds(10)))
        << replica->LogTail();
    absl::StatusOr<HttpResult> admin_answer =
        HttpRequest("GET", url, "", {{"Authorization", "Bearer " + admin_}});
    ASSERT_THAT(admin_answer, IsOk());
    EXPECT_EQ(admin_answer->status, 200) << admin_answer->body;
  }
}

TEST_P(ServerE2eTest, RejectsMissingAndBadTokens) {
  const auth::MachineTokenOptions forger{
      .issuer = kIssuer, .secret = "another-secret", .admin = true};
  ASSERT_OK_AND_ASSIGN(
      const std::string forged,
      auth::CreateMachineToken(forger, "mallory", {"default"}, absl::ZeroDuration(), absl::Now()));
  const auth::MachineTokenOptions ours{.issuer = kIssuer, .secret = kSecret, .admin = true};
  ASSERT_OK_AND_ASSIGN(const std::string expired,
                       auth::CreateMachineToken(ours, "old", {"default"}, absl::Seconds(5),
                                                absl::Now() - absl::Hours(1)));
  const auth::MachineTokenOptions stranger{
      .issuer = "someone.else", .secret = kSecret, .admin = true};
  ASSERT_OK_AND_ASSIGN(const std::string other_issuer,
                       auth::CreateMachineToken(stranger, "stranger", {"default"},
                                                absl::ZeroDuration(), absl::Now()));
  const std::string alg_none =
      HandMadeJwt({{"alg", "none"}, {"typ", "JWT"}}, AdminClaims(), nullptr, "");
  const std::string hs512 =
      HandMadeJwt({{"alg", "HS512"}, {"typ", "JWT"}}, AdminClaims(), EVP_sha512(), kSecret);
  // The hand-made HS256 twin is accepted, so the two above fail for their algorithm only.
  const std::string hs256 =
      HandMadeJwt({{"alg", "HS256"}, {"typ", "JWT"}}, AdminClaims(), EVP_sha256(), kSecret);
  pb::ListServerResponse servers;
  ASSERT_THAT(servers_->ListServer(Context(hs256).get(), {}, &servers), GrpcOk());
  ASSERT_THAT(Rest("GET", "/v1/servers", hs256),
              IsOkAndHolds(::testing::Field(&HttpResult::status, 200)));

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "failed to get authentication token"},
      {forged, "signature is invalid"},
      {expired, "expired"},
      {other_issuer, "not trusted"},
      {alg_none, "none"},
      {hs512, "HS512"},
      {"not-a-jwt", "failed to parse machine token"},
  };
  for (const auto& [token, message] : cases) {
    SCOPED_TRACE("token " + token);
    EXPECT_THAT(servers_->ListServer(Context(token).get(), {}, &servers),
                GrpcIs(grpc::StatusCode::UNAUTHENTICATED, HasSubstr(message)));
    pb::RegisterServerRequest request;
    request.set_name("intruder.example.com");
    pb::RegisterServerResponse registered;
    EXPECT_THAT(servers_->RegisterServer(Context(token).get(), request, &registered),
                GrpcIs(grpc::StatusCode::UNAUTHENTICATED, HasSubstr(message)));

    ASSERT_OK_AND_ASSIGN(HttpResult listed, Rest("GET", "/v1/servers", token));
    EXPECT_THAT(listed, RestErrorIs(401, 16, HasSubstr(message)));
    EXPECT_TRUE(listed.Header("WWW-Authenticate").has_value());
    EXPECT_THAT(Rest("POST", "/v1/servers", token, R"({"name":"intruder.example.com"})"),
                RestErrorIs(401, 16, HasSubstr(message)));
    EXPECT_THAT(Rest("GET", "/v1/sd/intruder.example.com/default", token),
                RestErrorIs(401, 16, HasSubstr(message)));
  }
  pb::ListServerResponse after;
  ASSERT_THAT(servers_->ListServer(Context(admin_).get(), {}, &after), GrpcOk());
  for (const pb::Server& server : after.servers()) {
    EXPECT_NE(server.name(), "intruder.example.com");
  }
}

TEST_P(ServerE2eTest, MachineTokensChangeServicesOnlyInTheirNamespaces) {
  ASSERT_NO_FATAL_FAILURE(RegisterServer("machine.example.com", {{"suite", "machine"}}));
  ASSERT_NO_FATAL_FAILURE(RegisterNamespace("team-a", 1));
  ASSERT_NO_FATAL_FAILURE(RegisterNamespace("other", 1));
  ASSERT_OK_AND_ASSIGN(const std::string machine, server_->process->MachineToken("ci", {"team-a"}));

  // gRPC
  pb::RegisterServiceRequest request;
  request.set_name("app");
  request.set_endpoint("http://app.example.com:8080/metrics");
  request.set_selector("suite=machine");
  request.set_namespace_("other");
  pb::RegisterServiceResponse registered;
  EXPECT_THAT(services_->RegisterService(Context(machine).get(), request, &registered),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED,
                     HasSubstr("machine token ci (team-a) is not allowed to change service in "
                               "other namespace")));
  request.set_namespace_("");  // i.e. default
  EXPECT_THAT(services_->RegisterService(Context(machine).get(), request, &registered),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED, HasSubstr("default namespace")));
  request.set_namespace_("team-a");
  ASSERT_THAT(services_->RegisterService(Context(machine).get(), request, &registered), GrpcOk());
  EXPECT_THAT(Strings(registered.service().servers()), ElementsAre("machine.example.com"));
  pb::UnRegisterServiceRequest unregister;
  unregister.set_namespace_("other");
  unregister.set_id(registered.service().id());
  pb::UnRegisterServiceResponse unregistered;
  EXPECT_THAT(services_->UnRegisterService(Context(machine).get(), unregister, &unregistered),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED, HasSubstr("other namespace")));
  unregister.set_namespace_("team-a");
  EXPECT_THAT(services_->UnRegisterService(Context(machine).get(), unregister, &unregistered),
              GrpcOk());

  pb::RegisterServerRequest server_request;
  server_request.set_name("machine2.example.com");
  pb::RegisterServerResponse server_response;
  EXPECT_THAT(servers_->RegisterServer(Context(machine).get(), server_request, &server_response),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED,
                     HasSubstr("machine token for ci is not allowed to register a server")));
  pb::UnregisterServerRequest server_unregister;
  server_unregister.set_name("machine.example.com");
  pb::UnregisterServerResponse server_unregistered;
  EXPECT_THAT(
      servers_->UnregisterServer(Context(machine).get(), server_unregister, &server_unregistered),
      GrpcIs(grpc::StatusCode::PERMISSION_DENIED, HasSubstr("unregister a server")));
  pb::RegisterNamespaceRequest namespace_request;
  namespace_request.set_name("team-b");
  pb::RegisterNamespaceResponse namespace_response;
  EXPECT_THAT(namespaces_->RegisterNamespace(Context(machine).get(), namespace_request,
                                             &namespace_response),
              GrpcIs(grpc::StatusCode::PERMISSION_DENIED, HasSubstr("register a namespace")));
  pb::ListNamespaceResponse namespaces;
  EXPECT_THAT(namespaces_->ListNamespace(Context(machine).get(), {}, &namespaces), GrpcOk());

  // REST
  const Json body = {{"name", "app"},
                     {"endpoint", "http://app.example.com:8080/metrics"},
                     {"selector", "suite=machine"},
                     {"namespace", "other"}};
  EXPECT_THAT(Rest("POST", "/v1/services", machine, body.dump()),
              RestErrorIs(403, 7, HasSubstr("other namespace")));
  Json allowed = body;
  allowed["namespace"] = "team-a";
  Json created = OkJson(Rest("POST", "/v1/services", machine, allowed.dump()));
  EXPECT_EQ(created["service"]["namespace"], "team-a");
  ASSERT_OK_AND_ASSIGN(HttpResult sd, Rest("GET", "/v1/sd/machine.example.com/team-a", machine));
  EXPECT_EQ(sd.status, 200);
  EXPECT_THAT(sd.body, HasSubstr(R"("targets":["app.example.com:8080"])"));
  EXPECT_THAT(
      Rest("DELETE", "/v1/services/other?id=" + created["service"].value("id", ""), machine),
      RestErrorIs(403, 7, HasSubstr("other namespace")));
  EXPECT_EQ(OkJson(Rest("DELETE", "/v1/services/team-a?id=" + created["service"].value("id", ""),
                        machine)),
            Json::object());
  EXPECT_THAT(Rest("POST", "/v1/servers", machine, R"({"name":"machine2.example.com"})"),
              RestErrorIs(403, 7, HasSubstr("register a server")));
  EXPECT_THAT(Rest("DELETE", "/v1/namespaces/other", machine),
              RestErrorIs(403, 7, HasSubstr("unregister a namespace")));
  EXPECT_THAT(Rest("POST", "/v1/tokens", machine, R"({"id":"escalate"})"),
              RestErrorIs(403, 7, HasSubstr("create a token")));
  OkJson(Rest("GET", "/v1/services", machine));
}

}  // namespace
}  // namespace discovery::testing::server_e2e
