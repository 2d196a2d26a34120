#include <algorithm>
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
#include "model/model.h"
#include "postfinance/discovery/v1/server_api.pb.h"
#include "postfinance/discovery/v1/service_api.pb.h"
#include "postfinance/discovery/v1/token_api.pb.h"
#include "registry/registry.h"
#include "repo/repo.h"
#include "rest/json.h"
#include "rest/rest_api.h"
#include "rest/rest_test_fixture.h"
#include "rest/url.h"
#include "store/store.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::rest {
namespace {

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
// GET /v1/services without paging prints ListService's answer a part of rows at a time: across
// parts, and with invalid records after the served services, it is the whole message printed.
TEST_F(RestTest, AnUnpagedListIsTheWholeAnswerPrinted) {
  const repo::Repository repository(stack_->store(), repo::Keys());
  constexpr int kServices = 2345;  // parts of 1,000 rows: the last part holds the invalid ones
  int64_t revision = 0;
  for (int first = 0; first < kServices; first += 100) {
    store::Txn txn;
    for (int i = first; i < std::min(first + 100, kServices); ++i) {
      Service service;
      service.endpoint = fmt::format("http://h{}.example.com:9100/metrics", i);
      service.id = ServiceId(service.endpoint);
      service.name = "node";
      service.namespace_name = "default";
      service.labels = {{"team", fmt::format("t{}", i % 7)}};
      ASSERT_OK_AND_ASSIGN(store::Op op, repository.PutServiceOp(service));
      txn.ops.push_back(std::move(op));
    }
    ASSERT_OK_AND_ASSIGN(const store::TxnResult result, stack_->store().Commit(txn));
    revision = result.revision;
  }
  for (const std::string id : {"legacy-1", "legacy-2"}) {
    ASSERT_OK_AND_ASSIGN(const store::TxnResult result,
                         store::Put(stack_->store(), repo::Keys().Service("default", id),
                                    R"({"id":")" + id + R"(","endpoint":"localhost:9100"})"));
    revision = result.revision;
  }
  ASSERT_TRUE(registry_->WaitForRevision(revision, absl::Seconds(30)));

  const http::Response listed = AsAdmin("GET", "/v1/services");
  ASSERT_EQ(listed.status, 200);
  const auth::Principal admin{.kind = auth::Principal::Kind::kMachine, .admin_token = true};
  ASSERT_OK_AND_ASSIGN(const pb::ListServiceResponse whole,
                       handlers_->ListService(admin, pb::ListServiceRequest()));
  ASSERT_EQ(whole.services_size(), kServices);
  ASSERT_EQ(whole.invalid_services_size(), 2);
  ASSERT_OK_AND_ASSIGN(const std::string printed, json_internal::MessageToJsonAtOnce(whole));
  EXPECT_EQ(listed.body, printed);
}

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

}  // namespace
}  // namespace discovery::rest
