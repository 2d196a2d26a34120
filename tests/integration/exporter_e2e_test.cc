// End-to-end tests of `discoveryd exporter` (DISCOVERYD_BINARY): the real exporter process next
// to a real discoveryd, on the embedded store (a second process on the server's data directory)
// and on a real etcd that is killed and restarted underneath it, with a real Prometheus reading
// the files through file_sd_configs.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/discoveryd_process.h"
#include "testing/etcd_harness.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/prometheus_process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::HasSubstr;

constexpr const char* kServer = "prometheus1.example.com";

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// The targets of every job file of `namespace_dir`; fails the test on a file that is not a
// valid file_sd document.
std::set<std::string> TargetsIn(const std::filesystem::path& namespace_dir) {
  std::set<std::string> targets;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(namespace_dir, error)) {
    if (entry.path().extension() != ".json") {
      continue;
    }
    std::ifstream in(entry.path());
    if (!in) {
      continue;  // removed by the exporter since the directory was listed (its job is gone)
    }
    std::ostringstream read;
    read << in.rdbuf();
    const std::string content = read.str();
    const Json groups = Json::parse(content, nullptr, false);
    EXPECT_TRUE(groups.is_array()) << entry.path() << ": " << content;
    if (!groups.is_array()) {
      continue;
    }
    for (const Json& group : groups) {
      for (const Json& target : group.value("targets", Json::array())) {
        targets.insert(target.get<std::string>());
      }
    }
  }
  return targets;
}

class ExporterE2eTest : public ::testing::Test {
 protected:
  void StartDiscoveryd(std::vector<std::string> extra_args = {}) {
    ASSERT_OK_AND_ASSIGN(discoveryd_,
                         DiscoverydProcess::Start(
                             {.binary = DISCOVERYD_BINARY, .extra_args = std::move(extra_args)}));
    ASSERT_OK_AND_ASSIGN(token_, discoveryd_->AdminToken());
    ASSERT_OK_AND_ASSIGN(root_, MakeTempDir("exporter-e2e"));
    files_ = std::filesystem::path(root_) / "file_sd";
  }

  void TearDown() override {
    exporter_.reset();
    if (!root_.empty()) {
      std::filesystem::remove_all(root_);
    }
  }

  // POST/DELETE on the REST API with the admin token; fails the test unless it answers 200.
  void Rest(const std::string& method, const std::string& path, const Json& body = nullptr) {
    absl::StatusOr<HttpResult> result =
        HttpRequest(method, discoveryd_->http_url() + path, body.is_null() ? "" : body.dump(),
                    {{"Authorization", "Bearer " + token_}});
    ASSERT_THAT(result, IsOk());
    ASSERT_EQ(result->status, 200) << method << " " << path << ": " << result->body;
  }
  void RegisterService(const std::string& name, const std::string& endpoint,
                       const std::string& ns = "default") {
    Rest("POST", "/v1/services", {{"name", name}, {"endpoint", endpoint}, {"namespace", ns}});
  }

  // `discoveryd exporter` for kServer on the store of `store_args`.
  absl::StatusOr<std::unique_ptr<ChildProcess>> LaunchExporter(
      const std::vector<std::string>& store_args, const std::string& log_name = "exporter.log") {
    std::vector<std::string> argv = {DISCOVERYD_BINARY, "--log-format=json"};
    argv.insert(argv.end(), store_args.begin(), store_args.end());
    for (const std::string& arg :
         {std::string("exporter"), "--server=" + std::string(kServer),
          "--directory=" + files_.string(), std::string("--http-listen=127.0.0.1:0"),
          std::string("--resync-interval=1h")}) {
      argv.push_back(arg);
    }
    return ChildProcess::Start({.argv = argv, .env = {"HOME=" + root_}, .working_dir = root_},
                               root_ + "/" + log_name);
  }
  std::vector<std::string> EmbeddedStoreArgs() const {
    return {"--store=embedded", "--data-dir=" + discoveryd_->data_dir()};
  }

  std::filesystem::path NamespaceDir(const std::string& ns) const { return files_ / kServer / ns; }

  // Waits until the files of `ns` hold exactly `targets`; reports how long that took.
  void ExpectFilesHold(const std::string& ns, const std::set<std::string>& targets) {
    const absl::Time start = absl::Now();
    const bool held =
        Eventually([&] { return TargetsIn(NamespaceDir(ns)) == targets; }, absl::Seconds(10));
    EXPECT_TRUE(held) << "files of " << ns << " hold "
                      << ::testing::PrintToString(TargetsIn(NamespaceDir(ns))) << ", want "
                      << ::testing::PrintToString(targets) << "\n"
                      << exporter_->LogTail();
    if (held) {
      std::cerr << "files of " << ns << " reflected the change after "
                << absl::FormatDuration(absl::Now() - start) << "\n";
    }
  }

  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string token_;
  std::string root_;
  std::filesystem::path files_;
  std::unique_ptr<ChildProcess> exporter_;
};

// The exporter runs as its own process on the data directory of a running discoveryd (embedded
// store); a real Prometheus reads its files.
TEST_F(ExporterE2eTest, EmbeddedStoreFilesFollowRegistrationsAndReachPrometheus) {
  StartDiscoveryd();
  Rest("POST", "/v1/servers", {{"name", kServer}, {"labels", {{"environment", "test"}}}});
  Rest("POST", "/v1/namespaces", {{"name", "probes"}, {"export", 2}});
  for (int i = 1; i <= 3; ++i) {
    RegisterService("node", fmt::format("http://127.0.0.1:{}/metrics", 19100 + i));
  }
  RegisterService("probe", "https://shop.example.com/health", "probes");

  ASSERT_OK_AND_ASSIGN(exporter_, LaunchExporter(EmbeddedStoreArgs()));
  ExpectFilesHold("default", {"127.0.0.1:19101", "127.0.0.1:19102", "127.0.0.1:19103"});
  ExpectFilesHold("probes", {"https://shop.example.com/health"});
  EXPECT_EQ(ReadFile(NamespaceDir("probes") / "probe.json"),
            R"([{"targets":["https://shop.example.com/health"]}])");

  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<PrometheusProcess> prometheus,
      PrometheusProcess::Start({.config_yaml = fmt::format(R"(global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: file
    file_sd_configs:
      - files: ["{}/*.json"]
        refresh_interval: 1s
)",
                                                           NamespaceDir("default").string())}));
  const auto instances = [](const Json& targets) {
    std::set<std::string> result;
    for (const Json& target : targets) {
      result.insert(target["labels"].value("instance", ""));
    }
    return result;
  };
  ASSERT_OK_AND_ASSIGN(Json targets, prometheus->AwaitActiveTargets([&](const Json& t) {
    return instances(t) ==
           std::set<std::string>{"127.0.0.1:19101", "127.0.0.1:19102", "127.0.0.1:19103"};
  }));
  EXPECT_EQ(targets[0]["labels"].value("job", ""), "node");

  // Registering, unregistering and a disabled namespace reach the files.
  RegisterService("other", "http://127.0.0.1:19200/metrics");
  ExpectFilesHold("default",
                  {"127.0.0.1:19101", "127.0.0.1:19102", "127.0.0.1:19103", "127.0.0.1:19200"});
  Rest("DELETE", "/v1/services/default?id=http%3A%2F%2F127.0.0.1%3A19200%2Fmetrics");
  ExpectFilesHold("default", {"127.0.0.1:19101", "127.0.0.1:19102", "127.0.0.1:19103"});
  EXPECT_FALSE(std::filesystem::exists(NamespaceDir("default") / "other.json"));
  Rest("POST", "/v1/namespaces", {{"name", "probes"}, {"export", 0}});
  ExpectFilesHold("probes", {});

  // A second server joins: the services placed on it leave this server's files at once
  // (docs/decisions.md D6), and Prometheus follows.
  Rest("POST", "/v1/servers", {{"name", "prometheus2.example.com"}});
  absl::StatusOr<HttpResult> listed =
      HttpRequest("GET", discoveryd_->http_url() + "/v1/services?namespace=default", "",
                  {{"Authorization", "Bearer " + token_}});
  ASSERT_THAT(listed, IsOk());
  SCOPED_TRACE("services: " + listed->body);
  std::set<std::string> mine;
  const Json services = Json::parse(listed->body);
  for (const Json& service : services["services"]) {
    for (const Json& server : service.value("servers", Json::array())) {
      if (server.get<std::string>() == kServer) {
        const std::string endpoint = service["endpoint"];
        mine.insert(endpoint.substr(7, endpoint.find("/metrics") - 7));
      }
    }
  }
  ExpectFilesHold("default", mine);
  ASSERT_THAT(prometheus->AwaitActiveTargets([&](const Json& t) { return instances(t) == mine; }),
              IsOk());

  // /metrics of the exporter counts what it did.
  EXPECT_TRUE(exporter_->IsRunning()) << exporter_->LogTail();
}

TEST_F(ExporterE2eTest, RefusesUnknownServerAndASecondExporter) {
  StartDiscoveryd();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> unknown,
                       LaunchExporter(EmbeddedStoreArgs(), "unknown.log"));
  ASSERT_OK_AND_ASSIGN(ExitStatus exit, unknown->WaitExit(absl::Seconds(30)));
  EXPECT_FALSE(exit.success());
  EXPECT_THAT(unknown->LogTail(), HasSubstr("server prometheus1.example.com not found"));

  Rest("POST", "/v1/servers", {{"name", kServer}});
  ASSERT_OK_AND_ASSIGN(exporter_, LaunchExporter(EmbeddedStoreArgs()));
  ASSERT_TRUE(
      Eventually([&] { return std::filesystem::exists(files_ / kServer); }, absl::Seconds(10)));
  ASSERT_TRUE(Eventually(
      [&] { return ReadFile(exporter_->log_path()).find("exporter running") != std::string::npos; },
      absl::Seconds(10)))
      << exporter_->LogTail();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> second,
                       LaunchExporter(EmbeddedStoreArgs(), "second.log"));
  ASSERT_OK_AND_ASSIGN(exit, second->WaitExit(absl::Seconds(30)));
  EXPECT_FALSE(exit.success());
  EXPECT_THAT(second->LogTail(), HasSubstr("another exporter"));

  // SIGTERM stops the exporter cleanly.
  ASSERT_THAT(exporter_->Signal(SIGTERM), IsOk());
  ASSERT_OK_AND_ASSIGN(exit, exporter_->WaitExit(absl::Seconds(15)));
  EXPECT_TRUE(exit.success()) << exporter_->LogTail();
}

// Lines "KEY=value" of an EnvironmentFile (comments and blank lines skipped).
std::vector<std::string> EnvironmentFile(const std::string& path) {
  std::vector<std::string> env;
  std::istringstream lines(ReadFile(path));
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] != '#' && line.find('=') != std::string::npos) {
      env.push_back(line);
    }
  }
  return env;
}

// packaging/systemd/discovery-exporter.service as systemd would run it: its ExecStart with the
// variables of packaging/default/discovery-exporter, paths and names pointed at this test.
TEST_F(ExporterE2eTest, SystemdUnitCommandLineWithItsEnvironmentFile) {
  StartDiscoveryd();
  Rest("POST", "/v1/servers", {{"name", kServer}});
  RegisterService("node", "http://127.0.0.1:19101/metrics");

  const std::string unit =
      ReadFile(DISCOVERY_SOURCE_DIR "/packaging/systemd/discovery-exporter.service");
  const std::size_t exec = unit.find("\nExecStart=");
  ASSERT_NE(exec, std::string::npos) << unit;
  std::string command_line = unit.substr(exec + 11, unit.find('\n', exec + 1) - exec - 11);
  ASSERT_TRUE(command_line.starts_with("/usr/bin/discoveryd ")) << command_line;
  command_line.replace(0, std::string("/usr/bin/discoveryd").size(), DISCOVERYD_BINARY);

  std::vector<std::string> env =
      EnvironmentFile(DISCOVERY_SOURCE_DIR "/packaging/default/discovery-exporter");
  for (const std::string name :
       {"DISCOVERY_SERVER", "DISCOVERY_DIRECTORY", "DISCOVERY_DATA_DIR", "DISCOVERY_HTTP_LISTEN"}) {
    EXPECT_TRUE(std::any_of(env.begin(), env.end(),
                            [&](const std::string& line) { return line.starts_with(name + "="); }))
        << name << " missing from the environment file";
  }
  env.emplace_back("HOME=" + root_);
  env.emplace_back("DISCOVERY_SERVER=" + std::string(kServer));
  env.emplace_back("DISCOVERY_DIRECTORY=" + files_.string());
  env.emplace_back("DISCOVERY_DATA_DIR=" + discoveryd_->data_dir());
  env.emplace_back("DISCOVERY_HTTP_LISTEN=127.0.0.1:0");
  ASSERT_OK_AND_ASSIGN(
      exporter_,
      ChildProcess::Start(
          {.argv = {"/bin/sh", "-c", "exec " + command_line}, .env = env, .working_dir = root_},
          root_ + "/unit.log"));
  ExpectFilesHold("default", {"127.0.0.1:19101"});
}

// etcd dies under a running exporter: the files stay valid, and the exporter catches up with
// what was registered after etcd came back.
TEST_F(ExporterE2eTest, SurvivesAnEtcdRestart) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<EtcdCluster> etcd, EtcdCluster::Start());
  const std::vector<std::string> store_args = {"--store=etcd",
                                               "--etcd-endpoints=" + etcd->EndpointList()};
  StartDiscoveryd(store_args);
  Rest("POST", "/v1/servers", {{"name", kServer}});
  RegisterService("node", "http://127.0.0.1:19101/metrics");
  RegisterService("node", "http://127.0.0.1:19102/metrics");
  ASSERT_OK_AND_ASSIGN(exporter_, LaunchExporter(store_args));
  ExpectFilesHold("default", {"127.0.0.1:19101", "127.0.0.1:19102"});
  const std::string before = ReadFile(NamespaceDir("default") / "node.json");

  ASSERT_THAT(etcd->Kill(0), IsOk());
  absl::SleepFor(absl::Seconds(2));
  EXPECT_TRUE(exporter_->IsRunning()) << exporter_->LogTail();
  EXPECT_EQ(ReadFile(NamespaceDir("default") / "node.json"), before);

  ASSERT_THAT(etcd->Restart(0), IsOk());
  // discoveryd reconnects on its own; retry the registration until it is accepted.
  ASSERT_TRUE(Eventually(
      [&] {
        absl::StatusOr<HttpResult> result = HttpRequest(
            "POST", discoveryd_->http_url() + "/v1/services",
            Json{{"name", "node"}, {"endpoint", "http://127.0.0.1:19103/metrics"}}.dump(),
            {{"Authorization", "Bearer " + token_}});
        return result.ok() && result->status == 200;
      },
      absl::Seconds(30)))
      << discoveryd_->LogTail();
  ExpectFilesHold("default", {"127.0.0.1:19101", "127.0.0.1:19102", "127.0.0.1:19103"});
  EXPECT_TRUE(exporter_->IsRunning()) << exporter_->LogTail();
}

}  // namespace
}  // namespace discovery::testing
