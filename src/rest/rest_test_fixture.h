// The fixture of the REST API's tests: the API over an in-process stack, requests as an admin,
// a machine or anyone, and the checks of the gateway's error shape.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "api/dispatcher.h"
#include "api/handlers.h"
#include "auth/authenticator.h"
#include "auth/authorizer.h"
#include "auth/machine_token.h"
#include "registry/registry.h"
#include "rest/json.h"
#include "rest/rest_api.h"
#include "rest/url.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::rest {

// The names the REST tests use unqualified.
namespace pb = ::postfinance::discovery::v1;
using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Optional;
using ::testing::StartsWith;
using Json = ::nlohmann::json;
using OrderedJson = ::nlohmann::ordered_json;

inline constexpr const char* kIssuer = "discovery-test";
inline constexpr const char* kSecret = "test-secret";
inline constexpr const char* kRfc3339 =
    R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?Z)";

inline std::optional<std::string> HeaderOf(const http::Response& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

// The value of `key` in the JSON object `body.<object>` as text, for splicing into an exact
// expectation (ids and timestamps are not known in advance).
inline std::string Field(const std::string& body, const std::string& object,
                         const std::string& key) {
  const ::nlohmann::json parsed = ::nlohmann::json::parse(body);
  return parsed.at(object).at(key).get<std::string>();
}

class RestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(stack_,
                         testing::ApiStack::Create(
                             {.handlers = {.tokens = {.issuer = kIssuer, .secret = kSecret}}}));
    registry_ = &stack_->registry();
    handlers_ = &stack_->handlers();
    authenticator_ = std::make_unique<auth::Authenticator>(
        auth::AuthenticatorOptions{.issuer = kIssuer, .secret = kSecret});
    dispatcher_ = std::make_unique<api::Dispatcher>(*handlers_, *authenticator_);
    api_ = std::make_unique<RestApi>(*dispatcher_);
    admin_ = "Bearer " + Token("root", {}, /*admin=*/true);
    machine_ = "Bearer " + Token("ci", {"default"}, /*admin=*/false);
  }

  static std::string Token(std::string id, const std::vector<std::string>& namespaces, bool admin) {
    absl::StatusOr<std::string> token =
        auth::CreateMachineToken({.issuer = kIssuer, .secret = kSecret, .admin = admin},
                                 std::move(id), namespaces, absl::ZeroDuration(), absl::Now());
    EXPECT_THAT(token, ::discovery::testing::IsOk());
    return token.value_or("");
  }

  // The request `method target` with `body`; `authorization` nullopt sends no Authorization
  // header.
  static http::Request BuildRequest(std::string method, const std::string& target,
                                    std::string body = "",
                                    std::optional<std::string> authorization = std::nullopt,
                                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request request;
    request.method = std::move(method);
    request.target = target;
    const size_t question = target.find('?');
    request.path = target.substr(0, question);
    request.query = question == std::string::npos ? "" : target.substr(question + 1);
    request.headers = std::move(headers);
    if (authorization.has_value()) {
      request.headers.emplace_back("Authorization", *std::move(authorization));
    }
    request.body = std::move(body);
    return request;
  }

  // Sends `method target` with `body`; `authorization` nullopt sends no Authorization header.
  http::Response Send(std::string method, const std::string& target, std::string body = "",
                      std::optional<std::string> authorization = std::nullopt,
                      std::vector<std::pair<std::string, std::string>> headers = {}) const {
    http::Response response = api_->Handle(BuildRequest(
        std::move(method), target, std::move(body), std::move(authorization), std::move(headers)));
    // A cached body comes as a shared buffer; the tests read every body the same way.
    if (response.shared_body != nullptr) {
      EXPECT_TRUE(response.body.empty());
      response.body = *response.shared_body;
    }
    return response;
  }
  http::Response AsAdmin(std::string method, const std::string& target, std::string body = "",
                         std::vector<std::pair<std::string, std::string>> headers = {}) const {
    return Send(std::move(method), target, std::move(body), admin_, std::move(headers));
  }

  static void ExpectError(const http::Response& response, int status, int code,
                          const std::string& message_part) {
    EXPECT_EQ(response.status, status) << response.body;
    EXPECT_THAT(HeaderOf(response, "Content-Type"),
                ::testing::Optional(std::string("application/json")));
    const ::nlohmann::json body =
        ::nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(body.is_object()) << response.body;
    EXPECT_EQ(body.size(), 3U) << response.body;
    EXPECT_EQ(body.value("code", -1), code) << response.body;
    EXPECT_THAT(body.value("message", ""), ::testing::HasSubstr(message_part));
    EXPECT_EQ(body.value("details", ::nlohmann::json()), ::nlohmann::json::array());
  }

  // The Go original's README setup (docs/decisions.md D43): one server, a standard and a blackbox
  // service.
  void RegisterReadmeExample() {
    ASSERT_EQ(AsAdmin("POST", "/v1/servers",
                      R"({"name":"prometheus1.example.com","labels":{"environment":"test"}})")
                  .status,
              200);
    ASSERT_EQ(AsAdmin("POST", "/v1/namespaces", R"({"name":"default-blackbox","export":2})").status,
              200);
    http::Response example = AsAdmin("POST", "/v1/services", R"({
        "name": "example", "endpoint": "http://example.com/metrics",
        "labels": {"label1": "value1", "label2": "value2"}, "selector": "environment=test"})");
    ASSERT_EQ(example.status, 200) << example.body;
    http::Response blackbox = AsAdmin("POST", "/v1/services", R"({
        "name": "blackbox", "endpoint": "http://blackbox.example.com",
        "namespace": "default-blackbox", "selector": "environment=test"})");
    ASSERT_EQ(blackbox.status, 200) << blackbox.body;
  }

  std::unique_ptr<testing::ApiStack> stack_;
  registry::Registry* registry_ = nullptr;
  api::Handlers* handlers_ = nullptr;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<api::Dispatcher> dispatcher_;
  std::unique_ptr<RestApi> api_;
  std::string admin_;
  std::string machine_;
};

}  // namespace discovery::rest
