#include "ui/ui.h"

#include <optional>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace discovery::ui {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

http::Request Get(std::string path, std::string method = "GET") {
  http::Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  request.target = request.path;
  return request;
}

std::optional<std::string> HeaderOf(const http::Response& response, std::string_view name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

TEST(WebUiTest, ServesThePageAndItsModules) {
  const WebUi ui({});
  const http::Response index = ui.Serve(Get("/ui/"));
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(HeaderOf(index, "Content-Type"), Optional(std::string("text/html; charset=utf-8")));
  EXPECT_THAT(index.body, HasSubstr(R"(<script type="module" src="app.js">)"));
  EXPECT_THAT(HeaderOf(index, "Content-Security-Policy"),
              Optional(HasSubstr("connect-src 'self';")));

  const http::Response app = ui.Serve(Get("/ui/app.js"));
  EXPECT_EQ(app.status, 200);
  EXPECT_THAT(HeaderOf(app, "Content-Type"),
              Optional(std::string("text/javascript; charset=utf-8")));
  EXPECT_THAT(app.body, HasSubstr("/v1/whoami"));
  EXPECT_EQ(ui.Serve(Get("/ui/oidc.js")).status, 200);
  EXPECT_EQ(ui.Serve(Get("/ui/app.css")).status, 200);

  // Revalidation: the ETag gets a 304 without a body.
  http::Request again = Get("/ui/app.js");
  again.headers.emplace_back("If-None-Match", HeaderOf(app, "ETag").value_or("?"));
  const http::Response not_modified = ui.Serve(again);
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_TRUE(not_modified.body.empty());
}

TEST(WebUiTest, RedirectsAndRefusesWhatItDoesNotServe) {
  const WebUi ui({});
  http::Request bare = Get("/ui");
  bare.query = "x=1";
  const http::Response redirect = ui.Serve(bare);
  EXPECT_EQ(redirect.status, 301);
  EXPECT_THAT(HeaderOf(redirect, "Location"), Optional(std::string("/ui/?x=1")));
  EXPECT_EQ(ui.Serve(Get("/ui/nope.js")).status, 404);
  EXPECT_EQ(ui.Serve(Get("/ui/../swagger/")).status, 404);
  const http::Response post = ui.Serve(Get("/ui/", "POST"));
  EXPECT_EQ(post.status, 405);
  EXPECT_THAT(HeaderOf(post, "Allow"), Optional(std::string("GET, HEAD")));
  EXPECT_TRUE(WebUi::Handles("/ui"));
  EXPECT_FALSE(WebUi::Handles("/uix"));
  EXPECT_THAT(WebUi::Route("/ui/app.js"), Optional(std::string_view("/ui/")));
  EXPECT_THAT(WebUi::Route("/ui/config.json"), Optional(std::string_view("/ui/config.json")));
  EXPECT_EQ(WebUi::Route("/v1/servers"), std::nullopt);
}

TEST(WebUiTest, ConfigOffersOidcOnlyWithTheUiClientId) {
  const nlohmann::json without = nlohmann::json::parse(
      WebUi({.oidc_issuer = "https://idp"}).Serve(Get("/ui/config.json")).body);
  EXPECT_TRUE(without.at("oidc").is_null());
  const http::Response with =
      WebUi({.oidc_issuer = "https://idp", .oidc_client_id = "discovery-ui"})
          .Serve(Get("/ui/config.json"));
  EXPECT_EQ(with.status, 200);
  const nlohmann::json config = nlohmann::json::parse(with.body);
  // The page may talk to the provider's origin, and only with Sign in configured.
  EXPECT_THAT(HeaderOf(WebUi({.oidc_issuer = "https://idp:8443/realms/d?x",
                              .oidc_client_id = "discovery-ui"})
                           .Serve(Get("/ui/")),
                       "Content-Security-Policy"),
              Optional(HasSubstr("connect-src 'self' https://idp:8443;")));
  EXPECT_EQ(config.at("oidc").at("issuer"), "https://idp");
  EXPECT_EQ(config.at("oidc").at("clientId"), "discovery-ui");
}

}  // namespace
}  // namespace discovery::ui
