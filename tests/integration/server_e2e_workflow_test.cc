// End-to-end tests of discoveryd as an operator meets it: the README's workflow, a restart with
// the data kept, and a rotated token secret.
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

// The README's "Example Workflow", over REST, with its exact http_sd answers.
TEST_P(ServerE2eTest, ReadmeExampleWorkflow) {
  Json server = OkJson(Rest("POST", "/v1/servers", admin_,
                            R"({"name":"prometheus1.example.com","labels":)"
                            R"({"environment":"test"}})"));
  EXPECT_EQ(server["server"]["labels"], Json({{"environment", "test"}}));
  Json example = OkJson(Rest("POST", "/v1/services", admin_,
                             R"({"name":"example","endpoint":"http://example.com/metrics",)"
                             R"("labels":{"label1":"value1","label2":"value2"},)"
                             R"("selector":"environment=test"})"));
  EXPECT_EQ(example["service"]["id"], "93c156b1-f218-5d79-88a5-219307e59d29");
  EXPECT_EQ(example["service"]["namespace"], "default");
  EXPECT_EQ(example["service"]["servers"], Json({"prometheus1.example.com"}));
  Json blackbox_ns =
      OkJson(Rest("POST", "/v1/namespaces", admin_, R"({"name":"default-blackbox","export":2})"));
  EXPECT_EQ(blackbox_ns["namespace"]["export"], 2);
  Json blackbox = OkJson(Rest("POST", "/v1/services", admin_,
                              R"({"name":"blackbox","endpoint":"http://blackbox.example.com",)"
                              R"("namespace":"default-blackbox","selector":"environment=test"})"));
  EXPECT_EQ(blackbox["service"]["id"], "e988791c-2c4e-5eeb-b3b8-db3c0cf82719");

  ASSERT_OK_AND_ASSIGN(const std::string reader,
                       server_->process->MachineToken("prometheus", {"default"}));
  for (const std::string path : {"/v1/sd/prometheus1.example.com/default",
                                 "/v1/sd/prometheus1.example.com/default?export-config=standard",
                                 "/v1/sd/prometheus1.example.com/default?config=standard"}) {
    ASSERT_OK_AND_ASSIGN(HttpResult sd, Rest("GET", path, reader));
    EXPECT_EQ(sd.status, 200) << path;
    EXPECT_EQ(sd.body, kReadmeStandardBody) << path;
    EXPECT_THAT(sd.Header("Content-Type"), Optional(std::string("application/json"))) << path;
  }
  for (const std::string path : {"/v1/sd/prometheus1.example.com/default-blackbox?config=blackbox",
                                 "/v1/sd/prometheus1.example.com/default-blackbox"}) {
    ASSERT_OK_AND_ASSIGN(HttpResult sd, Rest("GET", path, reader));
    EXPECT_EQ(sd.status, 200) << path;
    EXPECT_EQ(sd.body, kReadmeBlackboxBody) << path;
  }

  // Conditional requests: the ETag gets a 304 without a body, until the content changes.
  const std::string path = "/v1/sd/prometheus1.example.com/default";
  ASSERT_OK_AND_ASSIGN(HttpResult first, Rest("GET", path, reader));
  const std::optional<std::string> etag = first.Header("ETag");
  ASSERT_TRUE(etag.has_value());
  ASSERT_OK_AND_ASSIGN(HttpResult again, Rest("GET", path, reader, "", {{"If-None-Match", *etag}}));
  EXPECT_EQ(again.status, 304);
  EXPECT_EQ(again.body, "");
  ASSERT_OK_AND_ASSIGN(HttpResult other,
                       Rest("GET", path, reader, "", {{"If-None-Match", "\"something-else\""}}));
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, kReadmeStandardBody);

  // The same target groups over gRPC.
  pb::ListTargetGroupRequest request;
  request.set_server("prometheus1.example.com");
  request.set_namespace_("default-blackbox");
  pb::ListTargetGroupResponse groups;
  ASSERT_THAT(services_->ListTargetGroup(Context(reader).get(), request, &groups), GrpcOk());
  ASSERT_EQ(groups.targetgroups_size(), 1);
  EXPECT_THAT(Strings(groups.targetgroups(0).targets()),
              ElementsAre("http://blackbox.example.com"));
  EXPECT_TRUE(groups.targetgroups(0).labels().empty());

  const std::string counted =
      R"(discovery_services_count{namespace="default",server="prometheus1.example.com"} 1)";
  std::string metrics;
  EXPECT_TRUE(Eventually(
      [&] {
        absl::StatusOr<HttpResult> result = HttpGet(server_->process->http_url() + "/metrics");
        metrics = result.ok() ? result->body : "";
        return metrics.find(counted) != std::string::npos;
      },
      absl::Seconds(10)))
      << metrics;
  EXPECT_THAT(metrics, HasSubstr("grpc_server_handled_total{"));
}

TEST_P(ServerE2eTest, KeepsDataAcrossARestartAndStopsGracefully) {
  // A discoveryd of its own: it is restarted and stopped.
  ASSERT_OK_AND_ASSIGN(RunningServer own, StartServer(GetParam()));
  DiscoverydProcess& process = *own.process;
  const std::string url = process.http_url();
  const HttpHeaders admin = {{"Authorization", "Bearer " + own.admin},
                             {"Content-Type", "application/json"}};
  ASSERT_OK_AND_ASSIGN(
      HttpResult server,
      HttpRequest("POST", url + "/v1/servers",
                  R"({"name":"durable.example.com","labels":{"dc":"one"}})", admin));
  ASSERT_EQ(server.status, 200) << server.body;
  ASSERT_OK_AND_ASSIGN(
      HttpResult service,
      HttpRequest("POST", url + "/v1/services",
                  R"({"name":"durable","endpoint":"http://durable.example.com:9100/metrics",)"
                  R"("selector":"dc=one"})",
                  admin));
  ASSERT_EQ(service.status, 200) << service.body;
  const std::string sd_url = url + "/v1/sd/durable.example.com/default";
  ASSERT_OK_AND_ASSIGN(HttpResult before, HttpRequest("GET", sd_url, "", admin));
  ASSERT_EQ(before.status, 200) << before.body;
  ASSERT_NE(before.body, "[]");

  ASSERT_THAT(process.Restart(), IsOk());
  ASSERT_OK_AND_ASSIGN(HttpResult readyz, HttpGet(url + "/readyz"));
  EXPECT_EQ(readyz.status, 200);
  ASSERT_OK_AND_ASSIGN(HttpResult after, HttpRequest("GET", sd_url, "", admin));
  EXPECT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(after.body, before.body);
  // Over a new gRPC connection, with a token minted before the restart.
  auto channel = grpc::CreateChannel(process.grpc_address(), grpc::InsecureChannelCredentials());
  pb::ListServiceResponse services;
  ASSERT_THAT(
      pb::ServiceAPI::NewStub(channel)->ListService(Context(own.admin).get(), {}, &services),
      GrpcOk());
  ASSERT_EQ(services.services_size(), 1);
  EXPECT_EQ(services.services(0).endpoint(), "http://durable.example.com:9100/metrics");
  EXPECT_THAT(Strings(services.services(0).servers()), ElementsAre("durable.example.com"));

  // An idle sync gRPC client notices the server's GOAWAY only when its backup poller runs
  // (every 5 s), and the server waits for that within its grace period; closing the
  // connections keeps the stop quick.
  channel.reset();
  own.channel.reset();
  EXPECT_THAT(process.Stop(), IsOk());
  EXPECT_FALSE(process.IsRunning());
  EXPECT_THAT(process.LogTail(), HasSubstr("shutting down"));
}

// Rotating the token secret: a server started with the new secret and the old one in
// --previous-token-secrets accepts tokens of both (and `token info` reads old ones) until the
// old secret is dropped.
TEST(TokenSecretRotationTest, PreviousSecretsKeepOldTokensWorking) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<DiscoverydProcess> old_server,
      DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY, .token_secret = "old-secret"}));
  ASSERT_OK_AND_ASSIGN(const std::string old_token, old_server->AdminToken());
  old_server.reset();

  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<DiscoverydProcess> rotated,
      DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY,
                                .extra_args = {"--previous-token-secrets=old-secret"},
                                .token_secret = "new-secret"}));
  ASSERT_OK_AND_ASSIGN(const std::string new_token, rotated->AdminToken());
  for (const std::string& token : {old_token, new_token}) {
    ASSERT_OK_AND_ASSIGN(HttpResult listed,
                         HttpRequest("GET", rotated->http_url() + "/v1/namespaces", "",
                                     {{"Authorization", "Bearer " + token}}));
    EXPECT_EQ(listed.status, 200) << listed.body;
  }
  ASSERT_OK_AND_ASSIGN(HttpResult info,
                       HttpRequest("GET", rotated->http_url() + "/v1/tokens/" + old_token, "",
                                   {{"Authorization", "Bearer " + new_token}}));
  EXPECT_EQ(info.status, 200) << info.body;
  EXPECT_THAT(rotated->LogTail(200), Not(HasSubstr("old-secret")));

  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<DiscoverydProcess> retired,
      DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY, .token_secret = "new-secret"}));
  ASSERT_OK_AND_ASSIGN(HttpResult refused,
                       HttpRequest("GET", retired->http_url() + "/v1/namespaces", "",
                                   {{"Authorization", "Bearer " + old_token}}));
  EXPECT_EQ(refused.status, 401) << refused.body;
}

}  // namespace
}  // namespace discovery::testing::server_e2e
