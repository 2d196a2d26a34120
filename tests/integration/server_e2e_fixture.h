// What the end-to-end tests of discoveryd share: a discoveryd per store backend (shared by the
// tests of one parameter), gRPC stubs, REST calls and the matchers and JSON helpers the tests use.
#pragma once

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
inline void PrintTo(const HttpResult& result, std::ostream* os) {
  *os << "HTTP " << result.status << " " << result.body;
}
inline void PrintTo(const absl::StatusOr<HttpResult>& result, std::ostream* os) {
  if (result.ok()) {
    PrintTo(*result, os);
  } else {
    *os << result.status();
  }
}

namespace server_e2e {

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

inline constexpr const char* kIssuer = "discovery.test";
inline constexpr const char* kSecret = "e2e-integration-secret";
inline constexpr const char* kRfc3339 =
    R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?Z)";
inline constexpr const char* kGoZeroTime = "0001-01-01T00:00:00Z";
inline constexpr int64_t kGoZeroTimeUnixSeconds = -62135596800;

// The README's http_sd answers ("Example Workflow"), as compact JSON.
inline constexpr const char* kReadmeStandardBody =
    R"([{"targets":["example.com"],"labels":{"__metrics_path__":"/metrics","__scheme__":"http",)"
    R"("instance":"example.com","job":"example","label1":"value1","label2":"value2"}}])";
inline constexpr const char* kReadmeBlackboxBody =
    R"([{"targets":["http://blackbox.example.com"],"labels":{}}])";

enum class Backend { kEmbedded, kEtcd };

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kEmbedded ? "embedded" : "etcd";
}

inline void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kEmbedded ? "embedded" : "etcd");
}

// A key prefix no other discoveryd uses, also across runs against a long-lived etcd
// (DISCOVERY_TEST_ETCD_ENDPOINTS): discoveryd accepts ^/[a-z-]+$.
inline std::string UniqueEtcdPrefix() {
  std::random_device random;
  std::uniform_int_distribution<int> letter(0, 25);
  std::string prefix = "/server-e-e-";
  for (int i = 0; i < 16; ++i) {
    prefix += static_cast<char>('a' + letter(random));
  }
  return prefix;
}

inline absl::StatusOr<DiscoverydOptions> OptionsFor(Backend backend) {
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

inline std::string PercentEncode(std::string_view text) {
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
inline std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
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

inline const HttpResult* Unwrap(const HttpResult& result) { return &result; }
inline const HttpResult* Unwrap(const absl::StatusOr<HttpResult>& result) {
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
inline Json OkJson(const absl::StatusOr<HttpResult>& result) {
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

inline std::vector<std::string> Keys(const Json& object) {
  std::vector<std::string> keys;
  if (object.is_object()) {
    for (const auto& [key, value] : object.items()) {
      keys.push_back(key);
    }
  }
  return keys;
}

// The element of the JSON array `array` whose "name" is `name`, or null.
inline Json FindByName(const Json& array, const std::string& name) {
  if (array.is_array()) {
    for (const Json& element : array) {
      if (element.is_object() && element.value("name", "") == name) {
        return element;
      }
    }
  }
  return Json();
}

inline std::vector<std::string> Strings(
    const google::protobuf::RepeatedPtrField<std::string>& values) {
  return {values.begin(), values.end()};
}

inline std::map<std::string, std::string> Map(
    const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

// A compact JWT with the given header and payload, HMAC-signed with `digest` and `secret`
// (`digest` nullptr: an empty signature).
inline std::string HandMadeJwt(const Json& header, const Json& payload, const EVP_MD* digest,
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
inline Json AdminClaims() {
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

inline absl::StatusOr<RunningServer> StartServer(Backend backend) {
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

}  // namespace server_e2e
}  // namespace discovery::testing
