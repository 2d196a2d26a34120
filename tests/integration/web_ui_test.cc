// The web UI (/ui/) of the real `discoveryd` binary (DISCOVERYD_BINARY) in a real headless
// Chromium, driven over the DevTools protocol: sign-in with a machine token, the counts and rows
// of every page against the REST API's own answers, a label selector filter, live updates, an
// admin unregistering a stale service (which then leaves http_sd), a read-only identity that is
// offered no delete, a keyboard-only path at 200 % zoom, and axe-core (AXE_CORE_JS) on every
// page. Screenshots of each page go to WEB_UI_SCREENSHOT_DIR (in the build tree) for a reviewer.
// A second suite fills the registry with 100,000 services and prints how long the table takes.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "model/model.h"
#include "repo/codec.h"
#include "repo/repo.h"
#include "store/embedded/embedded_store.h"
#include "store/store.h"
#include "testing/chromium_process.h"
#include "testing/discoveryd_process.h"
#include "testing/glewlwyd_process.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#if !defined(DISCOVERYD_BINARY) || !defined(DISCOVERY_BINARY) || !defined(AXE_CORE_JS) || \
    !defined(WEB_UI_SCREENSHOT_DIR)
#error "DISCOVERYD_BINARY, DISCOVERY_BINARY, AXE_CORE_JS and WEB_UI_SCREENSHOT_DIR must be set"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

class WebUiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
    ASSERT_OK_AND_ASSIGN(admin_, server_->AdminToken());
    std::filesystem::create_directories(WEB_UI_SCREENSHOT_DIR);
  }

  // `method path` of the REST API as the admin (or with `token`); fails the test on a transport
  // error or an answer other than 200.
  Json Api(const std::string& method, const std::string& path, const Json& body = nullptr,
           const std::string& token = "") const {
    absl::StatusOr<HttpResult> result =
        HttpRequest(method, server_->http_url() + path, body.is_null() ? "" : body.dump(),
                    {{"Authorization", "Bearer " + (token.empty() ? admin_ : token)},
                     {"Content-Type", "application/json"}},
                    absl::Seconds(60));
    EXPECT_THAT(result, IsOk()) << method << " " << path;
    if (!result.ok()) {
      return nullptr;
    }
    EXPECT_EQ(result->status, 200) << method << " " << path << ": " << result->body;
    return Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  }

  // Three servers, a second namespace, and services with env labels spread over both.
  void RegisterFleet() {
    for (const std::string name : {"prom-a", "prom-b", "prom-c"}) {
      Api("POST", "/v1/servers", {{"name", name}, {"labels", {{"zone", "z-" + name}}}});
    }
    Api("POST", "/v1/namespaces", {{"name", "blackbox"}, {"export", 2}});
    for (int i = 0; i < 24; ++i) {
      Api("POST", "/v1/services",
          {{"name", i % 3 == 0 ? "node" : "app"},
           {"endpoint", fmt::format("http://host-{:02}.example.com:9100/metrics", i)},
           {"namespace", i % 4 == 0 ? "blackbox" : "default"},
           {"labels",
            {{"env", i % 2 == 0 ? "prod" : "test"}, {"team", fmt::format("t{}", i % 5)}}}});
    }
  }

  // A browser on /ui/ (at 200 % zoom when `zoomed`: a 1280-pixel window shows 640 CSS pixels).
  std::unique_ptr<ChromiumProcess> OpenUi(bool zoomed = false) {
    absl::StatusOr<std::unique_ptr<ChromiumProcess>> browser =
        ChromiumProcess::Start(server_->http_url() + "/ui/");
    EXPECT_THAT(browser, IsOk());
    if (!browser.ok()) {
      return nullptr;
    }
    if (zoomed) {
      EXPECT_THAT(
          (*browser)
              ->Call("Emulation.setDeviceMetricsOverride",
                     {{"width", 640}, {"height", 900}, {"deviceScaleFactor", 2}, {"mobile", false}})
              .status(),
          IsOk());
    }
    return *std::move(browser);
  }

  // Evaluates `body` (BrowserScript) and fails the test with the page's and both logs' tails.
  Json Run(ChromiumProcess& browser, const std::string& body,
           absl::Duration timeout = absl::Seconds(30)) {
    // drawnWith(key): the value of query parameter `key` of the services table on show.
    absl::StatusOr<Json> result = browser.Evaluate(BrowserScript(absl::StrCat(R"js(
      const drawnWith = (key) => new URLSearchParams(
          (document.getElementById("services-result")?.dataset.query || "").split("?")[1] || "").get(key);
    )js",
                                                                              body)),
                                                   timeout);
    EXPECT_TRUE(result.ok()) << result.status() << "\n--- chromium log tail ---\n"
                             << browser.LogTail() << "\n--- discoveryd log tail ---\n"
                             << server_->LogTail(10);
    return result.ok() ? *std::move(result) : Json();
  }

  // Signs in on the sign-in form by pasting `token`, and waits for the first page.
  void SignInWithToken(ChromiumProcess& browser, const std::string& token) {
    Run(browser, R"js(
      const input = await waitFor("the token field", () => document.getElementById("token"));
      input.focus();
    )js");
    ASSERT_THAT(browser.Type(token), IsOk());
    Run(browser, R"js(
      document.getElementById("token-sign-in").click();
      await waitFor("the servers page", () => document.body.dataset.page === "servers" &&
                                               document.getElementById("servers-table"));
    )js");
  }

  static void Shot(ChromiumProcess& browser, const std::string& name) {
    const std::string path = absl::StrCat(WEB_UI_SCREENSHOT_DIR, "/", name, ".png");
    EXPECT_THAT(browser.Screenshot(path), IsOk());
    std::cerr << "screenshot: " << path << "\n";
  }

  // Shows page `name` (#/name) and waits until it has rendered.
  void Show(ChromiumProcess& browser, const std::string& name) {
    Run(browser, absl::StrCat(R"js(
      const before = Number(document.body.dataset.rendered || 0);
      location.hash = "#/)js",
                              name, R"js(";
      await waitFor("the page to render", () => document.body.dataset.page === ")js",
                              name,
                              R"js(" && Number(document.body.dataset.rendered) > before);
    )js"));
  }

  // axe-core's serious and critical violations on the page as shown.
  Json AxeViolations(ChromiumProcess& browser) {
    static const std::string* const axe = new std::string(ReadFile(AXE_CORE_JS));
    EXPECT_THAT(*axe, HasSubstr("axe"));
    EXPECT_THAT(browser.Evaluate(*axe + "\n;true", absl::Seconds(60)).status(), IsOk());
    return Run(browser, R"js(
      const results = await axe.run(document, { resultTypes: ["violations"] });
      return results.violations
          .filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
    )js",
               absl::Seconds(60));
  }

  std::unique_ptr<DiscoverydProcess> server_;
  std::string admin_;
};

// Per server, how many services the API places on it.
std::map<std::string, int> PlacementsOf(const Json& services) {
  std::map<std::string, int> counts;
  for (const Json& service : services.at("services")) {
    for (const Json& server : service.at("servers")) {
      ++counts[server.get<std::string>()];
    }
  }
  return counts;
}

TEST_F(WebUiTest, ServesThePageItsModulesAndConfig) {
  ASSERT_OK_AND_ASSIGN(const HttpResult redirect, HttpGet(server_->http_url() + "/ui"));
  EXPECT_EQ(redirect.status, 301);
  EXPECT_EQ(redirect.Header("location"), "/ui/");
  ASSERT_OK_AND_ASSIGN(const HttpResult index, HttpGet(server_->http_url() + "/ui/"));
  EXPECT_EQ(index.status, 200);
  EXPECT_THAT(index.body, HasSubstr("app.js"));
  ASSERT_OK_AND_ASSIGN(const HttpResult config, HttpGet(server_->http_url() + "/ui/config.json"));
  EXPECT_EQ(Json::parse(config.body), Json::parse(R"({"oidc":null})"));
  ASSERT_OK_AND_ASSIGN(const HttpResult missing, HttpGet(server_->http_url() + "/ui/x.js"));
  EXPECT_EQ(missing.status, 404);
}

// A read-only identity (a machine token for another namespace) signs in with its token: every
// page shows what the API answers, the selector filter narrows the table as the API does, and
// no delete is offered anywhere.
TEST_F(WebUiTest, TokenSignInShowsWhatTheApiAnswersAndNoDeleteToAReader) {
  ASSERT_NO_FATAL_FAILURE(RegisterFleet());
  // A record the Go original accepted and that cannot be served, written straight into the
  // store (as a second process on the database, like `discoveryd exporter`).
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> store,
                         store::OpenEmbeddedStore({.path = server_->data_dir() + "/discovery.db"}));
    const Service legacy{.id = ServiceId("localhost:9100"),
                         .name = "legacy",
                         .namespace_name = "default",
                         .endpoint = "localhost:9100",
                         .servers = {"prom-a"}};
    ASSERT_THAT(
        store::Put(*store, repo::Keys().Service("default", legacy.id), repo::EncodeService(legacy)),
        IsOk());
  }
  for (int i = 0; i < 100 && Api("GET", "/v1/services").at("invalidServices").empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_OK_AND_ASSIGN(const std::string reader, server_->MachineToken("viewer", {"elsewhere"}));
  std::unique_ptr<ChromiumProcess> browser = OpenUi();
  ASSERT_NE(browser, nullptr);
  ASSERT_NO_FATAL_FAILURE(SignInWithToken(*browser, reader));

  // Servers: one row per server, its target count as the API places them, and the ideal share.
  const Json services = Api("GET", "/v1/services");
  const std::map<std::string, int> placements = PlacementsOf(services);
  const Json shown_servers = Run(*browser, R"js(
    return Object.fromEntries([...document.querySelectorAll("#servers-table tbody tr")].map(
        (row) => [row.dataset.server, Number(row.querySelector("[data-total]").dataset.total)]));
  )js");
  Json expected_servers = Json::object();
  const Json servers = Api("GET", "/v1/servers");
  for (const Json& server : servers.at("servers")) {
    const std::string name = server.at("name").get<std::string>();
    expected_servers[name] = placements.contains(name) ? placements.at(name) : 0;
  }
  EXPECT_EQ(shown_servers, expected_servers);
  EXPECT_EQ(Run(*browser, R"js(
              return document.querySelectorAll("#servers-table button").length +
                     document.querySelectorAll(".chart rect.bar").length * 100 +
                     document.querySelectorAll(".chart line.ideal").length * 10000;
            )js"),
            Json(3 * 100 + 10000));
  EXPECT_THAT(Run(*browser, "return document.getElementById('identity').textContent;"),
              Json("machine viewer"));
  Shot(*browser, "servers");

  // Namespaces: export config and service count per namespace.
  Show(*browser, "namespaces");
  const Json shown_namespaces = Run(*browser, R"js(
    return Object.fromEntries([...document.querySelectorAll("#namespaces-table tbody tr")].map(
        (row) => [row.dataset.namespace, [row.cells[1].textContent, Number(row.cells[2].textContent)]]));
  )js");
  Json expected_namespaces = Json::object();
  const Json namespaces = Api("GET", "/v1/namespaces");
  for (const Json& ns : namespaces.at("namespaces")) {
    const std::string name = ns.at("name").get<std::string>();
    // Every stored record counts, also one that cannot be served.
    const Json listed = Api("GET", "/v1/services?namespace=" + name);
    const int count =
        static_cast<int>(listed.at("services").size() + listed.at("invalidServices").size());
    const int export_config = ns.at("export").get<int>();
    expected_namespaces[name] = {
        export_config == 0 ? "disabled" : (export_config == 1 ? "standard" : "blackbox"), count};
  }
  EXPECT_EQ(shown_namespaces, expected_namespaces);
  EXPECT_EQ(Run(*browser, "return document.querySelectorAll('#namespaces-table button').length;"),
            Json(0));
  Shot(*browser, "namespaces");

  // Services: every row of the API, then the label selector filter.
  Show(*browser, "services");
  const Json shown_rows = Run(*browser, R"js(
    const table = await waitFor("the services table", () => document.getElementById("services-table"));
    return {
      total: Number(document.getElementById("services-total").dataset.total),
      ids: [...table.querySelectorAll("tbody tr")].map((row) => row.dataset.id).sort(),
      buttons: table.querySelectorAll("button").length,
    };
  )js");
  std::vector<std::string> ids;
  for (const Json& service : services.at("services")) {
    ids.push_back(service.at("id").get<std::string>());
  }
  ASSERT_EQ(services.at("invalidServices").size(), 1U) << services.dump();
  const Json& invalid = services.at("invalidServices")[0];
  ids.push_back(invalid.at("service").at("id").get<std::string>());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(shown_rows.value("total", -1), static_cast<int>(ids.size()));
  EXPECT_EQ(shown_rows.value("ids", Json()), Json(ids));
  EXPECT_EQ(shown_rows.value("buttons", -1), 0) << "a reader is offered no delete";
  EXPECT_EQ(Run(*browser, absl::StrCat(R"js(
              return document.querySelector('#services-table tr[data-id=")js",
                                       invalid.at("service").at("id").get<std::string>(),
                                       R"js("] .invalid').textContent;
            )js")),
            Json("does not parse: " + invalid.at("reason").get<std::string>()));
  Shot(*browser, "services");

  const Json filtered = Run(*browser, R"js(
    document.getElementById("f-selector").value = "env=prod,team in (t0,t2)";
    document.getElementById("apply-filters").click();
    await waitFor("the filtered table", () => drawnWith("filterSelector") === "env=prod,team in (t0,t2)");
    return [...document.querySelectorAll("#services-table tbody tr")].map((row) => row.dataset.id).sort();
  )js");
  std::vector<std::string> prod_ids;
  const Json prod =
      Api("GET", "/v1/services?filterSelector=env%3Dprod%2Cteam%20in%20%28t0%2Ct2%29&limit=1000");
  for (const Json& service : prod.at("services")) {
    prod_ids.push_back(service.at("id").get<std::string>());
  }
  std::sort(prod_ids.begin(), prod_ids.end());
  ASSERT_THAT(prod_ids, Not(IsEmpty()));
  EXPECT_LT(prod_ids.size(), ids.size());
  EXPECT_EQ(filtered, Json(prod_ids));
  Shot(*browser, "services-filtered");

  // A selector that does not parse is the API's 400, shown as such.
  const Json refused = Run(*browser, R"js(
    document.getElementById("f-selector").value = "env in (";
    document.getElementById("apply-filters").click();
    return (await waitFor("the error", () => document.querySelector("#services-result .error"))).textContent;
  )js");
  EXPECT_THAT(refused.get<std::string>(), HasSubstr("invalid filter_selector"));

  // What prom-a sees in default: the http_sd answer's targets.
  Show(*browser, "targets");
  const Json sd = Api("GET", "/v1/sd/prom-a/default");
  size_t sd_targets = 0;
  for (const Json& group : sd) {
    sd_targets += group.at("targets").size();
  }
  const Json shown_sd = Run(*browser, R"js(
    const server = document.getElementById("sd-server");
    server.value = "prom-a";
    document.getElementById("sd-namespace").value = "default";
    document.getElementById("sd-show").click();
    await waitFor("prom-a's targets", () => document.querySelector("#sd-table caption")
        ?.textContent.includes("prom-a in default"));
    return Number(document.getElementById("sd-summary").dataset.targets);
  )js");
  EXPECT_EQ(shown_sd, Json(sd_targets));
  EXPECT_GT(sd_targets, 0U);
  Shot(*browser, "targets");

  // Polls revalidate with the ETag: discoveryd answered 304s to the browser.
  absl::SleepFor(absl::Seconds(3));
  ASSERT_OK_AND_ASSIGN(const HttpResult metrics, HttpGet(server_->http_url() + "/metrics"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(discovery_http_requests_total{code="304",method="GET",)"));
}

// An admin sees the delete buttons, unregisters a stale service with a confirmation, and the
// service leaves the table and Prometheus' http_sd; a registration elsewhere shows up live.
TEST_F(WebUiTest, AdminUnregistersAStaleServiceAndItLeavesHttpSd) {
  ASSERT_NO_FATAL_FAILURE(RegisterFleet());
  const Json stale =
      Api("POST", "/v1/services",
          {{"name", "stale"}, {"endpoint", "http://stale.example.com:9100/metrics"}});
  ASSERT_EQ(stale.at("service").at("servers").size(), 1U);
  const std::string server = stale.at("service").at("servers")[0].get<std::string>();
  ASSERT_OK_AND_ASSIGN(const HttpResult before,
                       HttpRequest("GET", server_->http_url() + "/v1/sd/" + server + "/default", "",
                                   {{"Authorization", "Bearer " + admin_}}));
  ASSERT_THAT(before.body, HasSubstr("stale.example.com:9100"));

  std::unique_ptr<ChromiumProcess> browser = OpenUi();
  ASSERT_NE(browser, nullptr);
  ASSERT_NO_FATAL_FAILURE(SignInWithToken(*browser, admin_));
  EXPECT_EQ(Run(*browser, "return document.querySelectorAll('#servers-table button').length;"),
            Json(3));
  Show(*browser, "services");
  Run(*browser, R"js(
    document.getElementById("f-name").value = "^stale$";
    document.getElementById("apply-filters").click();
    await waitFor("the stale service alone", () => drawnWith("filterName") === "^stale$" &&
        document.querySelectorAll("#services-table tbody tr").length === 1);
  )js");
  // Cancel first: nothing happens.
  Run(*browser, R"js(
    document.querySelector("#services-table tbody tr button").click();
    await waitFor("the confirmation", () => document.getElementById("confirm").open);
    document.getElementById("confirm-cancel").click();
    await waitFor("the dialog to close", () => !document.getElementById("confirm").open);
  )js");
  EXPECT_EQ(Api("GET", "/v1/services?filterName=%5Estale%24").at("services").size(), 1U);
  Shot(*browser, "services-admin");
  Run(*browser, R"js(
    document.querySelector("#services-table tbody tr button").click();
    await waitFor("the confirmation", () => document.getElementById("confirm").open);
    document.getElementById("confirm-ok").click();
    await waitFor("the row to go", () =>
        document.querySelectorAll("#services-table tbody tr").length === 0 &&
        document.getElementById("status").textContent.startsWith("Unregistered"));
  )js");
  EXPECT_EQ(Api("GET", "/v1/services?filterName=%5Estale%24").at("services").size(), 0U);
  ASSERT_OK_AND_ASSIGN(const HttpResult after,
                       HttpRequest("GET", server_->http_url() + "/v1/sd/" + server + "/default", "",
                                   {{"Authorization", "Bearer " + admin_}}));
  EXPECT_EQ(after.status, 200);
  EXPECT_THAT(after.body, Not(HasSubstr("stale.example.com")));

  // Live: a service registered now appears without a reload.
  Run(*browser, R"js(
    document.getElementById("f-name").value = "^fresh$";
    document.getElementById("apply-filters").click();
    await waitFor("the empty table", () => drawnWith("filterName") === "^fresh$" &&
        document.getElementById("services-total")?.dataset.total === "0");
  )js");
  Api("POST", "/v1/services", {{"name", "fresh"}, {"endpoint", "http://fresh.example.com:9100"}});
  EXPECT_EQ(Run(*browser, R"js(
              await waitFor("the new service", () => document.getElementById("services-total").dataset.total === "1");
              return document.querySelector("#services-table tbody th").textContent;
            )js"),
            Json("fresh"));
}

// Without a mouse, at 200 % zoom: sign in, move to the services page and filter, all with
// the keyboard; nothing needs horizontal scrolling of the page; axe-core finds no serious or
// critical violation on any page.
TEST_F(WebUiTest, KeyboardOnlyAt200PercentZoomAndAxeClean) {
  ASSERT_NO_FATAL_FAILURE(RegisterFleet());
  std::unique_ptr<ChromiumProcess> browser = OpenUi(/*zoomed=*/true);
  ASSERT_NE(browser, nullptr);
  Run(*browser, R"js(
    await waitFor("the focused token field", () => document.activeElement?.id === "token");
  )js");
  EXPECT_EQ(AxeViolations(*browser), Json::array()) << "sign-in page";
  Shot(*browser, "signin-200pct");

  ASSERT_THAT(browser->Type(admin_), IsOk());
  ASSERT_THAT(browser->PressKey("Tab"), IsOk());
  EXPECT_EQ(Run(*browser, "return document.activeElement.id;"), Json("token-sign-in"));
  ASSERT_THAT(browser->PressKey("Enter"), IsOk());
  Run(*browser, R"js(
    await waitFor("the servers page", () => document.getElementById("servers-table"));
  )js");

  // Back from the page's content (focused after sign-in) to the "Services" link, and follow it.
  bool reached = false;
  for (int i = 0; i < 40 && !reached; ++i) {
    ASSERT_THAT(browser->PressKey("Tab", /*shift=*/true), IsOk());
    reached = Run(*browser, "return document.activeElement.textContent === 'Services';") == true;
  }
  ASSERT_TRUE(reached) << "Tab never reached the Services link";
  ASSERT_THAT(browser->PressKey("Enter"), IsOk());
  Run(*browser, R"js(
    await waitFor("the services table", () => document.body.dataset.page === "services" &&
                                               document.getElementById("services-table"));
  )js");
  // Tab to the label selector field, type, Enter submits.
  reached = false;
  for (int i = 0; i < 40 && !reached; ++i) {
    ASSERT_THAT(browser->PressKey("Tab"), IsOk());
    reached = Run(*browser, "return document.activeElement.id === 'f-selector';") == true;
  }
  ASSERT_TRUE(reached) << "Tab never reached the selector field";
  ASSERT_THAT(browser->Type("env=test"), IsOk());
  ASSERT_THAT(browser->PressKey("Enter"), IsOk());
  const size_t expected =
      Api("GET", "/v1/services?filterSelector=env%3Dtest").at("services").size();
  EXPECT_EQ(Run(*browser, absl::StrCat(R"js(
              await waitFor("the filtered total", () =>
                  document.getElementById("services-total")?.dataset.total === ")js",
                                       expected, R"js(");
              return Number(document.getElementById("services-total").dataset.total);
            )js")),
            Json(expected));
  // The first row's Unregister button is reachable, and Escape closes its dialog unchanged.
  reached = false;
  for (int i = 0; i < 40 && !reached; ++i) {
    ASSERT_THAT(browser->PressKey("Tab"), IsOk());
    reached = Run(*browser, "return document.activeElement.textContent === 'Unregister';") == true;
  }
  ASSERT_TRUE(reached) << "Tab never reached an Unregister button";
  ASSERT_THAT(browser->PressKey("Enter"), IsOk());
  Run(*browser, "await waitFor('the dialog', () => document.getElementById('confirm').open);");
  ASSERT_THAT(browser->PressKey("Escape"), IsOk());
  Run(*browser,
      "await waitFor('the dialog to close', () => !document.getElementById('confirm').open);");
  EXPECT_EQ(Api("GET", "/v1/services?filterSelector=env%3Dtest").at("services").size(), expected);

  EXPECT_EQ(Run(*browser, R"js(
              return document.documentElement.scrollWidth <= window.innerWidth;
            )js"),
            Json(true))
      << "the page needs horizontal scrolling at 200 % zoom";
  Shot(*browser, "services-200pct");
  EXPECT_EQ(AxeViolations(*browser), Json::array()) << "services page";
  for (const std::string page : {"servers", "namespaces", "targets"}) {
    Show(*browser, page);
    EXPECT_EQ(Run(*browser, "return document.documentElement.scrollWidth <= window.innerWidth;"),
              Json(true))
        << page;
    EXPECT_EQ(AxeViolations(*browser), Json::array()) << page;
    Shot(*browser, page + "-200pct");
  }
}

// 100,000 services, imported with the CLI: the services table shows the first page of all of
// them and pages on; how long that takes in the browser is printed, not asserted.
TEST_F(WebUiTest, PagesThroughAHundredThousandServices) {
  constexpr int kServices = 100000;
  for (const std::string name : {"prom-a", "prom-b", "prom-c"}) {
    Api("POST", "/v1/servers", {{"name", name}});
  }
  ASSERT_OK_AND_ASSIGN(const std::string home, MakeTempDir("discovery-web-ui-home"));
  std::filesystem::create_directories(home + "/.config/discovery");
  std::ofstream(home + "/.config/discovery/config.yaml")
      << fmt::format("address: {}\ninsecure: true\n", server_->grpc_address());
  std::ofstream(home + "/.config/discovery/.token") << "machine_token: " << admin_ << "\n";
  {
    std::ofstream yaml(home + "/fleet.yaml");
    for (int i = 0; i < kServices; ++i) {
      yaml << fmt::format(
          "- name: fleet-{}\n  endpoint: http://host-{}.example.com:9100/metrics\n  labels:\n"
          "    team: t{}\n    zone: z{}\n",
          i % 10, i, i % 7, i % 3);
    }
  }
  // The CLI reads this home's config and token only: no DISCOVERY_* variable of the developer's.
  std::vector<std::string> env = {"HOME=" + home, "TMPDIR=" + home};
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("DISCOVERY_")) {
      env.emplace_back(entry.substr(0, entry.find('=')));
    }
  }
  const absl::Time import_start = absl::Now();
  ASSERT_OK_AND_ASSIGN(
      const CommandResult imported,
      RunCommand({.argv = {DISCOVERY_BINARY, "service", "import", "-q", home + "/fleet.yaml"},
                  .env = env,
                  .working_dir = home},
                 absl::Minutes(20)));
  ASSERT_TRUE(imported.status.success()) << imported.err;
  std::cerr << "imported " << kServices << " services in "
            << absl::FormatDuration(absl::Now() - import_start) << "\n";
  std::filesystem::remove_all(home);

  std::unique_ptr<ChromiumProcess> browser = OpenUi();
  ASSERT_NE(browser, nullptr);
  ASSERT_NO_FATAL_FAILURE(SignInWithToken(*browser, admin_));
  const Json shown = Run(*browser, R"js(
    const start = performance.now();
    location.hash = "#/services";
    await waitFor("100,000 services", () =>
        document.getElementById("services-total")?.dataset.total === "100000", 120000);
    const first = performance.now() - start;
    const firstRow = document.querySelector("#services-table tbody tr th").textContent;
    const rows = document.querySelectorAll("#services-table tbody tr").length;
    const flip = performance.now();
    document.getElementById("next-page").click();
    await waitFor("the second page", () =>
        document.getElementById("services-range").textContent.startsWith("101–200"), 120000);
    return { first, flip: performance.now() - flip, rows, firstRow,
             range: document.getElementById("services-range").textContent };
  )js",
                         absl::Minutes(5));
  EXPECT_EQ(shown.value("rows", 0), 100);
  EXPECT_EQ(shown.value("range", ""), "101–200 of 100000");
  // Sorted by endpoint: host-0, host-1, host-10, ...
  EXPECT_EQ(shown.value("firstRow", ""), "fleet-0");
  std::cerr << "services table of " << kServices << " services shown in "
            << shown.value("first", -1.0) << " ms, next page in " << shown.value("flip", -1.0)
            << " ms\n";
  Shot(*browser, "services-100k");
}

// "Sign in" through a real OIDC provider: glewlwyd's own login page, the authorization code
// flow with PKCE as the public client --oidc-ui-client-id, back to /ui/ as the user.
TEST(WebUiOidcTest, SignInThroughGlewlwydsLoginPage) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GlewlwydProcess> glewlwyd, GlewlwydProcess::Start());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<DiscoverydProcess> server,
      DiscoverydProcess::Start(
          {.binary = DISCOVERYD_BINARY,
           .extra_args = {"--oidc-endpoint=" + glewlwyd->issuer(),
                          "--oidc-client-id=" + glewlwyd->options().client_id,
                          "--oidc-ui-client-id=discovery-ui", "--oidc-roles=discovery-admin",
                          "--oidc-username-claim=preferred_username"}}));
  ASSERT_THAT(glewlwyd->AddPublicClient("discovery-ui", server->http_url() + "/ui/"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChromiumProcess> browser,
                       ChromiumProcess::Start(server->http_url() + "/ui/"));
  const auto run = [&](const std::string& body) {
    absl::StatusOr<Json> result = browser->Evaluate(BrowserScript(body), absl::Seconds(30));
    EXPECT_TRUE(result.ok()) << result.status() << "\n--- chromium ---\n"
                             << browser->LogTail() << "\n--- glewlwyd ---\n"
                             << glewlwyd->LogTail(20) << "\n--- discoveryd ---\n"
                             << server->LogTail(10);
    return result.value_or(Json());
  };
  run(R"js(
    (await waitFor("the Sign in button", () => document.getElementById("oidc-sign-in"))).click();
  )js");
  // The provider's login page (a navigation away: poll until it has loaded). Its form is
  // React's, so the user's typing goes through the keyboard.
  bool on_login_page = false;
  for (int i = 0; i < 200 && !on_login_page; ++i) {
    absl::StatusOr<Json> state = browser->Evaluate(
        "location.href.includes('/login.html') && !!document.getElementById('username')");
    on_login_page = state.ok() && *state == Json(true);
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(on_login_page) << run("return location.href;");
  run("document.getElementById('username').focus();");
  ASSERT_THAT(browser->Type("alice"), IsOk());
  run("document.getElementById('password').focus();");
  ASSERT_THAT(browser->Type("alice-pw"), IsOk());
  run("document.getElementById('loginbut').click();");
  // Signed in at the provider: "Continue" to discovery-ui, which redirects back to /ui/.
  run(R"js(
    const next = await waitFor("the Continue button", () => [...document.querySelectorAll("button")]
        .find((button) => button.textContent.trim() === "Continue"));
    next.click();
  )js");
  bool back = false;
  for (int i = 0; i < 200 && !back; ++i) {
    absl::StatusOr<Json> state =
        browser->Evaluate(absl::StrCat("location.href.startsWith('", server->http_url(),
                                       "/ui/') && document.body.dataset.page === 'servers'"));
    back = state.ok() && *state == Json(true);
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(back) << run("return [location.href, document.body.innerText.slice(0, 600)];");
  // The code was exchanged (and removed from the address); the user's roles make it an admin.
  EXPECT_EQ(run(R"js(
              return [location.search, document.getElementById("identity").textContent,
                      !!sessionStorage.getItem("discovery.token"),
                      sessionStorage.getItem("discovery.oidc.pending")];
            )js"),
            Json::parse(R"(["", "user alice · admin", true, null])"));
  // The token works for the API as alice.
  const Json whoami = run(R"js(
    const answer = await fetch("/v1/whoami", {
        headers: { Authorization: `Bearer ${sessionStorage.getItem("discovery.token")}` } });
    return await answer.json();
  )js");
  EXPECT_EQ(whoami.value("kind", ""), "user");
  EXPECT_EQ(whoami.value("name", ""), "alice");
  EXPECT_EQ(whoami.value("admin", false), true);
  const std::string path = absl::StrCat(WEB_UI_SCREENSHOT_DIR, "/oidc-signed-in.png");
  EXPECT_THAT(browser->Screenshot(path), IsOk());
  std::cerr << "screenshot: " << path << "\n";
}

}  // namespace
}  // namespace discovery::testing
