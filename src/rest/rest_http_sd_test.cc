// http_sd over the REST API: the answers, their gzip and ETag forms and the in-memory path.
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
#include "rest/rest_test_fixture.h"
#include "rest/url.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::rest {
namespace {

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
  const auto request = [](std::string method, const std::string& target, std::string authorization,
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    return BuildRequest(std::move(method), target, "", std::move(authorization),
                        std::move(headers));
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

}  // namespace
}  // namespace discovery::rest
