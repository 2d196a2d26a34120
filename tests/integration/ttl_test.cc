// Registrations with a TTL (docs/decisions.md D49) through the real binaries: `discovery service
// register
// --ttl --keepalive` next to discoveryd on the embedded store (with the exporter as a second
// process on its data directory) and on a real three-member etcd with two replicas. A keepalive
// killed with SIGKILL leaves http_sd and the exporter's files after its TTL; a live one keeps its
// target through a discoveryd restart, an etcd leader kill and the loss of a replica; SIGTERM
// unregisters. Waits are generous deadlines on outcomes, never measurements.
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "repo/repo.h"
#include "store/embedded/embedded_store.h"
#include "store/etcd/etcd_store.h"
#include "testing/discovery_cluster.h"
#include "testing/discoveryd_process.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif
#ifndef DISCOVERY_BINARY
#error "DISCOVERY_BINARY must name the discovery executable"
#endif
#ifndef DISCOVERY_SOURCE_DIR
#error "DISCOVERY_SOURCE_DIR must name the source tree"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kServer = "prometheus1.example.com";
// Far beyond any TTL used here: only a target that never goes fails.
constexpr absl::Duration kExpiryDeadline = absl::Seconds(60);

std::string Endpoint(int port) { return fmt::format("http://127.0.0.1:{}/metrics", port); }
std::string Target(int port) { return fmt::format("127.0.0.1:{}", port); }

// The targets of an http_sd answer (an array of target groups).
std::set<std::string> TargetsOf(const std::string& body) {
  std::set<std::string> targets;
  const Json groups = Json::parse(body, nullptr, false);
  if (!groups.is_array()) {
    return targets;
  }
  for (const Json& group : groups) {
    for (const Json& target : group.value("targets", Json::array())) {
      targets.insert(target.get<std::string>());
    }
  }
  return targets;
}

// The value of a metric without labels on `metrics_url`, or -1.
double Metric(const std::string& metrics_url, const std::string& name) {
  absl::StatusOr<HttpResult> result = HttpGet(metrics_url, absl::Seconds(5));
  if (!result.ok() || result->status != 200) {
    return -1;
  }
  std::istringstream lines(result->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(name + " ")) {
      double value = 0;
      if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) {
        return value;
      }
    }
  }
  return -1;
}

// `discovery service register --ttl <ttl> --keepalive` for `endpoints` against `address`.
absl::StatusOr<std::unique_ptr<ChildProcess>> StartKeepalive(
    const std::string& root, const std::string& address, const std::string& token,
    const std::vector<int>& ports, const std::string& ttl, const std::string& log_name) {
  const std::string token_path = root + "/token-" + log_name;
  std::ofstream(token_path) << token;
  std::vector<std::string> argv = {DISCOVERY_BINARY, "--insecure", "-a",      address,
                                   "--token-path",   token_path,   "service", "register",
                                   "node",           "--ttl",      ttl,       "--keepalive"};
  for (int port : ports) {
    argv.emplace_back("-e");
    argv.emplace_back(Endpoint(port));
  }
  return ChildProcess::Start({.argv = argv,
                              .env = {"HOME=" + root, "DISCOVERY_ADDRESS", "DISCOVERY_NAMESPACE",
                                      "DISCOVERY_ENDPOINTS", "DISCOVERY_NAME"},
                              .working_dir = root},
                             root + "/" + log_name);
}

// The one service record under namespace default of `store`, or an error.
absl::StatusOr<store::KeyValue> OnlyServiceRecord(store::Store& store) {
  absl::StatusOr<store::RangeResult> range = store.Range(repo::Keys().ServicesIn("default"));
  if (!range.ok()) {
    return range.status();
  }
  if (range->kvs.size() != 1) {
    return absl::FailedPreconditionError(
        fmt::format("{} service records, want 1", range->kvs.size()));
  }
  return range->kvs.front();
}

// The expiry `GET /v1/services` shows for the only service of namespace default.
absl::StatusOr<absl::Time> ListedExpiry(const std::string& http_url, const std::string& token) {
  absl::StatusOr<HttpResult> listed =
      HttpRequest("GET", http_url + "/v1/services?namespace=default", "",
                  {{"Authorization", "Bearer " + token}});
  if (!listed.ok()) {
    return listed.status();
  }
  const Json services = Json::parse(listed->body, nullptr, false).value("services", Json::array());
  if (services.size() != 1 || !services[0].value("expires", Json()).is_string()) {
    return absl::FailedPreconditionError("want one service with an expiry: " + listed->body);
  }
  absl::Time expires;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, services[0]["expires"].get<std::string>(), &expires,
                       &error)) {
    return absl::InvalidArgumentError(error);
  }
  return expires;
}

// Waits until the counter `name` on `metrics_url` has grown by `by` from its value now.
bool AwaitGrowth(const std::string& metrics_url, const std::string& name, double by) {
  const double from = Metric(metrics_url, name);
  return Eventually([&] { return Metric(metrics_url, name) >= from + by; }, absl::Seconds(30));
}

// ---- embedded store ----

class TtlEmbeddedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(discoveryd_, DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY,
                                                                .extra_args = {"--min-ttl=1s"}}));
    ASSERT_OK_AND_ASSIGN(token_, discoveryd_->AdminToken());
    ASSERT_OK_AND_ASSIGN(root_, MakeTempDir("ttl-e2e"));
    files_ = std::filesystem::path(root_) / "file_sd";
    ASSERT_OK_AND_ASSIGN(
        HttpResult server,
        HttpRequest("POST", discoveryd_->http_url() + "/v1/servers", Json{{"name", kServer}}.dump(),
                    {{"Authorization", "Bearer " + token_}}));
    ASSERT_EQ(server.status, 200) << server.body;
    ASSERT_OK_AND_ASSIGN(
        exporter_,
        ChildProcess::Start(
            {.argv = {DISCOVERYD_BINARY, "--log-format=json", "--store=embedded",
                      "--data-dir=" + discoveryd_->data_dir(), "exporter",
                      "--server=" + std::string(kServer), "--directory=" + files_.string(),
                      "--http-listen=127.0.0.1:0", "--resync-interval=1h"},
             .env = {"HOME=" + root_},
             .working_dir = root_},
            root_ + "/exporter.log"));
  }

  void TearDown() override {
    exporter_.reset();
    if (!root_.empty()) {
      std::filesystem::remove_all(root_);
    }
  }

  // http_sd of kServer, namespace default; nullopt while discoveryd does not answer.
  std::optional<std::set<std::string>> HttpSd() {
    absl::StatusOr<HttpResult> result =
        HttpRequest("GET", discoveryd_->http_url() + "/v1/sd/" + kServer + "/default", "",
                    {{"Authorization", "Bearer " + token_}});
    if (!result.ok() || result->status != 200) {
      return std::nullopt;
    }
    return TargetsOf(result->body);
  }

  std::set<std::string> Exported() {
    std::set<std::string> targets;
    std::error_code error;
    for (const auto& entry :
         std::filesystem::directory_iterator(files_ / kServer / "default", error)) {
      std::ifstream in(entry.path());
      std::ostringstream content;
      content << in.rdbuf();
      const std::set<std::string> in_file = TargetsOf(content.str());
      targets.insert(in_file.begin(), in_file.end());
    }
    return targets;
  }

  bool Everywhere(const std::string& target, bool present) {
    const std::optional<std::set<std::string>> sd = HttpSd();
    return sd.has_value() && sd->contains(target) == present &&
           Exported().contains(target) == present;
  }

  std::string Logs(ChildProcess* keepalive = nullptr) {
    return fmt::format("--- discoveryd\n{}\n--- exporter\n{}\n--- keepalive\n{}",
                       discoveryd_->LogTail(), exporter_->LogTail(),
                       keepalive != nullptr ? keepalive->LogTail() : "");
  }

  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string token_;
  std::string root_;
  std::filesystem::path files_;
  std::unique_ptr<ChildProcess> exporter_;
};

TEST_F(TtlEmbeddedTest, AKilledKeepaliveLeavesHttpSdAndTheExporterFilesAfterItsTtl) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> dying,
      StartKeepalive(root_, discoveryd_->grpc_address(), token_, {19201}, "3s", "dying.log"));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> living,
      StartKeepalive(root_, discoveryd_->grpc_address(), token_, {19202}, "3s", "living.log"));
  ASSERT_TRUE(
      Eventually([&] { return Everywhere(Target(19201), true) && Everywhere(Target(19202), true); },
                 absl::Seconds(30)))
      << Logs(dying.get());

  ASSERT_THAT(dying->Kill(), IsOk());
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(Eventually([&] { return Everywhere(Target(19201), false); }, kExpiryDeadline))
      << Logs(dying.get());
  std::cerr << "gone from http_sd and the exporter's files "
            << absl::FormatDuration(absl::Now() - killed) << " after the kill (TTL 3s)\n";
  EXPECT_TRUE(Everywhere(Target(19202), true)) << Logs(living.get());
  EXPECT_TRUE(living->IsRunning()) << living->LogTail();

  const std::string metrics = discoveryd_->http_url() + "/metrics";
  EXPECT_TRUE(Eventually([&] { return Metric(metrics, "discovery_services_with_ttl") == 1; },
                         absl::Seconds(10)));
  EXPECT_GE(Metric(metrics, "discovery_service_expirations_total"), 1);
  EXPECT_GE(Metric(metrics, "discovery_service_renewals_total"), 2);
}

TEST_F(TtlEmbeddedTest, ALiveKeepaliveKeepsItsTargetThroughARestartAndSigtermUnregisters) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> keepalive,
      StartKeepalive(root_, discoveryd_->grpc_address(), token_, {19211}, "10s", "keepalive.log"));
  ASSERT_TRUE(Eventually([&] { return Everywhere(Target(19211), true); }, absl::Seconds(30)))
      << Logs(keepalive.get());

  ASSERT_THAT(discoveryd_->Restart(), IsOk()) << Logs(keepalive.get());
  // Until the restarted server has renewed it four times (more than a TTL), every look at
  // http_sd and the files must show the target.
  const std::string metrics = discoveryd_->http_url() + "/metrics";
  int looks = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (Metric(metrics, "discovery_service_renewals_total") < 4 && absl::Now() < deadline) {
    const std::optional<std::set<std::string>> sd = HttpSd();
    ASSERT_TRUE(!sd.has_value() || sd->contains(Target(19211))) << Logs(keepalive.get());
    ASSERT_TRUE(Exported().contains(Target(19211))) << Logs(keepalive.get());
    ++looks;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_GE(Metric(metrics, "discovery_service_renewals_total"), 4) << Logs(keepalive.get());
  EXPECT_GT(looks, 0);
  EXPECT_THAT(keepalive->LogTail(), Not(HasSubstr("registering it again")));

  ASSERT_THAT(keepalive->Signal(SIGTERM), IsOk());
  ASSERT_OK_AND_ASSIGN(const ExitStatus exit, keepalive->WaitExit(absl::Seconds(30)));
  EXPECT_TRUE(exit.success()) << keepalive->LogTail();
  EXPECT_TRUE(Eventually([&] { return Everywhere(Target(19211), false); }, absl::Seconds(10)))
      << Logs(keepalive.get());
}

// A service the server lost (here: unregistered behind the keepalive's back, as after a restore
// of the store) is registered again by the keepalive.
TEST_F(TtlEmbeddedTest, AKeepaliveRegistersAgainWhatTheServerLost) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> keepalive,
      StartKeepalive(root_, discoveryd_->grpc_address(), token_, {19221}, "3s", "keepalive.log"));
  ASSERT_TRUE(Eventually([&] { return Everywhere(Target(19221), true); }, absl::Seconds(30)))
      << Logs(keepalive.get());
  ASSERT_OK_AND_ASSIGN(HttpResult deleted,
                       HttpRequest("DELETE",
                                   discoveryd_->http_url() + "/v1/services/default?id=" +
                                       std::string("http%3A%2F%2F127.0.0.1%3A19221%2Fmetrics"),
                                   "", {{"Authorization", "Bearer " + token_}}));
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_TRUE(Eventually(
      [&] { return keepalive->LogTail().find("registering it again") != std::string::npos; },
      absl::Seconds(30)))
      << Logs(keepalive.get());
  EXPECT_TRUE(Eventually([&] { return Everywhere(Target(19221), true); }, absl::Seconds(30)))
      << Logs(keepalive.get());
}

// A client of the Go original's protos sends no TTL: its service never expires, and lists show
// no expiry (REST prints the new message fields as null, as grpc-gateway does).
TEST_F(TtlEmbeddedTest, RegistrationsWithoutATtlStayAndListAsBefore) {
  ASSERT_OK_AND_ASSIGN(HttpResult registered,
                       HttpRequest("POST", discoveryd_->http_url() + "/v1/services",
                                   Json{{"name", "node"}, {"endpoint", Endpoint(19231)}}.dump(),
                                   {{"Authorization", "Bearer " + token_}}));
  ASSERT_EQ(registered.status, 200) << registered.body;
  const Json service = Json::parse(registered.body).at("service");
  EXPECT_TRUE(service.at("ttl").is_null());
  EXPECT_TRUE(service.at("expires").is_null());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> keepalive,
      StartKeepalive(root_, discoveryd_->grpc_address(), token_, {19232}, "2s", "keepalive.log"));
  ASSERT_TRUE(Eventually([&] { return Everywhere(Target(19232), true); }, absl::Seconds(30)));
  ASSERT_THAT(keepalive->Kill(), IsOk());
  ASSERT_TRUE(Eventually([&] { return Everywhere(Target(19232), false); }, kExpiryDeadline))
      << Logs(keepalive.get());
  EXPECT_TRUE(Everywhere(Target(19231), true)) << Logs();
}

// packaging/examples/discovery-keepalive@.service as systemd runs it for node_exporter: its
// ExecStart with its Environment= and /etc/default/node_exporter (the README's), the connection
// from the environment (the test's server, plaintext, its token).
TEST_F(TtlEmbeddedTest, TheKeepaliveUnitKeepsTheNodeExporterRegisteredUntilItStops) {
  auto lines = [](const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> result;
    for (std::string line; std::getline(in, line);) {
      result.push_back(line);
    }
    return result;
  };
  std::vector<std::string> env = {"HOME=" + root_, "DISCOVERY_ADDRESS", "DISCOVERY_NAMESPACE",
                                  "DISCOVERY_ENDPOINTS", "DISCOVERY_NAME"};
  std::vector<std::string> argv;
  for (const std::string& line :
       lines(DISCOVERY_SOURCE_DIR "/packaging/examples/discovery-keepalive@.service")) {
    if (line.starts_with("Environment=")) {
      env.push_back(line.substr(std::string_view("Environment=").size()));
    } else if (line.starts_with("ExecStart=")) {
      std::istringstream words(line.substr(std::string_view("ExecStart=").size()));
      for (std::string word; words >> word;) {
        argv.push_back(argv.empty() && word == "/usr/bin/discovery" ? DISCOVERY_BINARY : word);
      }
    }
  }
  ASSERT_FALSE(argv.empty());
  for (const std::string& line :
       lines(DISCOVERY_SOURCE_DIR "/packaging/examples/node_exporter.default")) {
    if (!line.empty() && line[0] != '#') {
      env.push_back(line);
    }
  }
  const std::string token_path = root_ + "/unit-token";
  std::ofstream(token_path) << token_;
  env.emplace_back("DISCOVERY_ADDRESS=" + discoveryd_->grpc_address());
  env.emplace_back("DISCOVERY_INSECURE=true");
  env.emplace_back("DISCOVERY_TOKEN_PATH=" + token_path);
  ASSERT_OK_AND_ASSIGN(HttpResult ns,
                       HttpRequest("POST", discoveryd_->http_url() + "/v1/namespaces",
                                   Json{{"name", "systemd"}, {"export", 1}}.dump(),
                                   {{"Authorization", "Bearer " + token_}}));
  ASSERT_EQ(ns.status, 200) << ns.body;
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> unit,
      ChildProcess::Start({.argv = argv, .env = env, .working_dir = root_}, root_ + "/unit.log"));
  auto served = [&] {
    absl::StatusOr<HttpResult> result =
        HttpRequest("GET", discoveryd_->http_url() + "/v1/sd/" + kServer + "/systemd", "",
                    {{"Authorization", "Bearer " + token_}});
    return result.ok() && result->status == 200 &&
           TargetsOf(result->body).contains("node1.example.com:9549");
  };
  ASSERT_TRUE(Eventually(served, absl::Seconds(30))) << unit->LogTail();
  // The unit says so once the registration has returned, which can be after it is served.
  EXPECT_TRUE(
      Eventually([&] { return absl::StrContains(unit->LogTail(), "keeping services alive"); },
                 absl::Seconds(30)))
      << unit->LogTail();
  ASSERT_THAT(unit->Signal(SIGTERM), IsOk());
  ASSERT_OK_AND_ASSIGN(const ExitStatus exit, unit->WaitExit(absl::Seconds(30)));
  EXPECT_TRUE(exit.success()) << unit->LogTail();
  EXPECT_FALSE(served()) << unit->LogTail();
}

// Renewals rewrite the record in place: the store's revision and the record's mod_revision stay
// while the renewals counter grows, and the target outlives the deadline its record was written
// with.
TEST_F(TtlEmbeddedTest, KeepaliveRenewalsWriteNoRevision) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> keepalive,
      StartKeepalive(root_, discoveryd_->grpc_address(), token_, {19321}, "2s", "keepalive.log"));
  ASSERT_TRUE(Eventually([&] { return Everywhere(Target(19321), true); }, absl::Seconds(30)))
      << Logs(keepalive.get());
  const std::string metrics = discoveryd_->http_url() + "/metrics";
  // The first renewal (there is nothing to move on this store, but let it settle anyway).
  ASSERT_TRUE(AwaitGrowth(metrics, "discovery_service_renewals_total", 1)) << Logs(keepalive.get());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> file,
                       store::OpenEmbeddedStore({.path = discoveryd_->data_dir() + "/discovery.db",
                                                 .reap_interval = absl::ZeroDuration()}));
  ASSERT_OK_AND_ASSIGN(const int64_t before, file->CurrentRevision());
  ASSERT_OK_AND_ASSIGN(const store::KeyValue record, OnlyServiceRecord(*file));
  // Longer than the TTL: several renewals.
  ASSERT_TRUE(AwaitGrowth(metrics, "discovery_service_renewals_total", 4)) << Logs(keepalive.get());
  EXPECT_THAT(file->CurrentRevision(), IsOkAndHolds(before));
  ASSERT_OK_AND_ASSIGN(const store::KeyValue renewed, OnlyServiceRecord(*file));
  EXPECT_EQ(renewed.mod_revision, record.mod_revision);
  EXPECT_TRUE(Everywhere(Target(19321), true)) << Logs(keepalive.get());
  // The list shows the deadline in force, not the stale one of the record (by now past).
  const absl::Time asked = absl::Now();
  ASSERT_OK_AND_ASSIGN(const absl::Time listed, ListedExpiry(discoveryd_->http_url(), token_));
  EXPECT_GT(listed, asked);
  ASSERT_THAT(keepalive->Signal(SIGTERM), IsOk());
  ASSERT_OK_AND_ASSIGN(const ExitStatus exit, keepalive->WaitExit(absl::Seconds(30)));
  EXPECT_TRUE(exit.success()) << keepalive->LogTail();
}

// ---- etcd: three members, two replicas, the exporter ----

class TtlClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(cluster_, DiscoveryCluster::Start({.discoveryd_binary = DISCOVERYD_BINARY,
                                                            .exporter_server = kServer,
                                                            .replica_args = {"--min-ttl=1s"}}));
    ASSERT_OK_AND_ASSIGN(root_, MakeTempDir("ttl-cluster"));
  }
  void TearDown() override {
    if (!root_.empty()) {
      std::filesystem::remove_all(root_);
    }
  }

  std::optional<std::set<std::string>> HttpSd(int replica) {
    absl::StatusOr<std::vector<std::string>> targets =
        cluster_->HttpSdTargets(replica, kServer, "default");
    if (!targets.ok()) {
      return std::nullopt;
    }
    return std::set<std::string>(targets->begin(), targets->end());
  }
  bool Exported(const std::string& target) {
    const std::vector<std::string> exported = cluster_->ExporterTargets("default");
    return std::find(exported.begin(), exported.end(), target) != exported.end();
  }
  // On every replica in `replicas` and in the exporter's files, `target` is (not) served.
  bool Everywhere(const std::string& target, bool present, const std::vector<int>& replicas) {
    for (int replica : replicas) {
      const std::optional<std::set<std::string>> sd = HttpSd(replica);
      if (!sd.has_value() || sd->contains(target) != present) {
        return false;
      }
    }
    return Exported(target) == present;
  }

  std::unique_ptr<DiscoveryCluster> cluster_;
  std::string root_;
};

TEST_F(TtlClusterTest, AKilledKeepaliveExpiresOnEveryReplicaAndInTheExporterFiles) {
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> keepalive,
      StartKeepalive(root_, cluster_->replica(0).grpc_address(), cluster_->admin_token(),
                     {19301, 19302}, "3s", "keepalive.log"));
  ASSERT_TRUE(Eventually(
      [&] {
        return Everywhere(Target(19301), true, {0, 1}) && Everywhere(Target(19302), true, {0, 1});
      },
      absl::Seconds(30)))
      << cluster_->LogTails() << keepalive->LogTail();
  ASSERT_THAT(keepalive->Kill(), IsOk());
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(Eventually(
      [&] {
        return Everywhere(Target(19301), false, {0, 1}) && Everywhere(Target(19302), false, {0, 1});
      },
      kExpiryDeadline))
      << cluster_->LogTails();
  std::cerr << "gone from both replicas and the exporter's files "
            << absl::FormatDuration(absl::Now() - killed) << " after the kill (TTL 3s)\n";
  const std::string metrics = cluster_->replica(1).http_url() + "/metrics";
  EXPECT_TRUE(
      Eventually([&] { return Metric(metrics, "discovery_service_expirations_total") >= 2; },
                 absl::Seconds(10)));
}

// The keepalive talks to both replicas (gRPC pick_first over their addresses). The etcd leader
// is killed, then the replica the keepalive uses: the target stays on the other replica and in
// the exporter's files throughout.
TEST_F(TtlClusterTest, ALiveKeepaliveOutlivesAnEtcdLeaderKillAndTheLossOfAReplica) {
  const std::string address = fmt::format("ipv4:{},{}", cluster_->replica(0).grpc_address(),
                                          cluster_->replica(1).grpc_address());
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<ChildProcess> keepalive,
      StartKeepalive(root_, address, cluster_->admin_token(), {19311}, "10s", "keepalive.log"));
  ASSERT_TRUE(Eventually(
      [&] {
        return Everywhere(Target(19311), true, {0, 1});
      },
      absl::Seconds(30)))
      << cluster_->LogTails() << keepalive->LogTail();

  auto expect_present = [&](absl::Duration how_long, const std::vector<int>& replicas) {
    const absl::Time until = absl::Now() + how_long;
    while (absl::Now() < until) {
      for (int replica : replicas) {
        const std::optional<std::set<std::string>> sd = HttpSd(replica);
        ASSERT_TRUE(!sd.has_value() || sd->contains(Target(19311)))
            << "replica " << replica << "\n"
            << cluster_->LogTails() << keepalive->LogTail();
      }
      ASSERT_TRUE(Exported(Target(19311))) << cluster_->LogTails() << keepalive->LogTail();
      absl::SleepFor(absl::Milliseconds(200));
    }
  };

  ASSERT_OK_AND_ASSIGN(const int leader, cluster_->etcd().WaitForLeader(absl::Seconds(10)));
  ASSERT_THAT(cluster_->etcd().Kill(leader), IsOk());
  ASSERT_OK_AND_ASSIGN(const int new_leader, cluster_->etcd().WaitForLeader(absl::Seconds(30)));
  std::cerr << "killed etcd leader " << leader << "; member " << new_leader << " leads\n";
  // Longer than the TTL: renewals went on through the new leader.
  expect_present(absl::Seconds(15), {0, 1});

  ASSERT_THAT(cluster_->replica(0).Kill(), IsOk());
  expect_present(absl::Seconds(15), {1});
  EXPECT_TRUE(keepalive->IsRunning()) << keepalive->LogTail();

  ASSERT_THAT(keepalive->Signal(SIGTERM), IsOk());
  ASSERT_OK_AND_ASSIGN(const ExitStatus exit, keepalive->WaitExit(absl::Seconds(30)));
  EXPECT_TRUE(exit.success()) << keepalive->LogTail();
  EXPECT_TRUE(Eventually([&] { return Everywhere(Target(19311), false, {1}); }, absl::Seconds(15)))
      << cluster_->LogTails();
  ASSERT_THAT(cluster_->etcd().Restart(leader), IsOk());
}

// On etcd the keepalive's set moves onto its lease once; then renewals are lease keepalives: the
// record's mod_revision stays while the renewals counters grow, on whichever replica renews.
TEST_F(TtlClusterTest, KeepaliveRenewalsWriteNoRevisionOnceTheSetHasMoved) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> keepalive,
                       StartKeepalive(root_, cluster_->replica(0).grpc_address(),
                                      cluster_->admin_token(), {19331}, "2s", "keepalive.log"));
  ASSERT_TRUE(Eventually(
      [&] {
        return Everywhere(Target(19331), true, {0, 1});
      },
      absl::Seconds(30)))
      << cluster_->LogTails() << keepalive->LogTail();
  const std::string metrics = cluster_->replica(0).http_url() + "/metrics";
  ASSERT_TRUE(AwaitGrowth(metrics, "discovery_service_renewals_total", 2))
      << cluster_->LogTails() << keepalive->LogTail();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> etcd,
                       store::ConnectEtcdStore({.endpoints = cluster_->etcd().endpoints()}));
  ASSERT_OK_AND_ASSIGN(const store::KeyValue record, OnlyServiceRecord(*etcd));
  EXPECT_TRUE(etcd->RenewsInPlace(record)) << "lease " << record.lease;
  ASSERT_TRUE(AwaitGrowth(metrics, "discovery_service_renewals_total", 4))
      << cluster_->LogTails() << keepalive->LogTail();
  ASSERT_OK_AND_ASSIGN(const store::KeyValue renewed, OnlyServiceRecord(*etcd));
  EXPECT_EQ(renewed.mod_revision, record.mod_revision);
  EXPECT_EQ(renewed.lease, record.lease);
  EXPECT_TRUE(Everywhere(Target(19331), true, {0, 1})) << cluster_->LogTails();
  // Either replica lists the deadline in force (its set's lease), not the record's stale one.
  for (int replica : {0, 1}) {
    const absl::Time asked = absl::Now();
    ASSERT_OK_AND_ASSIGN(
        const absl::Time listed,
        ListedExpiry(cluster_->replica(replica).http_url(), cluster_->admin_token()));
    EXPECT_GT(listed, asked) << "replica " << replica;
  }
  ASSERT_THAT(keepalive->Signal(SIGTERM), IsOk());
  ASSERT_OK_AND_ASSIGN(const ExitStatus exit, keepalive->WaitExit(absl::Seconds(30)));
  EXPECT_TRUE(exit.success()) << keepalive->LogTail();
}

}  // namespace
}  // namespace discovery::testing
