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
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"
#include "testing/discoveryd_process.h"
#include "testing/etcd_harness.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {

// gtest printers for what the matchers below see (found by argument-dependent lookup).
[[maybe_unused]] static void PrintTo(const HttpResult& result, std::ostream* os) {
  *os << "HTTP " << result.status << " " << result.body;
}
[[maybe_unused]] static void PrintTo(const absl::StatusOr<HttpResult>& result, std::ostream* os) {
  if (result.ok()) {
    PrintTo(*result, os);
  } else {
    *os << result.status();
  }
}

namespace {

namespace pb = ::postfinance::discovery::v1;
using Json = ::nlohmann::json;
using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Optional;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr char kIssuer[] = "discovery.test";
constexpr char kSecret[] = "e2e-integration-secret";
constexpr char kRfc3339[] =
    R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?Z)";
constexpr char kGoZeroTime[] = "0001-01-01T00:00:00Z";
constexpr int64_t kGoZeroTimeUnixSeconds = -62135596800;

// The README's http_sd answers ("Example Workflow"), as compact JSON.
constexpr char kReadmeStandardBody[] =
    R"([{"targets":["example.com"],"labels":{"__metrics_path__":"/metrics","__scheme__":"http",)"
    R"("instance":"example.com","job":"example","label1":"value1","label2":"value2"}}])";
constexpr char kReadmeBlackboxBody[] =
    R"([{"targets":["http://blackbox.example.com"],"labels":{}}])";

enum class Backend { kEmbedded, kEtcd };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kEmbedded ? "embedded" : "etcd";
}

void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kEmbedded ? "embedded" : "etcd");
}

// A key prefix no other discoveryd uses, also across runs against a long-lived etcd
// (DISCOVERY_TEST_ETCD_ENDPOINTS): discoveryd accepts ^/[a-z-]+$.
std::string UniqueEtcdPrefix() {
  std::random_device random;
  std::uniform_int_distribution<int> letter(0, 25);
  std::string prefix = "/server-e-e-";
  for (int i = 0; i < 16; ++i) {
    prefix += static_cast<char>('a' + letter(random));
  }
  return prefix;
}

absl::StatusOr<DiscoverydOptions> OptionsFor(Backend backend) {
  DiscoverydOptions options{
      .binary = DISCOVERYD_BINARY, .token_secret = kSecret, .token_issuer = kIssuer};
  if (backend == Backend::kEtcd) {
    absl::StatusOr<EtcdCluster*> etcd = SharedEtcdCluster();
    if (!etcd.ok()) {
      return etcd.status();
    }
    options.extra_args = {"--store=etcd", "--etcd-endpoints=" + (*etcd)->EndpointList(),
                          "--etcd-prefix=" + UniqueEtcdPrefix()};
  }
  return options;
}

std::string PercentEncode(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if ((std::isalnum(byte) != 0) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", byte);
    }
  }
  return out;
}

// A context with a deadline and, unless `token` is empty, `authorization: bearer <token>`.
std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) {
    context->AddMetadata("authorization", "bearer " + token);
  }
  return context;
}

MATCHER(GrpcOk, "is an OK gRPC status") {
  *result_listener << "status is " << arg.error_code() << ": " << arg.error_message();
  return arg.ok();
}

MATCHER_P2(GrpcIs, code, message_matcher,
           "has gRPC code " + ::testing::PrintToString(static_cast<int>(code))) {
  *result_listener << "status is " << arg.error_code() << ": " << arg.error_message() << " ";
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(), result_listener);
}

const HttpResult* Unwrap(const HttpResult& result) { return &result; }
const HttpResult* Unwrap(const absl::StatusOr<HttpResult>& result) {
  return result.ok() ? &*result : nullptr;
}

// An HttpResult (or an OK StatusOr of one) carrying grpc-gateway's error: HTTP `status`, a JSON
// body with exactly the keys code (= `code`), message (matching `message_matcher`) and
// details (= []).
MATCHER_P3(RestErrorIs, status, code, message_matcher,
           "is an HTTP " + ::testing::PrintToString(status) + " error with code " +
               ::testing::PrintToString(code)) {
  const HttpResult* result = Unwrap(arg);
  if (result == nullptr) {
    return false;
  }
  const Json body = Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  if (result->status != status || !body.is_object() || body.size() != 3 || !body.contains("code") ||
      body["code"] != code || !body.contains("details") || body["details"] != Json::array() ||
      !body.contains("message") || !body["message"].is_string()) {
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, body["message"].get<std::string>(),
                                       result_listener);
}

// The JSON body of a successful (HTTP 200) result; fails the test otherwise.
Json OkJson(const absl::StatusOr<HttpResult>& result) {
  EXPECT_THAT(result, IsOk());
  if (!result.ok()) {
    return Json();
  }
  EXPECT_EQ(result->status, 200) << result->body;
  EXPECT_THAT(result->Header("Content-Type"), Optional(std::string("application/json")));
  Json body = Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(body.is_discarded()) << result->body;
  return body;
}

std::vector<std::string> Keys(const Json& object) {
  std::vector<std::string> keys;
  if (object.is_object()) {
    for (const auto& [key, value] : object.items()) {
      keys.push_back(key);
    }
  }
  return keys;
}

// The element of the JSON array `array` whose "name" is `name`, or null.
Json FindByName(const Json& array, const std::string& name) {
  if (array.is_array()) {
    for (const Json& element : array) {
      if (element.is_object() && element.value("name", "") == name) {
        return element;
      }
    }
  }
  return Json();
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& values) {
  return {values.begin(), values.end()};
}

std::map<std::string, std::string> Map(const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

// A compact JWT with the given header and payload, HMAC-signed with `digest` and `secret`
// (`digest` nullptr: an empty signature).
std::string HandMadeJwt(const Json& header, const Json& payload, const EVP_MD* digest,
                        const std::string& secret) {
  const std::string signing_input =
      auth::Base64UrlEncode(header.dump()) + "." + auth::Base64UrlEncode(payload.dump());
  std::string signature;
  if (digest != nullptr) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_size = 0;
    const unsigned char* out = HMAC(digest, secret.data(), static_cast<int>(secret.size()),
                                    reinterpret_cast<const unsigned char*>(signing_input.data()),
                                    signing_input.size(), mac, &mac_size);
    EXPECT_NE(out, nullptr);
    signature = auth::Base64UrlEncode(
        std::string_view(reinterpret_cast<const char*>(mac), static_cast<size_t>(mac_size)));
  }
  return signing_input + "." + signature;
}

// Claims an admin machine token of ours would carry.
Json AdminClaims() {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  return Json{{"iss", kIssuer},
              {"nbf", now - 5},
              {"iat", now - 5},
              {"jti", "mallory"},
              {"namespaces", {"default"}},
              {"admin", true}};
}

// One running discoveryd with what the tests need to talk to it.
struct RunningServer {
  std::unique_ptr<DiscoverydProcess> process;
  std::string admin;  // an admin machine token from `discoveryd token create --admin`
  std::shared_ptr<grpc::Channel> channel;
};

absl::StatusOr<RunningServer> StartServer(Backend backend) {
  absl::StatusOr<DiscoverydOptions> options = OptionsFor(backend);
  if (!options.ok()) {
    return options.status();
  }
  absl::StatusOr<std::unique_ptr<DiscoverydProcess>> process =
      DiscoverydProcess::Start(*std::move(options));
  if (!process.ok()) {
    return process.status();
  }
  absl::StatusOr<std::string> admin = (*process)->AdminToken();
  if (!admin.ok()) {
    return admin.status();
  }
  RunningServer server{.process = *std::move(process), .admin = *std::move(admin)};
  server.channel =
      grpc::CreateChannel(server.process->grpc_address(), grpc::InsecureChannelCredentials());
  return server;
}

class ServerE2eTest : public ::testing::TestWithParam<Backend> {
 protected:
  // The discoveryd of this parameter, started by the first test that needs it.
  static std::map<Backend, RunningServer>& SharedServers() {
    static auto* servers = new std::map<Backend, RunningServer>();
    return *servers;
  }

  static void TearDownTestSuite() { SharedServers().clear(); }

  void SetUp() override {
    std::map<Backend, RunningServer>& servers = SharedServers();
    if (!servers.contains(GetParam())) {
      ASSERT_OK_AND_ASSIGN(RunningServer started, StartServer(GetParam()));
      servers.emplace(GetParam(), std::move(started));
    }
    server_ = &servers.at(GetParam());
    ASSERT_TRUE(server_->process->IsRunning()) << "discoveryd died in an earlier test:\n"
                                               << server_->process->LogTail();
    admin_ = server_->admin;
    namespaces_ = pb::NamespaceAPI::NewStub(server_->channel);
    servers_ = pb::ServerAPI::NewStub(server_->channel);
    services_ = pb::ServiceAPI::NewStub(server_->channel);
    tokens_ = pb::TokenAPI::NewStub(server_->channel);
  }

  void TearDown() override {
    if (server_ != nullptr) {
      EXPECT_TRUE(server_->process->IsRunning()) << "discoveryd died during this test:\n"
                                                 << server_->process->LogTail();
    }
  }

  // `method` `path` over REST with `token` (none when empty) and a JSON `body`.
  absl::StatusOr<HttpResult> Rest(std::string_view method, const std::string& path,
                                  const std::string& token, const std::string& body = "",
                                  HttpHeaders headers = {}) const {
    if (!token.empty()) {
      headers.emplace_back("Authorization", "Bearer " + token);
    }
    if (!body.empty()) {
      headers.emplace_back("Content-Type", "application/json");
    }
    return HttpRequest(method, server_->process->http_url() + path, body, headers);
  }

  // Registers a server over gRPC as admin.
  void RegisterServer(const std::string& name, const std::map<std::string, std::string>& labels) {
    pb::RegisterServerRequest request;
    request.set_name(name);
    request.mutable_labels()->insert(labels.begin(), labels.end());
    pb::RegisterServerResponse response;
    ASSERT_THAT(servers_->RegisterServer(Context(admin_).get(), request, &response), GrpcOk());
  }

  // Registers a namespace over gRPC as admin.
  void RegisterNamespace(const std::string& name, int export_config) {
    pb::RegisterNamespaceRequest request;
    request.set_name(name);
    request.set_export_(export_config);
    pb::RegisterNamespaceResponse response;
    ASSERT_THAT(namespaces_->RegisterNamespace(Context(admin_).get(), request, &response),
                GrpcOk());
  }

  RunningServer* server_ = nullptr;
  std::string admin_;
  std::unique_ptr<pb::NamespaceAPI::Stub> namespaces_;
  std::unique_ptr<pb::ServerAPI::Stub> servers_;
  std::unique_ptr<pb::ServiceAPI::Stub> services_;
  std::unique_ptr<pb::TokenAPI::Stub> tokens_;
};

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
  ASSERT_EQ(listed["services"].size(), 1u) << listed;
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
}  // namespace discovery::testing
