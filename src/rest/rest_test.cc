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
#include "compress/gzip.h"
#include "postfinance/discovery/v1/server_api.pb.h"
#include "postfinance/discovery/v1/service_api.pb.h"
#include "postfinance/discovery/v1/token_api.pb.h"
#include "registry/registry.h"
#include "rest/json.h"
#include "rest/rest_api.h"
#include "rest/url.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::rest {
namespace {

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

constexpr const char* kIssuer = "discovery-test";
constexpr const char* kSecret = "test-secret";
constexpr const char* kRfc3339 =
    R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3}|\.[0-9]{6}|\.[0-9]{9})?Z)";

std::optional<std::string> HeaderOf(const http::Response& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

// The value of `key` in the JSON object `body.<object>` as text, for splicing into an exact
// expectation (ids and timestamps are not known in advance).
std::string Field(const std::string& body, const std::string& object, const std::string& key) {
  const Json parsed = Json::parse(body);
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
    EXPECT_THAT(token, IsOk());
    return token.value_or("");
  }

  // Sends `method target` with `body`; `authorization` nullopt sends no Authorization header.
  http::Response Send(std::string method, const std::string& target, std::string body = "",
                      std::optional<std::string> authorization = std::nullopt,
                      std::vector<std::pair<std::string, std::string>> headers = {}) const {
    http::Request request;
    request.method = std::move(method);
    request.target = target;
    const size_t question = target.find('?');
    request.path = target.substr(0, question);
    request.query = question == std::string::npos ? "" : target.substr(question + 1);
    request.headers = std::move(headers);
    if (authorization.has_value()) {
      request.headers.emplace_back("Authorization", *authorization);
    }
    request.body = std::move(body);
    http::Response response = api_->Handle(request);
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
    EXPECT_THAT(HeaderOf(response, "Content-Type"), Optional(std::string("application/json")));
    const Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(body.is_object()) << response.body;
    EXPECT_EQ(body.size(), 3U) << response.body;
    EXPECT_EQ(body.value("code", -1), code) << response.body;
    EXPECT_THAT(body.value("message", ""), HasSubstr(message_part));
    EXPECT_EQ(body.value("details", Json()), Json::array());
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

TEST_F(RestTest, RegisterServerAnswersGatewayJson) {
  const http::Response response =
      AsAdmin("POST", "/v1/servers", R"({"name":"p1","labels":{"z":"1","a":"2","m":"3"}})");
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_THAT(HeaderOf(response, "Content-Type"), Optional(std::string("application/json")));
  const std::string modified = Field(response.body, "server", "modified");
  EXPECT_THAT(modified, MatchesRegex(kRfc3339));
  // Declaration order, sorted labels, int64 state as a string.
  EXPECT_EQ(response.body, R"({"server":{"name":"p1","labels":{"a":"2","m":"3","z":"1"},)"
                           R"("modified":")" +
                               modified + R"(","state":"2"}})");

  const http::Response bare = AsAdmin("POST", "/v1/servers", R"({"name":"p2"})");
  ASSERT_EQ(bare.status, 200) << bare.body;
  EXPECT_EQ(bare.body, R"({"server":{"name":"p2","labels":{},"modified":")" +
                           Field(bare.body, "server", "modified") + R"(","state":"2"}})");
}

TEST_F(RestTest, RegisterServiceAnswersEveryField) {
  ASSERT_EQ(AsAdmin("POST", "/v1/servers", R"({"name":"p1"})").status, 200);
  // lowerCamel and proto names are both accepted, unknown fields ignored.
  const http::Response response =
      Send("POST", "/v1/services",
           R"({"name":"node","endpoint":"http://a.example.com:9100/metrics","unknown":[1,{}]})",
           machine_);
  ASSERT_EQ(response.status, 200) << response.body;
  const std::string id = Field(response.body, "service", "id");
  const std::string modified = Field(response.body, "service", "modified");
  EXPECT_THAT(id, MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"));
  EXPECT_THAT(modified, MatchesRegex(kRfc3339));
  EXPECT_EQ(response.body,
            R"({"service":{"id":")" + id +
                R"(","name":"node","endpoint":"http://a.example.com:9100/metrics",)"
                R"("namespace":"default","selector":"","servers":["p1"],"labels":{},)"
                R"("description":"","modified":")" +
                modified +
                // A service without a TTL: the TTL fields (docs/decisions.md D49) print as null, as
                // grpc-gateway prints unset messages.
                R"(","ttl":null,"expires":null}})");
}

TEST_F(RestTest, RegisterServiceWithATtlAndKeepItAlive) {
  ASSERT_EQ(AsAdmin("POST", "/v1/servers", R"({"name":"p1"})").status, 200);
  const http::Response registered = Send(
      "POST", "/v1/services",
      R"({"name":"node","endpoint":"http://b.example.com:9100/metrics","ttl":"30s"})", machine_);
  ASSERT_EQ(registered.status, 200) << registered.body;
  EXPECT_EQ(Field(registered.body, "service", "ttl"), "30s");
  EXPECT_THAT(Field(registered.body, "service", "expires"), MatchesRegex(kRfc3339));
  const std::string id = Field(registered.body, "service", "id");
  const http::Response renewed =
      Send("POST", "/v1/keepalive",
           R"({"ids":[")" + id + R"(","http://gone.example.com:9100/metrics"]})", machine_);
  ASSERT_EQ(renewed.status, 200) << renewed.body;
  EXPECT_THAT(renewed.body,
              ::testing::HasSubstr(R"("notFound":["http://gone.example.com:9100/metrics"])"));
  EXPECT_THAT(renewed.body, ::testing::HasSubstr(id));
  EXPECT_EQ(Send("POST", "/v1/services",
                 R"({"name":"node","endpoint":"http://c:1/m","ttl":"soon"})", machine_)
                .status,
            400);
}

TEST_F(RestTest, NamespacesAreServed) {
  const http::Response created = AsAdmin("POST", "/v1/namespaces", R"({"name":"team","export":2})");
  ASSERT_EQ(created.status, 200) << created.body;
  EXPECT_EQ(created.body, R"({"namespace":{"name":"team","export":2,"modified":")" +
                              Field(created.body, "namespace", "modified") + R"("}})");

  const http::Response list = Send("GET", "/v1/namespaces", "", machine_);
  ASSERT_EQ(list.status, 200) << list.body;
  const Json namespaces = Json::parse(list.body).at("namespaces");
  ASSERT_EQ(namespaces.size(), 2U);
  EXPECT_EQ(namespaces[0].at("name"), "default");
  EXPECT_EQ(namespaces[0].at("export"), 1);
  EXPECT_EQ(namespaces[1].at("name"), "team");

  ExpectError(AsAdmin("POST", "/v1/namespaces", R"({"name":"no/such"})"), 400, 3,
              "validation error");
  ExpectError(Send("POST", "/v1/namespaces", R"({"name":"x"})", machine_), 403, 7,
              "not allowed to register a namespace");

  const http::Response removed = AsAdmin("DELETE", "/v1/namespaces/team");
  EXPECT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(removed.body, "{}");
  ExpectError(AsAdmin("DELETE", "/v1/namespaces/team"), 404, 5, "namespace team not found");
}

TEST_F(RestTest, ServersAreListedAndRemoved) {
  ASSERT_EQ(AsAdmin("POST", "/v1/servers", R"({"name":"p1","labels":{"zone":"a"}})").status, 200);
  const http::Response list = Send("GET", "/v1/servers", "", machine_);
  ASSERT_EQ(list.status, 200) << list.body;
  const Json servers = Json::parse(list.body).at("servers");
  ASSERT_EQ(servers.size(), 1U);
  EXPECT_EQ(servers[0].at("state"), "2");
  EXPECT_EQ(servers[0].at("labels"), (Json{{"zone", "a"}}));

  ExpectError(Send("DELETE", "/v1/servers/p1", "", machine_), 403, 7, "unregister a server");
  const http::Response removed = AsAdmin("DELETE", "/v1/servers/p1");
  EXPECT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(removed.body, "{}");
  ExpectError(AsAdmin("DELETE", "/v1/servers/p1"), 404, 5, "p1");
  EXPECT_EQ(AsAdmin("GET", "/v1/servers").body, R"({"servers":[]})");
}

TEST_F(RestTest, ServicesAreListedAndRemovedByIdOrEndpoint) {
  ASSERT_EQ(AsAdmin("POST", "/v1/servers", R"({"name":"p1"})").status, 200);
  ASSERT_EQ(AsAdmin("POST", "/v1/namespaces", R"({"name":"team","export":1})").status, 200);
  const http::Response first =
      AsAdmin("POST", "/v1/services", R"({"name":"a","endpoint":"http://a.example.com/metrics"})");
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(AsAdmin("POST", "/v1/services",
                    R"({"name":"b","endpoint":"http://b.example.com/m","namespace":"team"})")
                .status,
            200);

  Json all = Json::parse(Send("GET", "/v1/services", "", machine_).body).at("services");
  EXPECT_EQ(all.size(), 2U);
  const http::Response team = Send("GET", "/v1/services?namespace=team&unknown=1", "", machine_);
  ASSERT_EQ(team.status, 200) << team.body;
  const Json services = Json::parse(team.body).at("services");
  ASSERT_EQ(services.size(), 1U);
  EXPECT_EQ(services[0].at("name"), "b");
  ExpectError(Send("GET", "/v1/services?namespace=team&namespace=default", "", machine_), 400, 3,
              R"(too many values for field "namespace": team, default)");

  // By id; a `namespace` query parameter cannot override the path parameter.
  const std::string id = Field(first.body, "service", "id");
  ExpectError(Send("DELETE", "/v1/services/team?id=" + id, "", machine_), 403, 7,
              "machine token ci (default) is not allowed to change service in team namespace");
  const http::Response by_id =
      Send("DELETE", "/v1/services/default?namespace=team&id=" + id, "", machine_);
  EXPECT_EQ(by_id.status, 200) << by_id.body;
  EXPECT_EQ(by_id.body, "{}");
  // By URL-encoded endpoint.
  const http::Response by_endpoint =
      AsAdmin("DELETE", "/v1/services/team?id=http%3A%2F%2Fb.example.com%2Fm");
  EXPECT_EQ(by_endpoint.status, 200) << by_endpoint.body;
  ExpectError(AsAdmin("DELETE", "/v1/services/team?id=http%3A%2F%2Fb.example.com%2Fm"), 404, 5,
              "not found");
  EXPECT_EQ(AsAdmin("GET", "/v1/services").body, R"({"services":[],"invalidServices":[]})");
}

TEST_F(RestTest, ServiceErrorsMapToGatewayStatuses) {
  ASSERT_EQ(AsAdmin("POST", "/v1/servers", R"({"name":"p1"})").status, 200);
  ExpectError(AsAdmin("POST", "/v1/services",
                      R"({"name":"a","endpoint":"http://a/m",)"
                      R"("namespace":"nowhere"})"),
              404, 5, "namespace nowhere not found");
  ExpectError(AsAdmin("POST", "/v1/services", R"({"name":"bad name","endpoint":"http://a/m"})"),
              400, 3, "");
  ExpectError(AsAdmin("POST", "/v1/services",
                      R"({"name":"a","endpoint":"http://a/m","selector":"zone=none"})"),
              404, 5, "no server found for selector 'zone=none'");
  ExpectError(Send("POST", "/v1/services",
                   R"({"name":"a","endpoint":"http://a/m","namespace":"other"})", machine_),
              403, 7, "not allowed to change service in other namespace");
}

TEST_F(RestTest, MalformedBodiesAreInvalidArgument) {
  ExpectError(AsAdmin("POST", "/v1/servers", R"({"name":"p1")"), 400, 3, "invalid request body");
  ExpectError(AsAdmin("POST", "/v1/servers", R"({"name":5})"), 400, 3,
              "invalid request body: (name): invalid value 5");
  ExpectError(AsAdmin("POST", "/v1/servers", R"({"labels":{"a":1}})"), 400, 3, "labels");
  ExpectError(AsAdmin("POST", "/v1/servers", "[]"), 400, 3, "invalid request body");
  ExpectError(AsAdmin("POST", "/v1/servers", "{\"name\":\"a\xff\"}"), 400, 3, "UTF-8");
  ExpectError(AsAdmin("POST", "/v1/namespaces", R"({"name":"a","export":1.5})"), 400, 3, "export");
  // An empty body is the empty request (grpc-gateway treats io.EOF so), which then fails
  // validation.
  ExpectError(AsAdmin("POST", "/v1/servers", ""), 400, 3, "name cannot be empty");
  // A body on a GET is ignored.
  EXPECT_EQ(AsAdmin("GET", "/v1/servers", "{garbage").status, 200);
}

// protobuf 3.21's parser alone accepts all of these; protojson, which the original used,
// refuses them, and a deep nesting must not reach a recursive parser.
TEST(RestJsonTest, BodiesAreCheckedStrictly) {
  using std::string_literals::operator""s;  // "\0"s keeps its NUL
  pb::RegisterServerRequest server;
  pb::CreateRequest token;
  const auto server_error = [&server](const std::string& body) {
    return JsonToMessage(body, &server);
  };
  const auto token_error = [&token](const std::string& body) {
    return JsonToMessage(body, &token);
  };
  const auto invalid = [](const std::string& message) {
    return StatusIs(absl::StatusCode::kInvalidArgument, "invalid request body: " + message);
  };

  EXPECT_THAT(server_error(std::string(100000, '[')), invalid("JSON nested deeper than 32 levels"));
  EXPECT_THAT(server_error(R"({"x":)" + std::string(33, '[') + std::string(33, ']') + "}"),
              invalid("JSON nested deeper than 32 levels"));
  EXPECT_THAT(server_error(R"({"x":)" + std::string(31, '[') + std::string(31, ']') + "}"), IsOk());
  EXPECT_THAT(server_error(R"({"name":"a","name":"b"})"), invalid(R"(duplicate field "name")"));
  EXPECT_THAT(server_error(R"({"labels":{"k":"1","k":"2"}})"), invalid(R"(duplicate field "k")"));
  EXPECT_THAT(server_error(R"({"labels":{"a":"1"},"labels":{"b":"2"}})"),
              invalid(R"(duplicate field "labels")"));
  EXPECT_THAT(server_error("{\"name\":\"a\0\"}"s),
              invalid(R"(NUL byte at offset 10 (JSON needs \u0000 in a string))"));
  EXPECT_THAT(server_error("{}\0{}"s),
              invalid(R"(NUL byte at offset 2 (JSON needs \u0000 in a string))"));
  EXPECT_THAT(server_error("{'name':'a'}"),
              invalid("parse error at line 1, column 2: syntax error while parsing object key - "
                      "invalid literal"));
  EXPECT_THAT(server_error(R"({"name":"a",})"),
              invalid("parse error at line 1, column 13: syntax error while parsing object key - "
                      "unexpected '}'; expected string literal"));
  EXPECT_THAT(server_error("{\"name\":\"\x01\"}"),
              invalid("parse error at line 1, column 10: syntax error while parsing value - "
                      "invalid string: control character U+0001 (SOH) must be escaped to "
                      "\\u0001"));
  EXPECT_THAT(server_error("[]"), invalid("want a JSON object, got an array"));
  EXPECT_THAT(server_error(R"({"labels":["a"]})"),
              invalid(R"(field "labels": want an object, got an array)"));
  EXPECT_THAT(server_error(R"({"labels":{"a":{"b":"c"}}})"),
              invalid(R"(field "labels.a": want a single value, got an object)"));
  EXPECT_THAT(server_error(R"({"name":["a"]})"),
              invalid(R"(field "name": want a single value, got an array)"));
  EXPECT_THAT(token_error(R"({"namespaces":"default"})"),
              invalid(R"(field "namespaces": want an array, got a string)"));
  EXPECT_THAT(token_error(R"({"namespaces":[["default"]]})"),
              invalid(R"(field "namespaces[0]": want a single value, got an array)"));
  // The token in a parser message may be most of the body; the message stays short.
  const absl::Status long_number = server_error(R"({"x":)" + std::string(100000, '9') + "}");
  EXPECT_THAT(long_number, StatusIs(absl::StatusCode::kInvalidArgument,
                                    StartsWith("invalid request body: number overflow parsing")));
  EXPECT_LE(long_number.message().size(), 240U);

  // Still accepted: null for any field, unknown fields of any shape, both names of a field.
  EXPECT_THAT(token_error(R"({"id":null,"namespaces":null,"x":[[{"y":[]}]]})"), IsOk());
  EXPECT_THAT(token_error(R"({"id":"a","namespaces":["b","c"],"expires":"1h"})"), IsOk());
  EXPECT_EQ(token.namespaces_size(), 2);
}

TEST(RestJsonTest, TransportErrorsHaveTheGatewayShape) {
  const http::Response too_large = TransportErrorResponse(413, "request body too large");
  EXPECT_EQ(too_large.status, 413);
  EXPECT_EQ(too_large.body, R"({"code":8,"message":"request body too large","details":[]})");
  EXPECT_THAT(HeaderOf(too_large, "Content-Type"), Optional(std::string("application/json")));
  EXPECT_EQ(TransportErrorResponse(431, "x").body, R"({"code":8,"message":"x","details":[]})");
  EXPECT_EQ(TransportErrorResponse(429, "x").body, R"({"code":8,"message":"x","details":[]})");
  EXPECT_EQ(TransportErrorResponse(503, "x").body, R"({"code":14,"message":"x","details":[]})");
  const http::Response malformed = TransportErrorResponse(400, "malformed HTTP request: bad field");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.body,
            R"({"code":3,"message":"malformed HTTP request: bad field","details":[]})");
  EXPECT_EQ(TransportErrorResponse(418, "x").status, 418);
  EXPECT_EQ(TransportErrorResponse(418, "x").body, R"({"code":2,"message":"x","details":[]})");
}

TEST_F(RestTest, AuthenticationFailuresAre401WithChallenge) {
  const http::Response missing = Send("GET", "/v1/servers");
  ExpectError(missing, 401, 16, "failed to get authentication token");
  EXPECT_THAT(HeaderOf(missing, "WWW-Authenticate"),
              Optional(StartsWith(R"(Bearer error="invalid_token", error_description="failed)")));

  const http::Response garbage = Send("GET", "/v1/servers", "", "Bearer not-a-jwt");
  ExpectError(garbage, 401, 16, "failed to parse machine token");
  EXPECT_TRUE(HeaderOf(garbage, "WWW-Authenticate").has_value());

  const std::string foreign = "Bearer " + [] {
    absl::StatusOr<std::string> token = auth::CreateMachineToken(
        {.issuer = kIssuer, .secret = "other-secret"}, "x", {}, absl::ZeroDuration(), absl::Now());
    return token.value_or("");
  }();
  ExpectError(Send("GET", "/v1/sd/p1/default", "", foreign), 401, 16, "machine token is invalid");

  // The header name is case-insensitive (the README's curl sends `authorization`).
  EXPECT_EQ(Send("GET", "/v1/servers", "", std::nullopt, {{"authorization", admin_}}).status, 200);
}

TEST_F(RestTest, TokensAreCreatedAndInspected) {
  const http::Response created =
      AsAdmin("POST", "/v1/tokens", R"({"id":"deploy","namespaces":["default","team"]})");
  ASSERT_EQ(created.status, 200) << created.body;
  const Json answer = Json::parse(created.body);
  ASSERT_TRUE(answer.at("token").is_string());
  const std::string jwt = answer.at("token").get<std::string>();

  const http::Response info = Send("GET", "/v1/tokens/" + jwt, "", machine_);
  ASSERT_EQ(info.status, 200) << info.body;
  EXPECT_EQ(info.body, R"({"tokeninfo":{"id":"deploy","namespaces":["default","team"],)"
                       R"("expiresAt":"0001-01-01T00:00:00Z"}})");

  const http::Response expiring = AsAdmin("POST", "/v1/tokens", R"({"id":"short","expires":"1h"})");
  ASSERT_EQ(expiring.status, 200) << expiring.body;
  const http::Response short_info =
      Send("GET", "/v1/tokens/" + Json::parse(expiring.body).at("token").get<std::string>(), "",
           machine_);
  EXPECT_THAT(Json::parse(short_info.body).at("tokeninfo").at("expiresAt").get<std::string>(),
              MatchesRegex(kRfc3339));

  ExpectError(Send("POST", "/v1/tokens", R"({"id":"x"})", machine_), 403, 7, "create");
  ExpectError(AsAdmin("POST", "/v1/tokens", R"({"id":"x","expires":"soon"})"), 400, 3,
              "invalid expiry duration soon");
  ExpectError(AsAdmin("GET", "/v1/tokens/abc"), 400, 3, "is not valid");
}

TEST_F(RestTest, HttpSdServesTheReadmeExamples) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  const http::Response standard =
      Send("GET", "/v1/sd/prometheus1.example.com/default", "", machine_);
  ASSERT_EQ(standard.status, 200) << standard.body;
  EXPECT_THAT(HeaderOf(standard, "Content-Type"), Optional(std::string("application/json")));
  EXPECT_THAT(HeaderOf(standard, "Cache-Control"), Optional(std::string("no-cache")));
  EXPECT_THAT(HeaderOf(standard, "ETag"), Optional(StartsWith("\"")));
  EXPECT_EQ(Json::parse(standard.body), Json::parse(R"([
    {
      "targets": [
        "example.com"
      ],
      "labels": {
        "__metrics_path__": "/metrics",
        "__scheme__": "http",
        "instance": "example.com",
        "job": "example",
        "label1": "value1",
        "label2": "value2"
      }
    }
  ])"));
  EXPECT_THAT(standard.body, StartsWith(R"([{"targets":["example.com"],"labels":{)"));

  const http::Response blackbox =
      Send("GET", "/v1/sd/prometheus1.example.com/default-blackbox?config=blackbox", "", machine_);
  ASSERT_EQ(blackbox.status, 200) << blackbox.body;
  EXPECT_EQ(Json::parse(blackbox.body), Json::parse(R"([
    {
      "targets": [
        "http://blackbox.example.com"
      ],
      "labels": {}
    }
  ])"));
  EXPECT_EQ(blackbox.body, R"([{"targets":["http://blackbox.example.com"],"labels":{}}])");
}

TEST_F(RestTest, HttpSdConfigAndItsExportConfigAlias) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  const std::string path = "/v1/sd/prometheus1.example.com/default";
  const std::string standard = Send("GET", path, "", machine_).body;
  const std::string blackbox = R"([{"targets":["http://example.com/metrics"],)"
                               R"("labels":{"label1":"value1","label2":"value2"}}])";
  EXPECT_EQ(Send("GET", path + "?config=blackbox", "", machine_).body, blackbox);
  // The README's Prometheus example.
  EXPECT_EQ(Send("GET", path + "?export-config=standard", "", machine_).body, standard);
  EXPECT_EQ(Send("GET", path + "?export-config=blackbox", "", machine_).body, blackbox);
  EXPECT_EQ(Send("GET", path + "?config=standard&export-config=blackbox", "", machine_).body,
            standard);
  ExpectError(Send("GET", path + "?config=blackbox&config=standard", "", machine_), 400, 3,
              R"(too many values for field "config": blackbox, standard)");
  ExpectError(Send("GET", path + "?export-config=a&export-config=b", "", machine_), 400, 3,
              R"(too many values for field "export-config")");
  ExpectError(Send("GET", path + "?config=disabled", "", machine_), 400, 3,
              "invalid exporter config: 'disabled'");
  // Without a parameter the namespace's own export configuration applies.
  EXPECT_EQ(Send("GET", "/v1/sd/prometheus1.example.com/default-blackbox", "", machine_).body,
            R"([{"targets":["http://blackbox.example.com"],"labels":{}}])");
}

TEST_F(RestTest, HttpSdErrors) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  ExpectError(Send("GET", "/v1/sd/prometheus1.example.com/default"), 401, 16, "");
  // An unknown namespace or server is an empty answer: a 404 would make Prometheus keep the
  // old targets of an unregistered server forever.
  for (const std::string path :
       {"/v1/sd/prometheus1.example.com/nowhere", "/v1/sd/prometheus9.example.com/default"}) {
    const http::Response empty = Send("GET", path, "", machine_);
    EXPECT_EQ(empty.status, 200) << path;
    EXPECT_EQ(empty.body, "[]") << path;
  }
  ExpectError(Send("GET", "/v1/sd/bad%20name/default", "", machine_), 400, 3, "");
  ExpectError(Send("POST", "/v1/sd/prometheus1.example.com/default", "", machine_), 405, 12,
              "Method Not Allowed");
}

TEST_F(RestTest, HttpSdIsGzippedForClientsThatAcceptItWithItsOwnETag) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  const std::string path = "/v1/sd/prometheus1.example.com/default";
  const http::Response identity = Send("GET", path, "", machine_);
  const http::Response gzipped =
      Send("GET", path, "", machine_, {{"Accept-Encoding", "deflate, gzip;q=0.9"}});
  ASSERT_EQ(identity.status, 200);
  ASSERT_EQ(gzipped.status, 200);
  EXPECT_THAT(HeaderOf(identity, "Content-Encoding"), std::nullopt);
  EXPECT_THAT(HeaderOf(gzipped, "Content-Encoding"), Optional(std::string("gzip")));
  for (const http::Response* response : {&identity, &gzipped}) {
    EXPECT_THAT(HeaderOf(*response, "Vary"), Optional(std::string("Accept-Encoding")));
  }
  EXPECT_THAT(compress::Gunzip(gzipped.body), IsOkAndHolds(identity.body));
  const std::string identity_etag = HeaderOf(identity, "ETag").value_or("");
  const std::string gzip_etag = HeaderOf(gzipped, "ETag").value_or("");
  ASSERT_FALSE(identity_etag.empty());
  EXPECT_NE(gzip_etag, identity_etag);
  // A client holding either tag gets a 304, whichever encoding it asks for now.
  for (const std::string& held : {identity_etag, gzip_etag}) {
    EXPECT_EQ(Send("GET", path, "", machine_, {{"If-None-Match", held}}).status, 304) << held;
    const http::Response again =
        Send("GET", path, "", machine_, {{"Accept-Encoding", "gzip"}, {"If-None-Match", held}});
    EXPECT_EQ(again.status, 304) << held;
    EXPECT_THAT(HeaderOf(again, "ETag"), Optional(gzip_etag));
  }
  // gzip;q=0 is a refusal.
  EXPECT_THAT(HeaderOf(Send("GET", path, "", machine_, {{"Accept-Encoding", "gzip;q=0"}}),
                       "Content-Encoding"),
              std::nullopt);
}

// Every answer of one body version sends the same buffer: no copy per request.
TEST_F(RestTest, HttpSdAnswersShareTheCachedBuffer) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  const auto send = [this](std::vector<std::pair<std::string, std::string>> headers) {
    http::Request request;
    request.method = "GET";
    request.path = request.target = "/v1/sd/prometheus1.example.com/default";
    request.headers = std::move(headers);
    request.headers.emplace_back("Authorization", machine_);
    return api_->Handle(request);
  };
  for (const auto& headers :
       {std::vector<std::pair<std::string, std::string>>{}, {{"Accept-Encoding", "gzip"}}}) {
    const http::Response first = send(headers);
    const http::Response second = send(headers);
    ASSERT_NE(first.shared_body, nullptr);
    EXPECT_EQ(first.shared_body.get(), second.shared_body.get());
    EXPECT_TRUE(first.body.empty());
  }
}

// The I/O thread's path answers a repeated refresh exactly as Handle does, and passes on
// (nullopt) whatever would need a token verification, a rendering or a compression.
TEST_F(RestTest, HttpSdFromMemoryAnswersOnlyWhatIsCached) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  const auto request = [](std::string method, std::string target, std::string authorization,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request built;
    built.method = std::move(method);
    built.target = target;
    const size_t question = target.find('?');
    built.path = target.substr(0, question);
    built.query = question == std::string::npos ? "" : target.substr(question + 1);
    built.headers = std::move(headers);
    built.headers.emplace_back("Authorization", std::move(authorization));
    return built;
  };
  const std::string path = "/v1/sd/prometheus1.example.com/default";
  const std::string reader = "Bearer " + Token("prometheus", {}, /*admin=*/false);
  const http::Request identity = request("GET", path, reader);
  const http::Request gzip = request("GET", path, reader, {{"Accept-Encoding", "gzip"}});

  // The token was never verified.
  EXPECT_EQ(api_->HandleFromMemory(identity), std::nullopt);
  EXPECT_EQ(authenticator_->cached_tokens(), 1);  // admin_'s, from the registrations
  const http::Response full = api_->Handle(identity);
  ASSERT_EQ(full.status, 200);
  std::optional<http::Response> quick = api_->HandleFromMemory(identity);
  ASSERT_TRUE(quick.has_value());
  EXPECT_EQ(quick->status, full.status);
  EXPECT_EQ(quick->headers, full.headers);
  EXPECT_EQ(quick->shared_body.get(), full.shared_body.get());

  // gzip: not compressed yet, then the very buffer Handle made.
  EXPECT_EQ(api_->HandleFromMemory(gzip), std::nullopt);
  const http::Response full_gzip = api_->Handle(gzip);
  ASSERT_EQ(full_gzip.status, 200);
  quick = api_->HandleFromMemory(gzip);
  ASSERT_TRUE(quick.has_value());
  EXPECT_EQ(quick->headers, full_gzip.headers);
  EXPECT_EQ(quick->shared_body.get(), full_gzip.shared_body.get());

  // 304 for a held tag.
  const std::string etag = HeaderOf(full, "ETag").value_or("");
  quick = api_->HandleFromMemory(request("GET", path, reader, {{"If-None-Match", etag}}));
  ASSERT_TRUE(quick.has_value());
  EXPECT_EQ(quick->status, 304);
  EXPECT_EQ(quick->shared_body, nullptr);

  // Other tokens, calls, and malformed requests are Handle's.
  EXPECT_EQ(api_->HandleFromMemory(request("GET", path, "Bearer " + Token("x", {}, false))),
            std::nullopt);
  EXPECT_EQ(api_->HandleFromMemory(request("GET", path, "")), std::nullopt);
  EXPECT_EQ(api_->HandleFromMemory(request("GET", path, reader + "x")), std::nullopt);
  EXPECT_EQ(api_->HandleFromMemory(request("POST", path, reader)), std::nullopt);
  EXPECT_EQ(api_->HandleFromMemory(request("GET", "/v1/servers", reader)), std::nullopt);
  EXPECT_EQ(api_->HandleFromMemory(request("GET", path + "?config=a&config=b", reader)),
            std::nullopt);
  EXPECT_EQ(api_->HandleFromMemory(request("GET", path + "?%zz", reader)), std::nullopt);

  // A change makes the body stale: passed on until Handle has rendered the new one.
  ASSERT_EQ(AsAdmin("POST", "/v1/services",
                    R"({"name":"more","endpoint":"http://more.example.com/metrics",
                        "selector":"environment=test"})")
                .status,
            200);
  EXPECT_EQ(api_->HandleFromMemory(identity), std::nullopt);
  const http::Response changed = api_->Handle(identity);
  ASSERT_EQ(changed.status, 200);
  EXPECT_THAT(*changed.shared_body, HasSubstr("more.example.com"));
  quick = api_->HandleFromMemory(identity);
  ASSERT_TRUE(quick.has_value());
  EXPECT_EQ(quick->shared_body.get(), changed.shared_body.get());
}

TEST_F(RestTest, HttpSdAnswers304ForAMatchingETag) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  const std::string path = "/v1/sd/prometheus1.example.com/default";
  const http::Response first = Send("GET", path, "", machine_);
  ASSERT_EQ(first.status, 200);
  const std::string etag = HeaderOf(first, "ETag").value_or("");
  ASSERT_FALSE(etag.empty());

  for (const std::string& condition :
       {etag, "W/" + etag, "\"other\", " + etag, "\"a,b\" ,W/" + etag + " ", std::string("*")}) {
    const http::Response again = Send("GET", path, "", machine_, {{"If-None-Match", condition}});
    EXPECT_EQ(again.status, 304) << condition;
    EXPECT_EQ(again.body, "") << condition;
    EXPECT_THAT(HeaderOf(again, "ETag"), Optional(etag));
    EXPECT_THAT(HeaderOf(again, "Cache-Control"), Optional(std::string("no-cache")));
  }
  // Several header lines count together; the name is case-insensitive.
  EXPECT_EQ(
      Send("GET", path, "", machine_, {{"If-None-Match", "\"other\""}, {"if-none-match", etag}})
          .status,
      304);
  for (const std::string& condition :
       {std::string("\"other\""), std::string(""), std::string(","), std::string("W/"),
        etag.substr(0, etag.size() - 1), etag.substr(1)}) {
    const http::Response miss = Send("GET", path, "", machine_, {{"If-None-Match", condition}});
    EXPECT_EQ(miss.status, 200) << condition;
    EXPECT_EQ(miss.body, first.body);
  }
  // Credentials are checked before the ETag.
  EXPECT_EQ(Send("GET", path, "", std::nullopt, {{"If-None-Match", etag}}).status, 401);
  // A change gives a new ETag.
  ASSERT_EQ(AsAdmin("POST", "/v1/services",
                    R"({"name":"other","endpoint":"http://other.example.com/metrics"})")
                .status,
            200);
  const http::Response changed = Send("GET", path, "", machine_, {{"If-None-Match", etag}});
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(HeaderOf(changed, "ETag"), etag);
}

TEST_F(RestTest, UnknownRoutesAre404AndOtherMethods405) {
  for (const std::string& target :
       {std::string("/"), std::string("/v1"), std::string("/v1/"), std::string("/v1/server"),
        std::string("/v1/servers/"), std::string("/v1/servers/a/b"), std::string("/v1/sd/a"),
        std::string("/v1/sd//default"), std::string("/v2/servers"), std::string("/metrics"),
        std::string("/v1//servers")}) {
    const http::Response response = AsAdmin("GET", target);
    EXPECT_EQ(response.status, 404) << target;
    EXPECT_EQ(response.body, R"({"code":5,"message":"Not Found","details":[]})") << target;
  }
  const http::Response put = AsAdmin("PUT", "/v1/servers");
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(put.body, R"({"code":12,"message":"Method Not Allowed","details":[]})");
  EXPECT_THAT(HeaderOf(put, "Allow"), Optional(std::string("POST, GET")));
  EXPECT_THAT(HeaderOf(AsAdmin("GET", "/v1/servers/p1"), "Allow"), Optional(std::string("DELETE")));
  EXPECT_THAT(HeaderOf(AsAdmin("DELETE", "/v1/tokens/x"), "Allow"), Optional(std::string("GET")));
  EXPECT_EQ(AsAdmin("get", "/v1/servers").status, 405);
  EXPECT_EQ(AsAdmin("HEAD", "/v1/servers").status, 405);
  // Not a path at all (e.g. an OPTIONS * request).
  ExpectError(AsAdmin("OPTIONS", "*"), 400, 3, "invalid request path");
}

TEST_F(RestTest, PathParametersArePercentDecodedPerSegment) {
  ASSERT_EQ(AsAdmin("POST", "/v1/servers", R"({"name":"p1"})").status, 200);
  // "%70%31" is "p1"; literal segments match decoded too.
  EXPECT_EQ(AsAdmin("DELETE", "/v1/%73ervers/%70%31").body, "{}");
  // An encoded '/' stays inside the parameter (and fails validation as a name).
  ExpectError(AsAdmin("DELETE", "/v1/namespaces/a%2Fb"), 400, 3, "validation error");
  ExpectError(AsAdmin("DELETE", "/v1/servers/%zz"), 400, 3, R"(invalid URL escape "%zz")");
  ExpectError(AsAdmin("GET", "/v1/services?namespace=%"), 400, 3, R"(invalid URL escape "%")");
  ExpectError(AsAdmin("GET", "/v1/services?namespace=a;b"), 400, 3, "invalid semicolon");
}

TEST(RestRouteTest, NamesThePatternForMetrics) {
  EXPECT_EQ(RestApi::Route("/v1/servers"), "/v1/servers");
  EXPECT_EQ(RestApi::Route("/v1/servers/p1"), "/v1/servers/{name}");
  EXPECT_EQ(RestApi::Route("/v1/namespaces/x"), "/v1/namespaces/{name}");
  EXPECT_EQ(RestApi::Route("/v1/services/default"), "/v1/services/{namespace}");
  EXPECT_EQ(RestApi::Route("/v1/tokens"), "/v1/tokens");
  EXPECT_EQ(RestApi::Route("/v1/tokens/abc"), "/v1/tokens/{token}");
  EXPECT_EQ(RestApi::Route("/v1/sd/a%2Fb/c"), "/v1/sd/{server}/{namespace}");
  EXPECT_EQ(RestApi::Route("/v1/sd/a/b/c"), std::nullopt);
  EXPECT_EQ(RestApi::Route("/v1/servers/%zz"), std::nullopt);
  EXPECT_EQ(RestApi::Route(""), std::nullopt);
}

TEST(RestJsonTest, UnsetMessagesAreNullAndMapsSorted) {
  postfinance::discovery::v1::RegisterServiceResponse empty;
  EXPECT_THAT(MessageToJson(empty), IsOkAndHolds(std::string(R"({"service":null})")));
  postfinance::discovery::v1::RegisterServiceResponse response;
  auto& labels = *response.mutable_service()->mutable_labels();
  for (const char* key : {"b", "a", "\xc3\xa9", "B", "aa", "<&>"}) {
    labels[key] = "v";
  }
  response.mutable_service()->add_servers("s");
  EXPECT_THAT(MessageToJson(response),
              IsOkAndHolds(std::string(
                  R"({"service":{"id":"","name":"","endpoint":"","namespace":"","selector":"",)"
                  R"("servers":["s"],"labels":{"<&>":"v","B":"v","a":"v","aa":"v","b":"v",)"
                  "\"\xc3\xa9\":\"v\"},\"description\":\"\",\"modified\":null,\"ttl\":null,"
                  "\"expires\":null}}")));
}

TEST(RestJsonTest, HttpStatusFollowsGrpcGateway) {
  const std::vector<std::pair<absl::StatusCode, int>> table = {
      {absl::StatusCode::kOk, 200},
      {absl::StatusCode::kCancelled, 499},
      {absl::StatusCode::kUnknown, 500},
      {absl::StatusCode::kInvalidArgument, 400},
      {absl::StatusCode::kDeadlineExceeded, 504},
      {absl::StatusCode::kNotFound, 404},
      {absl::StatusCode::kAlreadyExists, 409},
      {absl::StatusCode::kPermissionDenied, 403},
      {absl::StatusCode::kResourceExhausted, 429},
      {absl::StatusCode::kFailedPrecondition, 400},
      {absl::StatusCode::kAborted, 409},
      {absl::StatusCode::kOutOfRange, 400},
      {absl::StatusCode::kUnimplemented, 501},
      {absl::StatusCode::kInternal, 500},
      {absl::StatusCode::kUnavailable, 503},
      {absl::StatusCode::kDataLoss, 500},
      {absl::StatusCode::kUnauthenticated, 401},
      {static_cast<absl::StatusCode>(42), 500},
  };
  for (const auto& [code, status] : table) {
    EXPECT_EQ(HttpStatusFromCode(code), status) << static_cast<int>(code);
  }
}

TEST(RestJsonTest, ErrorBodiesAndChallengesAreSafe) {
  const http::Response response =
      ErrorResponse(absl::UnauthenticatedError("bad \"token\"\r\nX-Injected: 1 \xff"));
  EXPECT_EQ(response.status, 401);
  EXPECT_THAT(HeaderOf(response, "WWW-Authenticate"),
              Optional(std::string(R"(Bearer error="invalid_token", )"
                                   R"(error_description="bad \"token\"??X-Injected: 1 ?")")));
  EXPECT_EQ(response.body,
            "{\"code\":16,\"message\":\"bad \\\"token\\\"\\r\\nX-Injected: 1 \xef\xbf\xbd\","
            "\"details\":[]}");
  EXPECT_FALSE(HeaderOf(ErrorResponse(absl::NotFoundError("x")), "WWW-Authenticate"));
}

TEST(RestUrlTest, QueryParsingFollowsGo) {
  absl::StatusOr<QueryParams> query = ParseQuery("a=1&&b=x+y%2B&a=2&c&=e&d=");
  ASSERT_THAT(query, IsOk());
  EXPECT_THAT(*query, ElementsAre(std::pair<std::string, std::string>("a", "1"),
                                  std::pair<std::string, std::string>("b", "x y+"),
                                  std::pair<std::string, std::string>("a", "2"),
                                  std::pair<std::string, std::string>("c", ""),
                                  std::pair<std::string, std::string>("", "e"),
                                  std::pair<std::string, std::string>("d", "")));
  EXPECT_THAT(ParseQuery("a=%4"), StatusIs(absl::StatusCode::kInvalidArgument,
                                           std::string(R"(invalid URL escape "%4")")));
  EXPECT_THAT(ParseQuery("a=%\x01z"), StatusIs(absl::StatusCode::kInvalidArgument,
                                               std::string(R"(invalid URL escape "%\x01z")")));
  EXPECT_THAT(PercentDecode("a+b%20", /*plus_is_space=*/false), IsOkAndHolds(std::string("a+b ")));
  EXPECT_THAT(PathSegments("/v1/a%2Fb/"), IsOkAndHolds(ElementsAre("v1", "a/b", "")));
}

// GET /v1/whoami: the identity and what the authorization rules let it change.
TEST_F(RestTest, WhoAmIAnswersWhatTheTokenMayChange) {
  const http::Response admin = AsAdmin("GET", "/v1/whoami");
  ASSERT_EQ(admin.status, 200) << admin.body;
  EXPECT_EQ(Json::parse(admin.body),
            Json::parse(R"({"kind":"machine","name":"root","admin":true,"allNamespaces":true,)"
                        R"("namespaces":[],"roles":[]})"));
  const http::Response machine = Send("GET", "/v1/whoami", "", machine_);
  ASSERT_EQ(machine.status, 200) << machine.body;
  EXPECT_EQ(Json::parse(machine.body),
            Json::parse(R"({"kind":"machine","name":"ci","admin":false,"allNamespaces":false,)"
                        R"("namespaces":["default"],"roles":[]})"));
  ExpectError(Send("GET", "/v1/whoami"), 401, 16, "");
  const http::Response post = AsAdmin("POST", "/v1/whoami");
  EXPECT_EQ(post.status, 405);
  EXPECT_THAT(HeaderOf(post, "Allow"), Optional(std::string("GET")));
}

// GET /v1/services with paging or filter parameters answers one page of the filtered rows
// and their number; without them it is ListService as before.
TEST_F(RestTest, ServicesArePagedAndFilteredOnRequest) {
  ASSERT_EQ(AsAdmin("POST", "/v1/servers", R"({"name":"p1"})").status, 200);
  for (int i = 0; i < 25; ++i) {
    const std::string body =
        fmt::format(R"({{"name":"{}","endpoint":"http://h{:02}.example.com:9100/metrics",)"
                    R"("labels":{{"env":"{}"}}}})",
                    i % 2 == 0 ? "node" : "app", i, i % 5 == 0 ? "prod" : "test");
    ASSERT_EQ(AsAdmin("POST", "/v1/services", body).status, 200);
  }
  const http::Response all = AsAdmin("GET", "/v1/services");
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(HeaderOf(all, "X-Total-Count"), std::nullopt);
  EXPECT_EQ(Json::parse(all.body).at("services").size(), 25U);

  const http::Response page = AsAdmin("GET", "/v1/services?offset=10&limit=10");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_THAT(HeaderOf(page, "X-Total-Count"), Optional(std::string("25")));
  const Json rows = Json::parse(page.body).at("services");
  ASSERT_EQ(rows.size(), 10U);
  // Sorted by endpoint: the 11th to 20th.
  EXPECT_EQ(rows.front().at("endpoint"), "http://h10.example.com:9100/metrics");
  EXPECT_EQ(rows.back().at("endpoint"), "http://h19.example.com:9100/metrics");
  const http::Response tail = AsAdmin("GET", "/v1/services?offset=20&limit=10");
  EXPECT_EQ(Json::parse(tail.body).at("services").size(), 5U);
  const http::Response beyond = AsAdmin("GET", "/v1/services?offset=100");
  EXPECT_EQ(Json::parse(beyond.body).at("services").size(), 0U);
  EXPECT_THAT(HeaderOf(beyond, "X-Total-Count"), Optional(std::string("25")));

  // Filters: the selector grammar of the API, regular expressions for name and endpoint.
  const http::Response prod =
      AsAdmin("GET", "/v1/services?filterSelector=env%3Dprod&filterName=%5Enode%24&limit=1");
  ASSERT_EQ(prod.status, 200) << prod.body;
  // 0, 10, 20 are "node" with env=prod.
  EXPECT_THAT(HeaderOf(prod, "X-Total-Count"), Optional(std::string("3")));
  EXPECT_EQ(Json::parse(prod.body).at("services").size(), 1U);
  const http::Response server = AsAdmin("GET", "/v1/services?filter_server=%5Ep1%24&limit=1");
  EXPECT_THAT(HeaderOf(server, "X-Total-Count"), Optional(std::string("25")));
  const http::Response none = AsAdmin("GET", "/v1/services?filterServer=nowhere");
  EXPECT_THAT(HeaderOf(none, "X-Total-Count"), Optional(std::string("0")));

  // Client mistakes are 400 with what is wrong.
  ExpectError(AsAdmin("GET", "/v1/services?limit=0"), 400, 3, "invalid limit 0: want 1 to 10000");
  ExpectError(AsAdmin("GET", "/v1/services?limit=10001"), 400, 3, "invalid limit 10001");
  ExpectError(AsAdmin("GET", "/v1/services?offset=-1"), 400, 3,
              R"(invalid offset "-1": want a non-negative integer)");
  ExpectError(AsAdmin("GET", "/v1/services?offset=1x"), 400, 3, R"(invalid offset "1x")");
  ExpectError(AsAdmin("GET", "/v1/services?offset=1&offset=2"), 400, 3,
              R"(too many values for field "offset": 1, 2)");
  ExpectError(AsAdmin("GET", "/v1/services?filterSelector=%21%3D%28"), 400, 3,
              "invalid filter_selector");
  ExpectError(AsAdmin("GET", "/v1/services?filterName=%28"), 400, 3, "invalid filter_name");
  ExpectError(AsAdmin("GET", "/v1/services?sortBy=size"), 400, 3, "invalid sort_by");
  ExpectError(Send("GET", "/v1/services?limit=1"), 401, 16, "");
}

// Lists carry a weak ETag of their JSON; a client holding it gets a 304 until a change.
TEST_F(RestTest, ListsAnswer304UntilTheyChange) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  for (const std::string target :
       {"/v1/servers", "/v1/namespaces", "/v1/services", "/v1/services?limit=5"}) {
    const http::Response first = AsAdmin("GET", target);
    ASSERT_EQ(first.status, 200) << target;
    const std::optional<std::string> etag = HeaderOf(first, "ETag");
    ASSERT_THAT(etag, Optional(StartsWith("W/\""))) << target;
    const http::Response again = AsAdmin("GET", target, "", {{"If-None-Match", *etag}});
    EXPECT_EQ(again.status, 304) << target;
    EXPECT_TRUE(again.body.empty()) << target;
    EXPECT_THAT(HeaderOf(again, "ETag"), Optional(*etag)) << target;
    const http::Response other = AsAdmin("GET", target, "", {{"If-None-Match", "W/\"x\""}});
    EXPECT_EQ(other.status, 200) << target;
  }
  const http::Response services = AsAdmin("GET", "/v1/services");
  const std::string etag = HeaderOf(services, "ETag").value_or("");
  ASSERT_EQ(
      AsAdmin("POST", "/v1/services", R"({"name":"n","endpoint":"http://n.example.com"})").status,
      200);
  const http::Response changed = AsAdmin("GET", "/v1/services", "", {{"If-None-Match", etag}});
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(HeaderOf(changed, "ETag"), etag);
}

// Random requests never crash the API and never produce a 5xx: every answer is a client
// error or a success with a JSON body.
TEST_F(RestTest, RandomRequestsAreAnsweredWithoutServerErrors) {
  ASSERT_NO_FATAL_FAILURE(RegisterReadmeExample());
  using std::string_literals::operator""s;  // "\0"s keeps its NUL
  std::mt19937 random(20240601);  // NOLINT(cert-msc32-c,cert-msc51-cpp): reproducible on purpose
  const std::vector<std::string> methods = {"GET",  "POST", "DELETE", "PUT",
                                            "HEAD", "",     "get",    "\x01"};
  const std::vector<std::string> path_pieces = {"/",
                                                "v1",
                                                "servers",
                                                "services",
                                                "namespaces",
                                                "tokens",
                                                "sd",
                                                "default",
                                                "%",
                                                "%2F",
                                                "%zz",
                                                "..",
                                                "",
                                                "%00",
                                                "p1",
                                                "prometheus1.example.com",
                                                "?",
                                                "&",
                                                "=",
                                                "id",
                                                "namespace",
                                                "config",
                                                "export-config",
                                                "blackbox",
                                                "+",
                                                ";",
                                                "\xff",
                                                "\r\n",
                                                "{",
                                                "%C3%A9",
                                                "default-blackbox",
                                                "whoami",
                                                "limit",
                                                "offset",
                                                "-1",
                                                "99999999999999999999",
                                                "filterSelector",
                                                "filterName",
                                                "("};
  const std::vector<std::string> body_pieces = {"{",
                                                "}",
                                                "[",
                                                "]",
                                                "\"name\"",
                                                ":",
                                                ",",
                                                "\"labels\"",
                                                "\"x\"",
                                                "1",
                                                "-1e999",
                                                "null",
                                                "true",
                                                "\"\\u",
                                                "\xff",
                                                "\"namespace\"",
                                                "\"endpoint\"",
                                                "\"http://a/m\"",
                                                "\"export\"",
                                                "2",
                                                " ",
                                                "\"selector\"",
                                                "\"!=(\"",
                                                "\"expires\"",
                                                "\"namespaces\"",
                                                "\"id\"",
                                                "\0"s,
                                                R"("\ud800")"};
  const std::vector<std::optional<std::string>> credentials = {admin_,   machine_,  std::nullopt,
                                                               "Bearer", "Basic x", "Bearer a.b.c"};
  auto pick = [&random](const auto& pieces) {
    return pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(random)];
  };
  for (int i = 0; i < 3000; ++i) {
    std::string target = i % 3 == 0 ? "/v1/" : "/";
    const int path_length = std::uniform_int_distribution<int>(0, 6)(random);
    for (int j = 0; j < path_length; ++j) {
      target += pick(path_pieces);
      target += j % 2 == 0 ? "/" : "";
    }
    std::string body;
    const int body_length = std::uniform_int_distribution<int>(0, 12)(random);
    for (int j = 0; j < body_length; ++j) {
      body += pick(body_pieces);
    }
    if (i % 10 == 0) {
      body.clear();
      for (int j = 0; j < 40; ++j) {
        body += static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random));
      }
    }
    std::string method = pick(methods);
    if (i % 4 == 1) {
      // Well-formed requests with odd values, to reach the handlers and the registry.
      static const std::vector<std::string> targets = {"/v1/servers", "/v1/services",
                                                       "/v1/namespaces", "/v1/tokens"};
      static const std::vector<std::string> values = {"",
                                                      "a",
                                                      "default",
                                                      "p1",
                                                      "http://x/m",
                                                      "https://[::1]:9/p?q=1",
                                                      "a=b",
                                                      "!=(",
                                                      "zone in (a,b)",
                                                      "-1h",
                                                      "1h",
                                                      "\0"s,
                                                      "\xc3\xa9",
                                                      "a/b",
                                                      "ftp://x",
                                                      "http://",
                                                      "environment=test",
                                                      "default-blackbox",
                                                      "__name__",
                                                      "9999999h"};
      OrderedJson request = {{"name", pick(values)},
                             {"endpoint", pick(values)},
                             {"namespace", pick(values)},
                             {"selector", pick(values)},
                             {"id", pick(values)},
                             {"expires", pick(values)},
                             {"namespaces", {pick(values)}},
                             {"export", std::uniform_int_distribution<int>(-1, 3)(random)},
                             {"labels", {{pick(values), pick(values)}}}};
      if (i % 8 == 1) {
        // Mostly valid services, so that placement and http_sd see odd names and labels too.
        request["namespace"] = "";
        request["selector"] = "";
      }
      method = "POST";
      target = i % 8 == 1 ? "/v1/services" : pick(targets);
      body = request.dump();
    }
    const http::Response response = Send(method, target, body, pick(credentials));
    ASSERT_GE(response.status, 200) << method << " " << target << " " << body;
    ASSERT_LT(response.status, 500)
        << method << " " << target << " " << body << " -> " << response.body;
    if (response.status != 304) {
      EXPECT_FALSE(Json::parse(response.body, nullptr, false).is_discarded()) << response.body;
    }
  }
}

}  // namespace
}  // namespace discovery::rest
