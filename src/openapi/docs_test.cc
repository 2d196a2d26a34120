#include "openapi/docs.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "compress/gzip.h"
#include "testing/status_matchers.h"

namespace discovery::openapi {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

std::optional<std::string> HeaderOf(const http::Response& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

http::Response Get(const std::string& path,
                   std::vector<std::pair<std::string, std::string>> headers = {},
                   std::string method = "GET") {
  http::Request request;
  request.method = std::move(method);
  request.path = path;
  request.target = path;
  request.headers = std::move(headers);
  return Serve(request);
}

TEST(DocsTest, ServesTheDocumentAsJson) {
  const http::Response response = Get(std::string{kDocumentPath});
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(HeaderOf(response, "Content-Type"), Optional(std::string("application/json")));
  EXPECT_EQ(response.body, Document());
  EXPECT_TRUE(nlohmann::json::accept(response.body));
}

TEST(DocsTest, RedirectsToTheDirectory) {
  const http::Response response = Get("/swagger");
  EXPECT_EQ(response.status, 301);
  EXPECT_THAT(HeaderOf(response, "Location"), Optional(std::string("/swagger/")));
}

TEST(DocsTest, ServesSwaggerUiPointingAtTheDocument) {
  const http::Response index = Get("/swagger/");
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(HeaderOf(index, "Content-Type"), Optional(std::string("text/html; charset=utf-8")));
  EXPECT_THAT(index.body, HasSubstr("swagger-ui-bundle.js"));
  EXPECT_THAT(index.body, HasSubstr("swagger-initializer.js"));
  EXPECT_EQ(Get("/swagger/index.html").body, index.body);

  const http::Response initializer = Get("/swagger/swagger-initializer.js");
  EXPECT_THAT(initializer.body, HasSubstr(R"(url: "./openapi.json")"));
  EXPECT_THAT(initializer.body, ::testing::Not(HasSubstr("petstore.swagger.io")));
}

TEST(DocsTest, ServesEveryAssetWithItsContentType) {
  const std::vector<std::pair<std::string, std::string>> assets = {
      {"swagger-ui.css", "text/css; charset=utf-8"},
      {"index.css", "text/css; charset=utf-8"},
      {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
      {"swagger-ui-standalone-preset.js", "text/javascript; charset=utf-8"},
      {"swagger-initializer.js", "text/javascript; charset=utf-8"},
      {"favicon-32x32.png", "image/png"},
      {"favicon-16x16.png", "image/png"},
      {"LICENSE", "text/plain; charset=utf-8"}};
  for (const auto& [name, content_type] : assets) {
    const http::Response response = Get("/swagger/" + name);
    EXPECT_EQ(response.status, 200) << name;
    EXPECT_THAT(HeaderOf(response, "Content-Type"), Optional(content_type)) << name;
    EXPECT_THAT(HeaderOf(response, "X-Content-Type-Options"), Optional(std::string("nosniff")));
    EXPECT_FALSE(response.body.empty()) << name;
  }
  EXPECT_GT(Get("/swagger/swagger-ui-bundle.js").body.size(), 100'000U);
}

TEST(DocsTest, AnswersIfNoneMatchWith304) {
  const http::Response first = Get("/swagger/swagger-ui.css");
  const std::optional<std::string> etag = HeaderOf(first, "ETag");
  ASSERT_TRUE(etag.has_value());
  EXPECT_THAT(HeaderOf(first, "Cache-Control"), Optional(std::string("no-cache")));
  const http::Response again = Get("/swagger/swagger-ui.css", {{"If-None-Match", *etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(Get("/swagger/swagger-ui.css", {{"If-None-Match", "\"other\""}}).status, 200);
  EXPECT_NE(HeaderOf(Get("/swagger/swagger-ui-bundle.js"), "ETag"), etag);
}

TEST(DocsTest, GzipsTextAssetsForClientsThatAcceptIt) {
  const std::string path{kDocumentPath};
  const http::Response plain = Get(path);
  const http::Response gzipped = Get(path, {{"Accept-Encoding", "gzip"}});
  ASSERT_EQ(gzipped.status, 200);
  EXPECT_THAT(HeaderOf(gzipped, "Content-Encoding"), Optional(std::string("gzip")));
  EXPECT_THAT(HeaderOf(gzipped, "Vary"), Optional(std::string("Accept-Encoding")));
  ASSERT_NE(gzipped.shared_body, nullptr);
  EXPECT_LT(gzipped.shared_body->size(), Document().size());
  EXPECT_THAT(compress::Gunzip(*gzipped.shared_body),
              discovery::testing::IsOkAndHolds(std::string(Document())));
  // The same buffer for every answer, and its own ETag.
  EXPECT_EQ(Get(path, {{"Accept-Encoding", "gzip"}}).shared_body.get(), gzipped.shared_body.get());
  const std::optional<std::string> gzip_etag = HeaderOf(gzipped, "ETag");
  ASSERT_TRUE(gzip_etag.has_value());
  EXPECT_NE(gzip_etag, HeaderOf(plain, "ETag"));
  EXPECT_EQ(Get(path, {{"Accept-Encoding", "gzip"}, {"If-None-Match", *gzip_etag}}).status, 304);
  EXPECT_EQ(Get(path, {{"If-None-Match", *gzip_etag}}).status, 304);
  // Images are not compressed again.
  EXPECT_THAT(HeaderOf(Get("/swagger/favicon-32x32.png", {{"Accept-Encoding", "gzip"}}),
                       "Content-Encoding"),
              std::nullopt);
}

TEST(DocsTest, RefusesUnknownFilesAndOtherMethods) {
  EXPECT_EQ(Get("/swagger/nope.js").status, 404);
  EXPECT_EQ(Get("/swagger/../etc/passwd").status, 404);
  EXPECT_EQ(Get("/swagger/swagger-ui-bundle.js.map").status, 404);
  const http::Response post = Get("/swagger/", {}, "POST");
  EXPECT_EQ(post.status, 405);
  EXPECT_THAT(HeaderOf(post, "Allow"), Optional(std::string("GET, HEAD")));
  EXPECT_EQ(Get("/swagger/", {}, "HEAD").status, 200);
}

TEST(DocsTest, HandlesOnlySwaggerPathsWithBoundedRouteLabels) {
  EXPECT_TRUE(Handles("/swagger"));
  EXPECT_TRUE(Handles("/swagger/x"));
  EXPECT_FALSE(Handles("/swaggerx"));
  EXPECT_FALSE(Handles("/v1/servers"));
  EXPECT_THAT(Route("/swagger/openapi.json"), Optional(std::string_view("/swagger/openapi.json")));
  EXPECT_THAT(Route("/swagger/anything"), Optional(std::string_view("/swagger/")));
  EXPECT_EQ(Route("/metrics"), std::nullopt);
}

}  // namespace
}  // namespace discovery::openapi
