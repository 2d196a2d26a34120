// The Swagger UI of the real `discoveryd` binary (DISCOVERYD_BINARY) in a real headless
// Chromium: the page renders every operation of the served OpenAPI document, and "Try it out"
// of GET /v1/namespaces, authorized with a machine token from `discoveryd token create`, gets
// 200 and the namespaces from discoveryd inside the browser. Plain HTTP checks of /swagger and
// the documented operational paths come first, so a failure there is not blamed on the browser.
#include <iostream>
#include <set>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/chromium_process.h"
#include "testing/discoveryd_process.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::HasSubstr;

// Every (METHOD, path) of an OpenAPI document.
std::set<std::pair<std::string, std::string>> DocumentedOperations(const Json& document) {
  std::set<std::pair<std::string, std::string>> operations;
  for (const auto& [path, item] : document.at("paths").items()) {
    for (const auto& [method, unused] : item.items()) {
      std::string upper = method;
      for (char& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      operations.emplace(upper, path);
    }
  }
  return operations;
}

class SwaggerUiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DiscoverydProcess>> server =
        DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY});
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
  }

  // GET `path` of discoveryd; fails the test on a transport error.
  HttpResult Get(const std::string& path) const {
    absl::StatusOr<HttpResult> result = HttpGet(server_->http_url() + path);
    EXPECT_THAT(result, IsOk()) << path;
    return result.value_or(HttpResult{});
  }

  // The served OpenAPI document.
  Json Document() const {
    const HttpResult result = Get("/swagger/openapi.json");
    EXPECT_EQ(result.status, 200);
    EXPECT_EQ(result.Header("content-type"), "application/json");
    Json document = Json::parse(result.body, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(document.is_object()) << result.body.substr(0, 200);
    return document;
  }

  std::unique_ptr<DiscoverydProcess> server_;
};

TEST_F(SwaggerUiTest, ServesTheUiAndADocumentOfWhatIsServed) {
  const HttpResult redirect = Get("/swagger");
  EXPECT_EQ(redirect.status, 301);
  EXPECT_EQ(redirect.Header("location"), "/swagger/");
  const HttpResult index = Get("/swagger/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_THAT(index.body, HasSubstr("swagger-ui-bundle.js"));

  const Json document = Document();
  const std::set<std::pair<std::string, std::string>> operations = DocumentedOperations(document);
  // The defects of the original's specs (docs/decisions.md D47): http_sd and the delete's `id` are
  // documented, and what the document lists is served (the unit test openapi_test checks the
  // whole route table; here the daemon's own paths are checked against the real binary).
  EXPECT_TRUE(operations.contains({"GET", "/v1/sd/{server}/{namespace}"}));
  EXPECT_THAT(document["paths"]["/v1/services/{namespace}"]["delete"]["parameters"].dump(),
              HasSubstr(R"("name":"id")"));
  for (const std::string path : {"/metrics", "/healthz", "/readyz"}) {
    EXPECT_TRUE(operations.contains({"GET", path})) << path;
    EXPECT_EQ(Get(path).status, 200) << path;
  }
}

TEST_F(SwaggerUiTest, BrowserListsOperationsAndTriesOutListNamespaces) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> token = server_->MachineToken("swagger-ui", {"default"});
  ASSERT_THAT(token, IsOk());
  const Json document = Document();

  absl::StatusOr<std::unique_ptr<ChromiumProcess>> started =
      ChromiumProcess::Start(server_->http_url() + "/swagger/");
  ASSERT_THAT(started, IsOk());
  ChromiumProcess& browser = **started;
  auto failure = [&](const absl::Status& status) {
    return absl::StrCat(status.ToString(), "\n--- chromium log tail ---\n", browser.LogTail(),
                        "\n--- discoveryd log tail ---\n", server_->LogTail(10));
  };

  // (a) Every documented operation is rendered, and nothing else.
  absl::StatusOr<Json> rendered = browser.Evaluate(BrowserScript(R"js(
    await waitFor("the operations to render",
                  () => document.querySelectorAll(".opblock .opblock-summary-path").length > 0);
    return [...document.querySelectorAll(".opblock")].map((block) => [
      block.querySelector(".opblock-summary-method").innerText.trim(),
      block.querySelector(".opblock-summary-path").getAttribute("data-path"),
    ]);
  )js"));
  ASSERT_TRUE(rendered.ok()) << failure(rendered.status());
  std::set<std::pair<std::string, std::string>> shown;
  for (const Json& operation : *rendered) {
    shown.emplace(operation[0].get<std::string>(), operation[1].get<std::string>());
  }
  EXPECT_EQ(shown, DocumentedOperations(document));

  // (b) Authorize with the machine token: open the dialog, type the token, apply, close.
  absl::StatusOr<Json> dialog = browser.Evaluate(BrowserScript(R"js(
    document.querySelector(".auth-wrapper .btn.authorize").click();
    const input = await waitFor("the bearer token field",
                                () => document.querySelector(".modal-ux .auth-container input"));
    input.focus();
    return document.activeElement === input;
  )js"));
  ASSERT_TRUE(dialog.ok()) << failure(dialog.status());
  ASSERT_EQ(*dialog, Json(true));
  const absl::StatusOr<Json> typed = browser.Call("Input.insertText", {{"text", *token}});
  ASSERT_TRUE(typed.ok()) << failure(typed.status());
  absl::StatusOr<Json> authorized = browser.Evaluate(BrowserScript(R"js(
    document.querySelector(".modal-ux .auth-btn-wrapper .btn.authorize").click();
    await waitFor("the dialog to show the token as applied",
                  () => document.querySelector('.modal-ux [aria-label="Remove authorization"]'));
    document.querySelector(".modal-ux .btn-done").click();
    await waitFor("the dialog to close", () => !document.querySelector(".modal-ux"));
    return document.querySelector(".auth-wrapper .btn.authorize").className;
  )js"));
  ASSERT_TRUE(authorized.ok()) << failure(authorized.status());
  EXPECT_EQ(*authorized, Json("btn authorize locked"));

  // Try it out: expand GET /v1/namespaces, "Try it out", "Execute", read the live response.
  absl::StatusOr<Json> tried = browser.Evaluate(BrowserScript(R"js(
    const block = document.querySelector("#operations-NamespaceAPI-NamespaceAPI_ListNamespace");
    if (!block) throw new Error("no block for GET /v1/namespaces");
    block.querySelector(".opblock-summary-control").click();
    (await waitFor("the Try it out button", () => block.querySelector(".try-out__btn"))).click();
    (await waitFor("the Execute button", () => block.querySelector(".btn.execute"))).click();
    const row = await waitFor("the server response",
                              () => block.querySelector(".live-responses-table .response"));
    return {
      status: row.querySelector(".response-col_status").innerText.trim(),
      body: row.querySelector(".response-col_description pre").innerText,
      curl: block.querySelector(".curl-command").innerText,
    };
  )js"));
  ASSERT_TRUE(tried.ok()) << failure(tried.status());
  EXPECT_EQ(tried->value("status", ""), "200") << tried->dump();
  EXPECT_THAT(tried->value("curl", ""), HasSubstr("Authorization: Bearer " + *token));
  const Json namespaces =
      Json::parse(tried->value("body", ""), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(namespaces.is_object()) << tried->dump();
  ASSERT_TRUE(namespaces.contains("namespaces")) << tried->dump();
  bool has_default = false;
  for (const Json& ns : namespaces["namespaces"]) {
    has_default = has_default || ns.value("name", "") == "default";
  }
  EXPECT_TRUE(has_default) << tried->dump();

  // discoveryd saw the browser's call: its metrics count a 200 for the route.
  const HttpResult metrics = Get("/metrics");
  EXPECT_THAT(metrics.body, HasSubstr(R"(discovery_http_requests_total{code="200",method="GET",)"
                                      R"(route="/v1/namespaces"})"));
  std::cerr << "Swagger UI walk-through took " << absl::FormatDuration(absl::Now() - start) << "\n";
}

}  // namespace
}  // namespace discovery::testing
