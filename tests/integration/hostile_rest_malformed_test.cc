// Hostile REST clients sending malformed JSON bodies and malformed HTTP.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "integration/hostile_rest_fixture.h"
#include "testing/discoveryd_process.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"

namespace discovery::testing::hostile_rest {
namespace {

struct BadBody {
  std::string what;
  std::string body;
  // A part of the error message that names the problem.
  std::string message_part;
};

std::string Nested(char open, char close, int depth, std::string_view inner = "") {
  return std::string(depth, open) + std::string(inner) + std::string(depth, close);
}

// Every route gets these; `field` is a string field of its request.
std::vector<BadBody> CommonBadBodies(const std::string& field) {
  std::string deep_objects;
  for (int i = 0; i < 50000; ++i) {
    deep_objects += R"({"a":)";
  }
  return {
      {"truncated", "{\"" + field + "\":\"x", "invalid string: missing closing quote"},
      {"truncated after colon", "{\"" + field + "\":", "unexpected end of input"},
      {"100k [ unbalanced", std::string(100000, '['), "nested deeper than 32 levels"},
      {"100k [ balanced, unknown field", "{\"x\":" + Nested('[', ']', 100000) + "}",
       "nested deeper than 32 levels"},
      {"100k [ in a known field", "{\"" + field + "\":" + Nested('[', ']', 100000) + "}",
       "nested deeper than 32 levels"},
      {"1 MiB - 1 of [", std::string((1 << 20) - 1, '['), "nested deeper than 32 levels"},
      {"50k nested objects", deep_objects + "1" + std::string(50000, '}'),
       "nested deeper than 32 levels"},
      {"array at the top", "[]", "want a JSON object, got an array"},
      {"string at the top", R"("name")", "want a JSON object, got a string"},
      {"number for a string", "{\"" + field + "\":5}", "invalid value 5"},
      {"object for a string", "{\"" + field + "\":{}}", "want a single value, got an object"},
      {"list for a string", "{\"" + field + R"(":["a"]})", "want a single value, got an array"},
      {"invalid UTF-8", "{\"" + field + "\":\"a\xff\"}", "ill-formed UTF-8"},
      {"overlong UTF-8", "{\"" + field + "\":\"\xc0\xaf\"}", "ill-formed UTF-8"},
      {"UTF-16 surrogate in UTF-8", "{\"" + field + "\":\"\xed\xa0\x80\"}", "ill-formed UTF-8"},
      {"lone surrogate escape", "{\"" + field + R"(":"\ud800"})", "surrogate"},
      {"invalid UTF-8 in a key", "{\"\xff\":1}", "ill-formed UTF-8"},
      {"number beyond double", "{\"" + field + R"(":"a","x":1e400})", "number overflow"},
      {"100k digits", "{\"x\":" + std::string(100000, '9') + "}", "number overflow"},
      {"duplicate key", "{\"" + field + R"(":"a",")" + field + R"(":"b"})",
       "duplicate field \"" + field + "\""},
      {"duplicate unknown key", R"({"x":1,"x":2})", "duplicate field \"x\""},
      {"raw NUL in a string", "{\"" + field + "\":\"a\0b\"}"s, "NUL byte at offset "},
      {"NUL after the object", "{\"" + field + "\":\"a\"}\0"s, "NUL byte at offset "},
      {"NUL only", "\0"s, "NUL byte at offset 0"},
      {"single quotes", "{'" + field + "':'a'}", "invalid literal"},
      {"bare key", "{" + field + ":\"a\"}", "invalid literal"},
      {"trailing comma", "{\"" + field + R"(":"a",})", "expected string literal"},
      {"two documents", "{} {}", "expected end of input"},
      {"comment", "{/* x */}", "invalid literal"},
  };
}

TEST_F(HostileRestTest, MalformedJsonIs400NamingTheProblemAndStoresNothing) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const Json before = Snapshot();

  std::map<std::string, std::vector<BadBody>> routes = {
      {"/v1/servers", CommonBadBodies("name")},
      {"/v1/services", CommonBadBodies("endpoint")},
      {"/v1/namespaces", CommonBadBodies("name")},
      {"/v1/tokens", CommonBadBodies("id")},
  };
  auto add = [&routes](const std::string& route, std::vector<BadBody> bodies) {
    for (BadBody& body : bodies) {
      routes[route].push_back(std::move(body));
    }
  };
  add("/v1/servers",
      {{"list for a map", R"({"name":"p9","labels":["a"]})", "field \"labels\": want an object"},
       {"number in a map", R"({"name":"p9","labels":{"a":1}})", "labels"},
       {"list in a map", R"({"name":"p9","labels":{"a":["b"]}})",
        "field \"labels.a\": want a single value"},
       {"duplicate map key", R"({"name":"p9","labels":{"a":"1","a":"2"}})",
        "duplicate field \"a\""},
       {"map given twice", R"({"name":"p9","labels":{"a":"1"},"labels":{"b":"2"}})",
        "duplicate field \"labels\""},
       {"escaped NUL in the name", R"({"name":"p\u00009"})", "name"}});
  add("/v1/services",
      {{"number for the name", R"({"name":1,"endpoint":"http://e9/m"})", "invalid value 1"},
       {"string for labels", R"({"name":"s9","endpoint":"http://e9/m","labels":"a=b"})",
        "field \"labels\": want an object, got a string"},
       {"escaped NUL in the endpoint", R"({"name":"s9","endpoint":"http://e9/\u0000"})",
        "endpoint"}});
  add("/v1/namespaces",
      {{"string for export", R"({"name":"n9","export":"two"})", "export"},
       {"fraction for export", R"({"name":"n9","export":1.5})", "export"},
       {"export beyond int32", R"({"name":"n9","export":99999999999999999999999999})", "export"},
       {"export beyond int64", R"({"name":"n9","export":-99999999999999999999999999})", "export"},
       {"list for export", R"({"name":"n9","export":[1]})",
        "field \"export\": want a single value, got an array"}});
  add("/v1/tokens", {{"string for a list", R"({"id":"t9","namespaces":"default"})",
                      "field \"namespaces\": want an array, got a string"},
                     {"nested list", R"({"id":"t9","namespaces":[["default"]]})",
                      "field \"namespaces[0]\": want a single value, got an array"},
                     {"number in a list", R"({"id":"t9","namespaces":[1]})", "namespaces"},
                     {"number for expires", R"({"id":"t9","expires":5})", "expires"},
                     {"absurd expires", R"({"id":"t9","expires":"99999999999999999999h"})",
                      "invalid expiry duration"}});

  int checked = 0;
  for (const auto& [route, bodies] : routes) {
    for (const BadBody& bad : bodies) {
      SCOPED_TRACE(route + ": " + bad.what);
      const absl::StatusOr<HttpResult> result =
          HttpRequest("POST", Url(route), bad.body,
                      {auth_[0], {"Content-Type", "application/json"}}, absl::Seconds(10));
      ASSERT_THAT(result, IsOk());
      EXPECT_EQ(result->status, 400) << result->body;
      const std::optional<ErrorBody> error = ParseErrorBody(result->body);
      ASSERT_TRUE(error.has_value()) << result->body;
      EXPECT_EQ(error->code, 3);  // InvalidArgument
      EXPECT_THAT(error->message, HasSubstr(bad.message_part));
      EXPECT_LE(error->message.size(), 400U) << "the message echoes the body";
      std::cout << "[ 400      ] POST " << route << " " << bad.what << ": " << error->message
                << "\n";
      ++checked;
    }
  }
  std::cout << "[ 400      ] " << checked << " malformed bodies refused\n";
  EXPECT_EQ(Snapshot(), before) << "a refused body changed the store";
  EXPECT_EQ(Get("/v1/sd/prom1/default"), 200);
}

// ---------------------------------------------------------------------------------------------
// 5. Malformed request lines and header fields.

TEST_F(HostileRestTest, MalformedRequestLinesAndHeadersAre4xx) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const Json before = Snapshot();
  const std::string deep_jwt_payload =
      auth::Base64UrlEncode("{\"a\":" + Nested('[', ']', 5000) + "}");
  struct BadRequest {
    std::string what;
    std::string request;
    int status;                // 0: any 4xx
    std::string message_part;  // of a JSON error body; "" when not checked
  };
  const std::vector<BadRequest> requests = {
      {"control character in the method", "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400,
       "malformed HTTP request: bad method"},
      {"NUL in the method", "GE\0T / HTTP/1.1\r\nHost: x\r\n\r\n"s, 400, "malformed HTTP request"},
      {"not HTTP at all", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"s, 400,
       "malformed HTTP request"},
      {"unknown method", Head("BREW", "/v1/servers", ""), 405, "Method Not Allowed"},
      {"lower-case method", Head("get", "/v1/servers", ""), 405, "Method Not Allowed"},
      {"absurd URL", Head("GET", "/v1/servers/" + std::string(100000, 'a'), ""), 431,
       "request header fields too large: the limit is 16384 bytes"},
      {"long URL under the limit", Head("GET", "/v1/tokens/" + std::string(15000, 'a'), ""), 400,
       "token is not valid"},
      {"bad percent-encoding in the path", Head("DELETE", "/v1/servers/%zz", ""), 400,
       "invalid URL escape \"%zz\""},
      {"truncated percent-encoding", Head("GET", "/v1/sd/prom1/%", ""), 400,
       "invalid URL escape \"%\""},
      {"bad percent-encoding in the query", Head("GET", "/v1/services?namespace=%g0", ""), 400,
       "invalid URL escape \"%g0\""},
      {"percent-encoded NUL", Head("DELETE", "/v1/servers/a%00b", ""), 400, ""},
      {"space in the target", "GET /v1/ser vers HTTP/1.1\r\nHost: x\r\n\r\n", 400,
       "malformed HTTP request"},
      {"absolute-form target", Head("GET", "http://x/v1/servers", ""), 400, ""},
      {"asterisk target", Head("OPTIONS", "*", ""), 400, ""},
      {"bad version", "GET /v1/servers HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed HTTP request"},
      {"no version", "GET /v1/servers\r\nHost: x\r\n\r\n", 400, "malformed HTTP request"},
      {"huge header", Head("GET", "/v1/servers", "X-Big: " + std::string(20000, 'a') + "\r\n"), 431,
       "request header fields too large"},
      {"many headers",
       Head("GET", "/v1/servers",
            [] {
              std::string many;
              for (int i = 0; i < 3000; ++i) {
                many += fmt::format("X-{}: a\r\n", i);
              }
              return many;
            }()),
       431, "request header fields too large"},
      {"header without a colon", Head("GET", "/v1/servers", "NoColonHere\r\n"), 400,
       "malformed HTTP request"},
      {"space before the colon", Head("GET", "/v1/servers", "X-Bad : a\r\n"), 400,
       "malformed HTTP request"},
      {"NUL in a header value", Head("GET", "/v1/servers", "X-Nul: a\0b\r\n"s), 400,
       "malformed HTTP request"},
      {"bare CR in a header value", Head("GET", "/v1/servers", "X-Cr: a\rb\r\n"), 400,
       "malformed HTTP request"},
      {"non-numeric Content-Length", Head("POST", "/v1/servers", "Content-Length: abc\r\n"), 400,
       "malformed HTTP request"},
      {"negative Content-Length", Head("POST", "/v1/servers", "Content-Length: -1\r\n"), 400,
       "malformed HTTP request"},
      {"Content-Length beyond 64 bits",
       Head("POST", "/v1/servers", "Content-Length: 99999999999999999999999\r\n"), 400,
       "malformed HTTP request"},
      {"two different Content-Lengths",
       Head("POST", "/v1/servers", "Content-Length: 2\r\nContent-Length: 3\r\n") + "{}x", 400,
       "malformed HTTP request"},
      {"bad chunk size", Head("POST", "/v1/servers", "Transfer-Encoding: chunked\r\n") + "zz\r\n",
       400, "malformed HTTP request"},
      {"chunk size beyond 64 bits",
       Head("POST", "/v1/servers", "Transfer-Encoding: chunked\r\n") + "fffffffffffffffffff\r\n", 0,
       ""},
      {"unknown transfer coding", Head("POST", "/v1/servers", "Transfer-Encoding: gzip\r\n"), 400,
       "malformed HTTP request: unsupported transfer coding"},
      {"chunked not last", Head("POST", "/v1/servers", "Transfer-Encoding: chunked, gzip\r\n"), 400,
       "malformed HTTP request: unsupported transfer coding"},
      {"Content-Length and chunked",
       Head("POST", "/v1/servers", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") +
           "0\r\n\r\n",
       400, "malformed HTTP request"},
      {"control bytes in the bearer token",
       "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01.\x02.\r\n\r\n", 400,
       "malformed HTTP request: bad value"},
      {"garbage bearer token",
       "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer !!.??.**\r\n\r\n", 401,
       "token"},
      {"deeply nested JWT payload",
       "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           auth::Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." + deep_jwt_payload +
           ".c2ln\r\n\r\n",
       401, ""},
  };
  for (const BadRequest& bad : requests) {
    SCOPED_TRACE(bad.what);
    std::unique_ptr<RawConnection> connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(connection, nullptr);
    // The server may answer (and close) before it has read all of a huge request.
    connection->SendAll(bad.request);
    const RawResponse response = connection->ReadResponse();
    ASSERT_TRUE(response.complete) << "no response: " << connection->received().substr(0, 200);
    if (bad.status == 0) {
      EXPECT_GE(response.status, 400) << response.body;
      EXPECT_LT(response.status, 500) << response.body;
    } else {
      EXPECT_EQ(response.status, bad.status) << response.body;
    }
    if (!bad.message_part.empty()) {
      const std::optional<ErrorBody> error = ParseErrorBody(response.body);
      ASSERT_TRUE(error.has_value()) << response.body;
      EXPECT_THAT(error->message, HasSubstr(bad.message_part));
    }
    std::cout << "[ " << response.status << "      ] " << bad.what << ": " << response.body << "\n";
  }
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(Get("/v1/sd/prom1/default"), 200);
}

// ---------------------------------------------------------------------------------------------
// What a second adversarial pass found (docs/decisions.md D40). Each test replays the attack
// against the real binary.

}  // namespace
}  // namespace discovery::testing::hostile_rest
