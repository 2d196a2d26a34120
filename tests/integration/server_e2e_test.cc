// End-to-end tests of the real `discoveryd` binary (DISCOVERYD_BINARY, set by CMake) over real
// sockets: every RPC of the four APIs over gRPC and over REST, their errors, authentication and
// authorization, the README's http_sd examples, health, metrics, restart and graceful stop.
// Each test runs against the embedded store and against a real etcd (each discoveryd under its
// own key prefix). The tests of one parameter share one discoveryd and keep apart by names.
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

INSTANTIATE_TEST_SUITE_P(Stores, ServerE2eTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kEtcd), BackendName);

TEST_P(ServerE2eTest, ReadyHealthyAndServingMetrics) {
  const std::string url = server_->process->http_url();
  ASSERT_OK_AND_ASSIGN(HttpResult healthz, HttpGet(url + "/healthz"));
  EXPECT_EQ(healthz.status, 200);
  ASSERT_OK_AND_ASSIGN(HttpResult readyz, HttpGet(url + "/readyz"));
  EXPECT_EQ(readyz.status, 200) << readyz.body;

  std::unique_ptr<Health::Stub> health = Health::NewStub(server_->channel);
  HealthCheckResponse last;
  grpc::Status last_status;
  EXPECT_TRUE(Eventually(
      [&] {
        last_status = health->Check(Context("").get(), HealthCheckRequest(), &last);
        return last_status.ok() && last.status() == HealthCheckResponse::SERVING;
      },
      absl::Seconds(10)))
      << "health: " << last_status.error_message() << " status " << last.status();

  // gRPC series appear on first use.
  pb::ListServerResponse servers;
  ASSERT_THAT(servers_->ListServer(Context(admin_).get(), {}, &servers), GrpcOk());
  std::string metrics;
  EXPECT_TRUE(Eventually(
      [&] {
        absl::StatusOr<HttpResult> result = HttpGet(url + "/metrics");
        metrics = result.ok() ? result->body : "";
        return metrics.find("grpc_server_handled_total{") != std::string::npos &&
               metrics.find(R"(grpc_method="ListServer")") != std::string::npos;
      },
      absl::Seconds(10)))
      << metrics;
}

TEST_P(ServerE2eTest, NamespaceApiOverGrpcAndRest) {
  // gRPC
  pb::RegisterNamespaceRequest request;
  request.set_name("grpc-namespace");
  request.set_export_(2);
  pb::RegisterNamespaceResponse registered;
  ASSERT_THAT(namespaces_->RegisterNamespace(Context(admin_).get(), request, &registered),
              GrpcOk());
  EXPECT_EQ(registered.namespace_().name(), "grpc-namespace");
  EXPECT_EQ(registered.namespace_().export_(), 2);
  EXPECT_GT(registered.namespace_().modified().seconds(), 0);

  pb::ListNamespaceResponse list;
  ASSERT_THAT(namespaces_->ListNamespace(Context(admin_).get(), {}, &list), GrpcOk());
  std::map<std::string, int> exports;
  for (const pb::Namespace& ns : list.namespaces()) {
    exports[ns.name()] = ns.export_();
  }
  EXPECT_THAT(exports, AllOf(::testing::Contains(Pair("default", 1)),
                             ::testing::Contains(Pair("grpc-namespace", 2))));

  pb::UnregisterNamespaceRequest unregister;
  unregister.set_name("grpc-namespace");
  pb::UnregisterNamespaceResponse unregistered;
  EXPECT_THAT(namespaces_->UnregisterNamespace(Context(admin_).get(), unregister, &unregistered),
              GrpcOk());
  EXPECT_THAT(namespaces_->UnregisterNamespace(Context(admin_).get(), unregister, &unregistered),
              GrpcIs(grpc::StatusCode::NOT_FOUND, HasSubstr("grpc-namespace")));
  request.set_name("bad/name");
  EXPECT_THAT(namespaces_->RegisterNamespace(Context(admin_).get(), request, &registered),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("validation error")));
  request.set_name("bad-export");
  request.set_export_(7);
  EXPECT_THAT(namespaces_->RegisterNamespace(Context(admin_).get(), request, &registered),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("export config")));

  // REST
  Json created =
      OkJson(Rest("POST", "/v1/namespaces", admin_, R"({"name":"rest-namespace","export":1})"));
  EXPECT_THAT(Keys(created), ElementsAre("namespace"));
  EXPECT_THAT(Keys(created["namespace"]), UnorderedElementsAre("name", "export", "modified"));
  EXPECT_EQ(created["namespace"]["name"], "rest-namespace");
  EXPECT_EQ(created["namespace"]["export"], 1);
  EXPECT_THAT(created["namespace"].value("modified", ""), MatchesRegex(kRfc3339));

  Json listed = OkJson(Rest("GET", "/v1/namespaces", admin_));
  EXPECT_EQ(FindByName(listed["namespaces"], "rest-namespace").value("export", -1), 1) << listed;
  EXPECT_EQ(FindByName(listed["namespaces"], "default").value("export", -1), 1) << listed;

  EXPECT_EQ(OkJson(Rest("DELETE", "/v1/namespaces/rest-namespace", admin_)), Json::object());
  EXPECT_THAT(Rest("DELETE", "/v1/namespaces/rest-namespace", admin_),
              RestErrorIs(404, 5, HasSubstr("rest-namespace")));
  EXPECT_THAT(Rest("POST", "/v1/namespaces", admin_, R"({"name":"bad/name"})"),
              RestErrorIs(400, 3, HasSubstr("validation error")));
  EXPECT_THAT(Rest("DELETE", "/v1/namespaces/bad%2Fname", admin_),
              RestErrorIs(400, 3, HasSubstr("validation error")));
}

TEST_P(ServerE2eTest, ServerApiOverGrpcAndRest) {
  // gRPC
  pb::RegisterServerRequest request;
  request.set_name("grpc-server.example.com");
  (*request.mutable_labels())["suite"] = "server-api";
  pb::RegisterServerResponse registered;
  ASSERT_THAT(servers_->RegisterServer(Context(admin_).get(), request, &registered), GrpcOk());
  EXPECT_EQ(registered.server().name(), "grpc-server.example.com");
  EXPECT_THAT(Map(registered.server().labels()), ElementsAre(Pair("suite", "server-api")));
  EXPECT_EQ(registered.server().state(), 2);
  EXPECT_GT(registered.server().modified().seconds(), 0);

  pb::ListServerResponse list;
  ASSERT_THAT(servers_->ListServer(Context(admin_).get(), {}, &list), GrpcOk());
  std::vector<std::string> names;
  for (const pb::Server& server : list.servers()) {
    names.push_back(server.name());
  }
  EXPECT_THAT(names, ::testing::Contains("grpc-server.example.com"));

  pb::UnregisterServerRequest unregister;
  unregister.set_name("grpc-server.example.com");
  pb::UnregisterServerResponse unregistered;
  EXPECT_THAT(servers_->UnregisterServer(Context(admin_).get(), unregister, &unregistered),
              GrpcOk());
  EXPECT_THAT(servers_->UnregisterServer(Context(admin_).get(), unregister, &unregistered),
              GrpcIs(grpc::StatusCode::NOT_FOUND, HasSubstr("grpc-server.example.com")));
  request.set_name("../x");
  EXPECT_THAT(servers_->RegisterServer(Context(admin_).get(), request, &registered),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("validation error")));
  unregister.set_name("../x");
  EXPECT_THAT(servers_->UnregisterServer(Context(admin_).get(), unregister, &unregistered),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("validation error")));

  // REST
  Json created = OkJson(Rest("POST", "/v1/servers", admin_,
                             R"({"name":"rest-server.example.com","labels":{"a":"1"}})"));
  EXPECT_THAT(Keys(created), ElementsAre("server"));
  Json& server = created["server"];
  EXPECT_THAT(Keys(server), UnorderedElementsAre("name", "labels", "modified", "state"));
  EXPECT_EQ(server["name"], "rest-server.example.com");
  EXPECT_EQ(server["labels"], Json({{"a", "1"}}));
  EXPECT_EQ(server["state"], "2");  // int64 as a JSON string
  EXPECT_THAT(server.value("modified", ""), MatchesRegex(kRfc3339));

  Json listed = OkJson(Rest("GET", "/v1/servers", admin_));
  EXPECT_EQ(FindByName(listed["servers"], "rest-server.example.com"), server) << listed;

  EXPECT_EQ(OkJson(Rest("DELETE", "/v1/servers/rest-server.example.com", admin_)), Json::object());
  EXPECT_THAT(Rest("DELETE", "/v1/servers/rest-server.example.com", admin_),
              RestErrorIs(404, 5, HasSubstr("rest-server.example.com")));
  EXPECT_THAT(Rest("POST", "/v1/servers", admin_, R"({"name":"../x"})"),
              RestErrorIs(400, 3, HasSubstr("validation error")));
  EXPECT_THAT(Rest("DELETE", "/v1/servers/..%2Fx", admin_),
              RestErrorIs(400, 3, HasSubstr("validation error")));
}

TEST_P(ServerE2eTest, ServiceApiOverGrpc) {
  ASSERT_NO_FATAL_FAILURE(
      RegisterServer("grpc-services.example.com", {{"suite", "grpc-services"}}));
  ASSERT_NO_FATAL_FAILURE(RegisterNamespace("grpc-services", 1));

  pb::RegisterServiceRequest request;
  request.set_name("node");
  request.set_endpoint("http://node1.example.com:9100/metrics");
  request.set_namespace_("grpc-services");
  request.set_selector("suite=grpc-services");
  request.set_description("node exporter");
  (*request.mutable_labels())["team"] = "a";
  pb::RegisterServiceResponse registered;
  ASSERT_THAT(services_->RegisterService(Context(admin_).get(), request, &registered), GrpcOk());
  const pb::Service& service = registered.service();
  EXPECT_THAT(service.id(), MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-"
                                         "[0-9a-f]{12}"));
  EXPECT_EQ(service.name(), "node");
  EXPECT_EQ(service.endpoint(), "http://node1.example.com:9100/metrics");
  EXPECT_EQ(service.namespace_(), "grpc-services");
  EXPECT_EQ(service.selector(), "suite=grpc-services");
  EXPECT_THAT(Strings(service.servers()), ElementsAre("grpc-services.example.com"));
  EXPECT_THAT(Map(service.labels()), ElementsAre(Pair("team", "a")));
  EXPECT_EQ(service.description(), "node exporter");
  EXPECT_GT(service.modified().seconds(), 0);

  pb::ListServiceRequest list_request;
  list_request.set_namespace_("grpc-services");
  pb::ListServiceResponse list;
  ASSERT_THAT(services_->ListService(Context(admin_).get(), list_request, &list), GrpcOk());
  ASSERT_EQ(list.services_size(), 1);
  EXPECT_EQ(list.services(0).id(), service.id());
  EXPECT_THAT(Strings(list.services(0).servers()), ElementsAre("grpc-services.example.com"));

  pb::ListTargetGroupRequest groups_request;
  groups_request.set_server("grpc-services.example.com");
  groups_request.set_namespace_("grpc-services");
  pb::ListTargetGroupResponse groups;
  ASSERT_THAT(services_->ListTargetGroup(Context(admin_).get(), groups_request, &groups), GrpcOk());
  ASSERT_EQ(groups.targetgroups_size(), 1);
  EXPECT_THAT(Strings(groups.targetgroups(0).targets()), ElementsAre("node1.example.com:9100"));
  EXPECT_THAT(Map(groups.targetgroups(0).labels()),
              ElementsAre(Pair("__metrics_path__", "/metrics"), Pair("__scheme__", "http"),
                          Pair("instance", "node1.example.com:9100"), Pair("job", "node"),
                          Pair("team", "a")));
  groups_request.set_config("blackbox");
  ASSERT_THAT(services_->ListTargetGroup(Context(admin_).get(), groups_request, &groups), GrpcOk());
  ASSERT_EQ(groups.targetgroups_size(), 1);
  EXPECT_THAT(Strings(groups.targetgroups(0).targets()),
              ElementsAre("http://node1.example.com:9100/metrics"));
  groups_request.set_config("bogus");
  EXPECT_THAT(services_->ListTargetGroup(Context(admin_).get(), groups_request, &groups),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("bogus")));
  groups_request.set_config("");
  groups_request.set_server("nobody.example.com");
  // An unknown server has no targets, like one without services, so Prometheus drops them.
  ASSERT_THAT(services_->ListTargetGroup(Context(admin_).get(), groups_request, &groups), GrpcOk());
  EXPECT_EQ(groups.targetgroups_size(), 0);

  // Registration errors.
  pb::RegisterServiceRequest bad = request;
  bad.set_endpoint("localhost:9100");
  EXPECT_THAT(services_->RegisterService(Context(admin_).get(), bad, &registered),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("http://localhost:9100")));
  bad = request;
  bad.set_selector("env in (x");
  EXPECT_THAT(services_->RegisterService(Context(admin_).get(), bad, &registered),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("env in (x")));
  bad = request;
  bad.set_namespace_("no-such-namespace");
  EXPECT_THAT(services_->RegisterService(Context(admin_).get(), bad, &registered),
              GrpcIs(grpc::StatusCode::NOT_FOUND, HasSubstr("no-such-namespace")));
  bad = request;
  bad.set_namespace_("bad/name");
  EXPECT_THAT(services_->RegisterService(Context(admin_).get(), bad, &registered),
              GrpcIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("validation error")));
  bad = request;
  bad.set_selector("suite=nobody");
  EXPECT_THAT(services_->RegisterService(Context(admin_).get(), bad, &registered),
              GrpcIs(grpc::StatusCode::NOT_FOUND,
                     ::testing::Eq("no server found for selector 'suite=nobody'")));

  // Unregister by endpoint (any spelling of it), then by id.
  pb::UnRegisterServiceRequest unregister;
  unregister.set_namespace_("grpc-services");
  unregister.set_id("HTTP://node1.example.com:9100/metrics");
  pb::UnRegisterServiceResponse unregistered;
  EXPECT_THAT(services_->UnRegisterService(Context(admin_).get(), unregister, &unregistered),
              GrpcOk());
  EXPECT_THAT(services_->UnRegisterService(Context(admin_).get(), unregister, &unregistered),
              GrpcIs(grpc::StatusCode::NOT_FOUND, HasSubstr("not found")));
  ASSERT_THAT(services_->RegisterService(Context(admin_).get(), request, &registered), GrpcOk());
  unregister.set_id(registered.service().id());
  EXPECT_THAT(services_->UnRegisterService(Context(admin_).get(), unregister, &unregistered),
              GrpcOk());
  ASSERT_THAT(services_->ListService(Context(admin_).get(), list_request, &list), GrpcOk());
  EXPECT_EQ(list.services_size(), 0);
}

TEST_P(ServerE2eTest, ServiceApiOverRest) {
  ASSERT_NO_FATAL_FAILURE(
      RegisterServer("rest-services.example.com", {{"suite", "rest-services"}}));
  ASSERT_NO_FATAL_FAILURE(RegisterNamespace("rest-services", 1));

  const std::string endpoint = "http://node2.example.com:9100/metrics";
  const Json request = {{"name", "node"},
                        {"endpoint", endpoint},
                        {"namespace", "rest-services"},
                        {"selector", "suite=rest-services"},
                        {"labels", {{"team", "b"}}},
                        {"description", "node exporter"}};
  Json created = OkJson(Rest("POST", "/v1/services", admin_, request.dump()));
  EXPECT_THAT(Keys(created), ElementsAre("service"));
  Json& service = created["service"];
  // ttl and expires (docs/decisions.md D49) are null for a registration without a TTL.
  EXPECT_THAT(Keys(service),
              UnorderedElementsAre("id", "name", "endpoint", "namespace", "selector", "servers",
                                   "labels", "description", "modified", "ttl", "expires"));
  EXPECT_TRUE(service["ttl"].is_null());
  EXPECT_TRUE(service["expires"].is_null());
  EXPECT_EQ(service["name"], "node");
  EXPECT_EQ(service["endpoint"], endpoint);
  EXPECT_EQ(service["namespace"], "rest-services");
  EXPECT_EQ(service["selector"], "suite=rest-services");
  EXPECT_EQ(service["servers"], Json({"rest-services.example.com"}));
  EXPECT_EQ(service["labels"], Json({{"team", "b"}}));
  EXPECT_EQ(service["description"], "node exporter");
  EXPECT_THAT(service.value("modified", ""), MatchesRegex(kRfc3339));
  const std::string id = service.value("id", "");

  Json listed = OkJson(Rest("GET", "/v1/services?namespace=rest-services", admin_));
  EXPECT_THAT(Keys(listed), ElementsAre("invalidServices", "services"));
  ASSERT_EQ(listed["services"].size(), 1U) << listed;
  EXPECT_EQ(listed["services"][0]["id"], id);

  // The same over http_sd and gRPC.
  ASSERT_OK_AND_ASSIGN(HttpResult sd,
                       Rest("GET", "/v1/sd/rest-services.example.com/rest-services", admin_));
  EXPECT_EQ(sd.status, 200) << sd.body;
  EXPECT_EQ(
      sd.body,
      R"([{"targets":["node2.example.com:9100"],"labels":{"__metrics_path__":"/metrics",)"
      R"("__scheme__":"http","instance":"node2.example.com:9100","job":"node","team":"b"}}])");

  // Registration errors.
  Json bad = request;
  bad["endpoint"] = "localhost:9100";
  EXPECT_THAT(Rest("POST", "/v1/services", admin_, bad.dump()),
              RestErrorIs(400, 3, HasSubstr("http://localhost:9100")));
  bad = request;
  bad["selector"] = "env in (x";
  EXPECT_THAT(Rest("POST", "/v1/services", admin_, bad.dump()),
              RestErrorIs(400, 3, HasSubstr("env in (x")));
  bad = request;
  bad["namespace"] = "no-such-namespace";
  EXPECT_THAT(Rest("POST", "/v1/services", admin_, bad.dump()),
              RestErrorIs(404, 5, HasSubstr("no-such-namespace")));
  bad = request;
  bad["selector"] = "suite=nobody";
  EXPECT_THAT(Rest("POST", "/v1/services", admin_, bad.dump()),
              RestErrorIs(404, 5, ::testing::Eq("no server found for selector 'suite=nobody'")));
  // Unknown namespace or server: no targets, not an error (Prometheus would keep old targets).
  for (const char* path : {"/v1/sd/rest-services.example.com/no-such-namespace",
                           "/v1/sd/nobody.example.com/rest-services"}) {
    ASSERT_OK_AND_ASSIGN(HttpResult unknown, Rest("GET", path, admin_));
    EXPECT_EQ(unknown.status, 200) << path;
    EXPECT_EQ(unknown.body, "[]") << path;
  }
  EXPECT_THAT(Rest("GET", "/v1/sd/rest-services.example.com/rest-services?config=bogus", admin_),
              RestErrorIs(400, 3, HasSubstr("bogus")));

  // Unregister by URL-encoded endpoint, then by id.
  EXPECT_EQ(
      OkJson(Rest("DELETE", "/v1/services/rest-services?id=" + PercentEncode(endpoint), admin_)),
      Json::object());
  EXPECT_THAT(Rest("DELETE", "/v1/services/rest-services?id=" + id, admin_),
              RestErrorIs(404, 5, HasSubstr("not found")));
  ASSERT_EQ(OkJson(Rest("POST", "/v1/services", admin_, request.dump()))["service"]["id"], id);
  EXPECT_EQ(OkJson(Rest("DELETE", "/v1/services/rest-services?id=" + id, admin_)), Json::object());
  EXPECT_EQ(OkJson(Rest("GET", "/v1/services?namespace=rest-services", admin_)),
            Json({{"services", Json::array()}, {"invalidServices", Json::array()}}));
  ASSERT_OK_AND_ASSIGN(HttpResult empty,
                       Rest("GET", "/v1/sd/rest-services.example.com/rest-services", admin_));
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "[]");
}

}  // namespace
}  // namespace discovery::testing::server_e2e
