// A real Prometheus (Debian's /usr/bin/prometheus) discovering its targets from a real discoveryd
// (embedded store) through http_sd_configs, configured as the README shows: bearer token in
// `authorization`, URL /v1/sd/<server>/<namespace>[?export-config=...]. Prometheus authenticates
// with a machine token for `default` only (machine tokens may read http_sd, docs/decisions.md D32),
// services are registered and unregistered over REST with the admin token, and every check reads
// what Prometheus itself reports in /api/v1/targets (docs/decisions.md D30):
//   * standard export: one target per service with job, instance, __scheme__,
//     __metrics_path__, __param_<k> and the service labels; scrapeable endpoints turn "up";
//   * a blackbox namespace (no config parameter: the namespace's export config applies) hands
//     Prometheus the endpoint URL as __address__, which the usual relabeling turns into
//     ?target=;
//   * registering and unregistering reach Prometheus' active targets;
//   * a job with a wrong token gets no targets, its refreshes fail, Prometheus keeps running.
// Prometheus pushes SD changes to its scrape manager at most every 5 s, so every check polls
// with a deadline instead of sleeping.
#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "common/format.h"
#include "common/status_macros.h"
#include "compress/gzip.h"
#include "testing/discoveryd_process.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/prometheus_process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif
#ifndef DISCOVERY_SOURCE_DIR
#error "DISCOVERY_SOURCE_DIR must name the source tree"
#endif

namespace discovery::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Not;

constexpr const char* kServer = "prometheus1.example.com";
// Prometheus batches discovery updates every 5 s; a change shows after about 4-6 s.
constexpr absl::Duration kDeadline = absl::Seconds(30);

// prometheus.yml, a fmt format string: {sd} = http://<discoveryd>/v1/sd/<server>, {token} = the
// machine token, {forged} = a token discoveryd did not sign, {blackbox} = the exporter's port.
constexpr const char* kPrometheusConfig = R"(global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: http
    http_sd_configs:
      - url: "{sd}/default?export-config=standard"
        refresh_interval: 1s
        authorization: {{type: Bearer, credentials: "{token}"}}
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    http_sd_configs:
      - url: "{sd}/probes"
        refresh_interval: 1s
        authorization: {{type: Bearer, credentials: "{token}"}}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: "127.0.0.1:{blackbox}"
  - job_name: changes
    http_sd_configs:
      - url: "{sd}/changes?config=standard"
        refresh_interval: 1s
        authorization: {{type: Bearer, credentials: "{token}"}}
  - job_name: wrong-token
    http_sd_configs:
      - url: "{sd}/default?export-config=standard"
        refresh_interval: 1s
        authorization: {{type: Bearer, credentials: "{forged}"}}
)";

using LabelMap = std::map<std::string, std::string>;

// Matches a LabelMap holding every label of `expected` with the same value (and maybe more).
MATCHER_P(HasLabels, expected, "has the labels " + ::testing::PrintToString(expected)) {
  bool ok = true;
  for (const auto& [name, value] : expected) {
    const auto it = arg.find(name);
    if (it == arg.end()) {
      *result_listener << "\nno label " << name;
      ok = false;
    } else if (it->second != value) {
      *result_listener << "\nlabel " << name << " is \"" << it->second << "\", not \"" << value
                       << "\"";
      ok = false;
    }
  }
  return ok;
}

LabelMap ToLabelMap(const nlohmann::json& object) {
  LabelMap labels;
  for (const auto& [name, value] : object.items()) {
    labels[name] = value.get<std::string>();
  }
  return labels;
}

// The active targets of scrape pool (= job_name) `pool`.
std::vector<nlohmann::json> PoolTargets(const nlohmann::json& targets, const std::string& pool) {
  std::vector<nlohmann::json> result;
  for (const nlohmann::json& target : targets) {
    if (target.value("scrapePool", "") == pool) {
      result.push_back(target);
    }
  }
  return result;
}

// The `instance` labels of the active targets of `pool`.
std::multiset<std::string> PoolInstances(const nlohmann::json& targets, const std::string& pool) {
  std::multiset<std::string> instances;
  for (const nlohmann::json& target : PoolTargets(targets, pool)) {
    instances.insert(target.at("labels").value("instance", ""));
  }
  return instances;
}

// The target of `pool` whose `instance` label is `instance`, or null.
const nlohmann::json* FindTarget(const nlohmann::json& targets, const std::string& pool,
                                 const std::string& instance) {
  for (const nlohmann::json& target : targets) {
    if (target.value("scrapePool", "") == pool &&
        target.at("labels").value("instance", "") == instance) {
      return &target;
    }
  }
  return nullptr;
}

// Sums the samples of counter `name` (any labels) in a Prometheus text exposition.
absl::StatusOr<double> CounterValue(const std::string& exposition, const std::string& name) {
  double sum = 0;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::ConsumePrefix(&line, name)) {
      continue;
    }
    if (!line.empty() && line[0] == '{') {
      const size_t end = line.find('}');
      if (end == absl::string_view::npos) {
        continue;
      }
      line.remove_prefix(end + 1);
    }
    if (line.empty() || line[0] != ' ') {
      continue;  // another metric with `name` as prefix
    }
    double value = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(line), &value)) {
      return absl::InternalError(fmt::format("unparsable sample of {}: {}", name, line));
    }
    sum += value;
    found = true;
  }
  if (!found) {
    return absl::NotFoundError(fmt::format("no {} in the exposition", name));
  }
  return sum;
}

// One discoveryd with server prometheus1.example.com and namespaces default (standard),
// probes (blackbox) and changes (standard), and one Prometheus scraping four http_sd jobs:
//   http         default?export-config=standard   (the README's example)
//   blackbox     probes, relabelled for a blackbox exporter
//   changes      changes?config=standard
//   wrong-token  default?export-config=standard with a forged token
// Shared by all tests (starting Prometheus and waiting for its first SD batch costs ~6 s); every
// test reads a job of its own, so they may run in any order.
class PrometheusHttpSdTest : public ::testing::Test {
 protected:
  struct Environment {
    std::unique_ptr<DiscoverydProcess> discoveryd;
    std::unique_ptr<PrometheusProcess> prometheus;
    std::string admin_token;
    std::string machine_token;
    std::string forged_token;
    int blackbox_port = 0;  // nobody listens: the probes' scrapes fail, their labels are checked
    std::map<std::string, std::string> service_ids;  // service name -> id
  };

  static void SetUpTestSuite() {
    shared_env = new Environment;
    shared_setup = new absl::Status(Start(*shared_env));
  }

  static void TearDownTestSuite() {
    if (shared_env->prometheus != nullptr && shared_env->prometheus->IsRunning()) {
      EXPECT_THAT(shared_env->prometheus->Stop(), IsOk());
    }
    if (shared_env->discoveryd != nullptr && shared_env->discoveryd->IsRunning()) {
      EXPECT_THAT(shared_env->discoveryd->Stop(), IsOk());
    }
    delete shared_env;
    shared_env = nullptr;
    delete shared_setup;
    shared_setup = nullptr;
  }

  void SetUp() override { ASSERT_THAT(*shared_setup, IsOk()); }

  static std::string SdUrl(const std::string& namespace_and_query) {
    return fmt::format("{}/v1/sd/{}/{}", shared_env->discoveryd->http_url(), kServer,
                       namespace_and_query);
  }

  // `method` `path` on discoveryd's REST API with the admin token; the JSON answer of a 200.
  static absl::StatusOr<nlohmann::json> Rest(const std::string& method, const std::string& path,
                                             const nlohmann::json& body = nullptr) {
    HttpHeaders headers = {{"Authorization", "Bearer " + shared_env->admin_token}};
    std::string payload;
    if (!body.is_null()) {
      payload = body.dump();
      headers.emplace_back("Content-Type", "application/json");
    }
    DISCOVERY_ASSIGN_OR_RETURN(
        HttpResult result,
        HttpRequest(method, shared_env->discoveryd->http_url() + path, payload, headers));
    if (result.status != 200) {
      return absl::InternalError(
          fmt::format("{} {} answered {}: {}", method, path, result.status, result.body));
    }
    nlohmann::json answer = nlohmann::json::parse(result.body, nullptr, /*allow_exceptions=*/false);
    if (answer.is_discarded()) {
      return absl::InternalError(fmt::format("{} {}: not JSON: {}", method, path, result.body));
    }
    return answer;
  }

  // Registers a service on the server (selector environment=test, as in the README) and
  // remembers its id under `name`.
  static absl::Status RegisterService(const std::string& ns, const std::string& name,
                                      const std::string& endpoint, const LabelMap& labels) {
    DISCOVERY_ASSIGN_OR_RETURN(nlohmann::json answer, Rest("POST", "/v1/services",
                                                           {{"name", name},
                                                            {"endpoint", endpoint},
                                                            {"namespace", ns},
                                                            {"labels", labels},
                                                            {"selector", "environment=test"}}));
    const std::string id = answer.value("service", nlohmann::json::object()).value("id", "");
    if (id.empty()) {
      return absl::InternalError("registered service without id: " + answer.dump());
    }
    shared_env->service_ids[name] = id;
    return absl::OkStatus();
  }

  // Prometheus' own counter `name`.
  static absl::StatusOr<double> PrometheusCounter(const std::string& name) {
    DISCOVERY_ASSIGN_OR_RETURN(HttpResult metrics,
                               HttpGet(shared_env->prometheus->url() + "/metrics"));
    if (metrics.status != 200) {
      return absl::InternalError(fmt::format("Prometheus /metrics answered {}", metrics.status));
    }
    return CounterValue(metrics.body, name);
  }

  static Environment* shared_env;
  static absl::Status* shared_setup;

 private:
  static absl::Status Start(Environment& env) {
    DISCOVERY_ASSIGN_OR_RETURN(env.discoveryd,
                               DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
    DISCOVERY_ASSIGN_OR_RETURN(env.admin_token, env.discoveryd->AdminToken());
    DISCOVERY_ASSIGN_OR_RETURN(env.machine_token,
                               env.discoveryd->MachineToken("prometheus", {"default"}));
    // A token that is well-formed but not signed by this server: the machine token's header
    // and payload with the admin token's signature.
    const std::vector<std::string> machine = absl::StrSplit(env.machine_token, '.');
    const std::vector<std::string> admin = absl::StrSplit(env.admin_token, '.');
    if (machine.size() != 3 || admin.size() != 3 || machine[2] == admin[2]) {
      return absl::InternalError("tokens are not distinct JWTs");
    }
    env.forged_token = fmt::format("{}.{}.{}", machine[0], machine[1], admin[2]);
    DISCOVERY_ASSIGN_OR_RETURN(std::vector<int> ports, FreePorts(1));
    env.blackbox_port = ports[0];

    DISCOVERY_RETURN_IF_ERROR(
        Rest("POST", "/v1/servers", {{"name", kServer}, {"labels", {{"environment", "test"}}}})
            .status());
    DISCOVERY_RETURN_IF_ERROR(
        Rest("POST", "/v1/namespaces", {{"name", "probes"}, {"export", 2}}).status());
    DISCOVERY_RETURN_IF_ERROR(
        Rest("POST", "/v1/namespaces", {{"name", "changes"}, {"export", 1}}).status());

    // discoveryd's own /metrics: scrapeable without a token.
    DISCOVERY_RETURN_IF_ERROR(RegisterService(
        "default", "discoveryd",
        fmt::format("http://127.0.0.1:{}/metrics", env.discoveryd->http_port()), {{"team", "sd"}}));
    // Never resolves (.invalid): only its labels matter.
    DISCOVERY_RETURN_IF_ERROR(RegisterService("default", "node",
                                              "https://node1.invalid:9100/custom/path/",
                                              {{"environment", "prod"}, {"rack", "r1"}}));
    DISCOVERY_RETURN_IF_ERROR(
        RegisterService("probes", "example-org", "https://example.org", {{"team", "web"}}));
    DISCOVERY_RETURN_IF_ERROR(
        RegisterService("changes", "alpha", "http://alpha.invalid:9100/metrics", {{"tier", "a"}}));
    DISCOVERY_RETURN_IF_ERROR(
        RegisterService("changes", "beta", "http://beta.invalid:9100/metrics", {{"tier", "b"}}));

    const std::string sd = env.discoveryd->http_url() + "/v1/sd/" + kServer;
    DISCOVERY_ASSIGN_OR_RETURN(
        env.prometheus,
        PrometheusProcess::Start(
            {.config_yaml = fmt::format(
                 kPrometheusConfig, fmt::arg("sd", sd), fmt::arg("token", env.machine_token),
                 fmt::arg("forged", env.forged_token), fmt::arg("blackbox", env.blackbox_port))}));
    // Prometheus' own /metrics, with a query parameter that it ignores.
    return RegisterService(
        "default", "prometheus",
        fmt::format("http://127.0.0.1:{}/metrics?module=self", env.prometheus->port()),
        {{"team", "monitoring"}});
  }
};

PrometheusHttpSdTest::Environment* PrometheusHttpSdTest::shared_env = nullptr;
absl::Status* PrometheusHttpSdTest::shared_setup = nullptr;

TEST_F(PrometheusHttpSdTest, StandardExportGivesOneLabelledTargetPerService) {
  const std::string discoveryd = fmt::format("127.0.0.1:{}", shared_env->discoveryd->http_port());
  const std::string prometheus = fmt::format("127.0.0.1:{}", shared_env->prometheus->port());
  const std::string node = "node1.invalid:9100";
  // What Prometheus reads, for the failure messages.
  ASSERT_OK_AND_ASSIGN(HttpResult sd,
                       HttpRequest("GET", SdUrl("default?export-config=standard"), "",
                                   {{"Authorization", "Bearer " + shared_env->machine_token}}));
  ASSERT_EQ(sd.status, 200) << sd.body;

  ASSERT_OK_AND_ASSIGN(nlohmann::json targets, shared_env->prometheus->AwaitActiveTargets(
                                                   [&](const nlohmann::json& t) {
                                                     return PoolInstances(t, "http") ==
                                                            std::multiset<std::string>{
                                                                discoveryd, prometheus, node};
                                                   },
                                                   kDeadline));
  SCOPED_TRACE("http_sd answer: " + sd.body);

  const nlohmann::json* own = FindTarget(targets, "http", discoveryd);
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(ToLabelMap(own->at("labels")),
            (LabelMap{{"instance", discoveryd}, {"job", "discoveryd"}, {"team", "sd"}}));
  EXPECT_THAT(ToLabelMap(own->at("discoveredLabels")),
              HasLabels(LabelMap{{"__address__", discoveryd},
                                 {"__scheme__", "http"},
                                 {"__metrics_path__", "/metrics"},
                                 {"job", "discoveryd"},
                                 {"instance", discoveryd},
                                 {"team", "sd"},
                                 {"__meta_url", SdUrl("default?export-config=standard")}}));
  EXPECT_EQ(own->value("scrapeUrl", ""), fmt::format("http://{}/metrics", discoveryd));

  const nlohmann::json* self = FindTarget(targets, "http", prometheus);
  ASSERT_NE(self, nullptr);
  EXPECT_EQ(ToLabelMap(self->at("labels")),
            (LabelMap{{"instance", prometheus}, {"job", "prometheus"}, {"team", "monitoring"}}));
  EXPECT_THAT(ToLabelMap(self->at("discoveredLabels")),
              HasLabels(LabelMap{{"__address__", prometheus},
                                 {"__scheme__", "http"},
                                 {"__metrics_path__", "/metrics"},
                                 {"__param_module", "self"},
                                 {"job", "prometheus"},
                                 {"instance", prometheus},
                                 {"team", "monitoring"}}));
  EXPECT_EQ(self->value("scrapeUrl", ""), fmt::format("http://{}/metrics?module=self", prometheus));

  const nlohmann::json* remote = FindTarget(targets, "http", node);
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(
      ToLabelMap(remote->at("labels")),
      (LabelMap{{"environment", "prod"}, {"instance", node}, {"job", "node"}, {"rack", "r1"}}));
  EXPECT_THAT(
      ToLabelMap(remote->at("discoveredLabels")),
      HasLabels(LabelMap{
          {"__address__", node}, {"__scheme__", "https"}, {"__metrics_path__", "/custom/path"}}));
  EXPECT_THAT(ToLabelMap(remote->at("discoveredLabels")), Not(Contains(Key(HasSubstr("param")))));
  EXPECT_EQ(remote->value("scrapeUrl", ""), fmt::format("https://{}/custom/path", node));

  // The two local endpoints are scraped successfully with the labels from http_sd (discoveryd's
  // /metrics must be valid exposition format for this).
  ASSERT_OK_AND_ASSIGN(targets, shared_env->prometheus->AwaitActiveTargets(
                                    [&](const nlohmann::json& t) {
                                      const nlohmann::json* a = FindTarget(t, "http", discoveryd);
                                      const nlohmann::json* b = FindTarget(t, "http", prometheus);
                                      return a != nullptr && b != nullptr &&
                                             a->value("health", "") == "up" &&
                                             b->value("health", "") == "up";
                                    },
                                    kDeadline));
}

// discoveryd's byte counter of http_sd answers by encoding, from its own /metrics.
double SdBodyBytes(const DiscoverydProcess& discoveryd, std::string_view encoding) {
  absl::StatusOr<HttpResult> metrics =
      HttpGet(fmt::format("http://127.0.0.1:{}/metrics", discoveryd.http_port()));
  EXPECT_THAT(metrics, IsOk());
  if (!metrics.ok()) {
    return -1;
  }
  for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
    if (absl::StartsWith(line, "discovery_http_response_body_bytes_total{") &&
        absl::StrContains(line, R"(route="/v1/sd/{server}/{namespace}")") &&
        absl::StrContains(line, fmt::format(R"(encoding="{}")", encoding))) {
      double bytes = 0;
      EXPECT_TRUE(absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &bytes)) << line;
      return bytes;
    }
  }
  return 0;
}

// Each client gets the encoding it asks for. Debian's Prometheus 2.42 sends no Accept-Encoding
// on its http_sd refreshes (only Accept: application/json), so it is answered in identity and
// reads its targets; a client that asks for gzip gets the compressed body, which decodes to
// the same answer. discoveryd's byte counter shows both.
// The http_sd_configs block the README prints (packaging/examples/prometheus-http-sd.yml):
// the machine token in a credentials_file, refresh_interval set. Only its URL's host and the
// token file's path are this test's.
TEST_F(PrometheusHttpSdTest, ReadmeConfigWithACredentialsFile) {
  std::ifstream in(std::string(DISCOVERY_SOURCE_DIR) +
                   "/packaging/examples/prometheus-http-sd.yml");
  std::ostringstream content;
  content << in.rdbuf();
  std::string yaml = content.str();
  ASSERT_OK_AND_ASSIGN(const std::string dir, MakeTempDir("readme-prometheus"));
  const std::string token_file = dir + "/discovery.token";
  std::ofstream(token_file) << shared_env->machine_token << "\n";
  const std::array<std::pair<std::string, std::string>, 2> replacements = {
      {{"http://discovery.example.com:3002", shared_env->discoveryd->http_url()},
       {"/etc/prometheus/discovery.token", token_file}}};
  for (const auto& [from, to] : replacements) {
    const size_t at = yaml.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in\n" << yaml;
    yaml.replace(at, from.size(), to);
  }
  ASSERT_THAT(yaml, HasSubstr("refresh_interval:"));
  ASSERT_THAT(yaml, HasSubstr("type: Bearer"));
  ASSERT_THAT(yaml, HasSubstr(fmt::format("/v1/sd/{}/default", kServer)));

  // What discoveryd answers for that URL, as instances.
  ASSERT_OK_AND_ASSIGN(HttpResult sd,
                       HttpRequest("GET", SdUrl("default"), "",
                                   {{"Authorization", "Bearer " + shared_env->machine_token}}));
  ASSERT_EQ(sd.status, 200) << sd.body;
  std::multiset<std::string> expected;
  for (const nlohmann::json& group : nlohmann::json::parse(sd.body)) {
    for (const nlohmann::json& target : group["targets"]) {
      expected.insert(target.get<std::string>());
    }
  }
  ASSERT_FALSE(expected.empty());

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PrometheusProcess> prometheus,
                       PrometheusProcess::Start({.config_yaml = yaml}));
  EXPECT_THAT(
      prometheus->AwaitActiveTargets(
          [&](const nlohmann::json& t) { return PoolInstances(t, "discovery") == expected; },
          kDeadline),
      IsOk())
      << yaml;
  EXPECT_THAT(prometheus->Stop(), IsOk());
  std::filesystem::remove_all(dir);
}

TEST_F(PrometheusHttpSdTest, EveryClientGetsTheEncodingItAsksFor) {
  const std::string node = "node1.invalid:9100";
  ASSERT_OK_AND_ASSIGN(nlohmann::json targets, shared_env->prometheus->AwaitActiveTargets(
                                                   [&](const nlohmann::json& t) {
                                                     return PoolInstances(t, "http").contains(node);
                                                   },
                                                   kDeadline));
  EXPECT_GT(SdBodyBytes(*shared_env->discoveryd, "identity"), 0);
  const double gzip_before = SdBodyBytes(*shared_env->discoveryd, "gzip");
  ASSERT_OK_AND_ASSIGN(HttpResult identity,
                       HttpRequest("GET", SdUrl("default"), "",
                                   {{"Authorization", "Bearer " + shared_env->machine_token}}));
  ASSERT_OK_AND_ASSIGN(HttpResult gzipped,
                       HttpRequest("GET", SdUrl("default"), "",
                                   {{"Authorization", "Bearer " + shared_env->machine_token},
                                    {"Accept-Encoding", "gzip"}}));
  ASSERT_EQ(gzipped.status, 200);
  EXPECT_THAT(gzipped.headers,
              Contains(std::pair<std::string, std::string>("content-encoding", "gzip")));
  EXPECT_THAT(compress::Gunzip(gzipped.body), ::discovery::testing::IsOkAndHolds(identity.body));
  EXPECT_EQ(SdBodyBytes(*shared_env->discoveryd, "gzip") - gzip_before,
            static_cast<double>(gzipped.body.size()));
}

TEST_F(PrometheusHttpSdTest, BlackboxNamespaceHandsOverTheEndpointUrl) {
  ASSERT_OK_AND_ASSIGN(HttpResult sd,
                       HttpRequest("GET", SdUrl("probes"), "",
                                   {{"Authorization", "Bearer " + shared_env->machine_token}}));
  ASSERT_EQ(sd.status, 200) << sd.body;
  SCOPED_TRACE("http_sd answer: " + sd.body);

  const std::string url = "https://example.org";
  ASSERT_OK_AND_ASSIGN(nlohmann::json targets, shared_env->prometheus->AwaitActiveTargets(
                                                   [&](const nlohmann::json& t) {
                                                     return PoolInstances(t, "blackbox") ==
                                                            std::multiset<std::string>{url};
                                                   },
                                                   kDeadline));
  const nlohmann::json* probe = FindTarget(targets, "blackbox", url);
  ASSERT_NE(probe, nullptr);
  // No job label from the group: job_name applies; the service's own labels come through.
  EXPECT_EQ(ToLabelMap(probe->at("labels")),
            (LabelMap{{"instance", url}, {"job", "blackbox"}, {"team", "web"}}));
  const LabelMap discovered = ToLabelMap(probe->at("discoveredLabels"));
  EXPECT_THAT(discovered, HasLabels(LabelMap{{"__address__", url},
                                             {"team", "web"},
                                             {"job", "blackbox"},
                                             {"__metrics_path__", "/probe"},
                                             {"__scheme__", "http"}}));
  EXPECT_THAT(discovered, Not(Contains(Key("instance"))));
  EXPECT_EQ(
      probe->value("scrapeUrl", ""),
      fmt::format("http://127.0.0.1:{}/probe?module=http_2xx&target=https%3A%2F%2Fexample.org",
                  shared_env->blackbox_port));
}

TEST_F(PrometheusHttpSdTest, RegisteringAndUnregisteringReachPrometheus) {
  const std::string alpha = "alpha.invalid:9100";
  const std::string beta = "beta.invalid:9100";
  const std::string gamma = "gamma.invalid:9100";
  ASSERT_OK_AND_ASSIGN(
      nlohmann::json targets,
      shared_env->prometheus->AwaitActiveTargets(
          [&](const nlohmann::json& t) {
            return PoolInstances(t, "changes") == std::multiset<std::string>{alpha, beta};
          },
          kDeadline));

  absl::Time start = absl::Now();
  ASSERT_THAT(
      Rest("DELETE", "/v1/services/changes?id=" + shared_env->service_ids.at("alpha")).status(),
      IsOk());
  ASSERT_OK_AND_ASSIGN(targets, shared_env->prometheus->AwaitActiveTargets(
                                    [&](const nlohmann::json& t) {
                                      return PoolInstances(t, "changes") ==
                                             std::multiset<std::string>{beta};
                                    },
                                    kDeadline));
  fmt::print("unregistration reached Prometheus after {}\n",
             absl::FormatDuration(absl::Now() - start));

  start = absl::Now();
  ASSERT_THAT(
      RegisterService("changes", "gamma", "http://gamma.invalid:9100/metrics", {{"tier", "c"}}),
      IsOk());
  ASSERT_OK_AND_ASSIGN(
      targets, shared_env->prometheus->AwaitActiveTargets(
                   [&](const nlohmann::json& t) {
                     return PoolInstances(t, "changes") == std::multiset<std::string>{beta, gamma};
                   },
                   kDeadline));
  fmt::print("registration reached Prometheus after {}\n",
             absl::FormatDuration(absl::Now() - start));
  const nlohmann::json* added = FindTarget(targets, "changes", gamma);
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(ToLabelMap(added->at("labels")),
            (LabelMap{{"instance", gamma}, {"job", "gamma"}, {"tier", "c"}}));
  const nlohmann::json* kept = FindTarget(targets, "changes", beta);
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(ToLabelMap(kept->at("labels")),
            (LabelMap{{"instance", beta}, {"job", "beta"}, {"tier", "b"}}));
}

TEST_F(PrometheusHttpSdTest, WrongTokenGetsNoTargetsAndPrometheusKeepsRunning) {
  // discoveryd itself refuses the forged token and accepts the machine token.
  ASSERT_OK_AND_ASSIGN(HttpResult refused,
                       HttpRequest("GET", SdUrl("default?export-config=standard"), "",
                                   {{"Authorization", "Bearer " + shared_env->forged_token}}));
  EXPECT_EQ(refused.status, 401) << refused.body;
  ASSERT_OK_AND_ASSIGN(HttpResult accepted,
                       HttpRequest("GET", SdUrl("default?export-config=standard"), "",
                                   {{"Authorization", "Bearer " + shared_env->machine_token}}));
  EXPECT_EQ(accepted.status, 200) << accepted.body;

  // The same URL with the machine token does produce targets (job `http`).
  ASSERT_OK_AND_ASSIGN(
      nlohmann::json targets,
      shared_env->prometheus->AwaitActiveTargets(
          [](const nlohmann::json& t) { return !PoolTargets(t, "http").empty(); }, kDeadline));

  // Every refresh of job wrong-token (one a second) fails. Wait until more refreshes have failed
  // than fit into one 5 s discovery batch after the good job had its targets, so a wrongly
  // accepted token would have shown its targets by then.
  ASSERT_OK_AND_ASSIGN(const double failures_before,
                       PrometheusCounter("prometheus_sd_http_failures_total"));
  const absl::Time deadline = absl::Now() + kDeadline;
  double failures = failures_before;
  while (failures < failures_before + 7 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    ASSERT_OK_AND_ASSIGN(failures, PrometheusCounter("prometheus_sd_http_failures_total"));
  }
  ASSERT_GE(failures, failures_before + 7)
      << "Prometheus' http_sd refreshes with the forged token do not fail\n"
      << shared_env->prometheus->LogTail();

  ASSERT_OK_AND_ASSIGN(targets, shared_env->prometheus->ActiveTargets());
  EXPECT_THAT(PoolTargets(targets, "wrong-token"), ::testing::IsEmpty()) << targets.dump(2);
  EXPECT_FALSE(PoolTargets(targets, "http").empty());
  EXPECT_TRUE(shared_env->prometheus->IsRunning());
  ASSERT_OK_AND_ASSIGN(HttpResult healthy, HttpGet(shared_env->prometheus->url() + "/-/healthy"));
  EXPECT_EQ(healthy.status, 200);
  EXPECT_THAT(shared_env->prometheus->LogTail(200), HasSubstr("config=wrong-token"));
}

}  // namespace
}  // namespace discovery::testing
