// Stored records that cannot be served (docs/decisions.md D36, D37), end to end: the real
// discoveryd and `discoveryd exporter` (DISCOVERYD_BINARY) and the `discovery` CLI
// (DISCOVERY_BINARY) on the embedded store and on a real etcd. The test writes records straight
// into the store, as the Go original or an older release left them (an endpoint "localhost:9100", a
// 300-character job name, a label over the size limit), next to services registered through the
// API, and checks that http_sd and ListTargetGroup answer the good services only, that the exporter
// writes their files and keeps syncing, that `service list` shows the bad records with the reason,
// that discovery_invalid_records counts them and that `service unregister` removes them.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "model/model.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "repo/codec.h"
#include "repo/repo.h"
#include "store/embedded/embedded_store.h"
#include "store/etcd/etcd_store.h"
#include "store/store.h"
#include "testing/discoveryd_process.h"
#include "testing/etcd_harness.h"
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

namespace discovery::testing {
namespace {

namespace pb = ::postfinance::discovery::v1;
using Json = ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kServer = "prom1.example.com";

enum class Backend { kEmbedded, kEtcd };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kEmbedded ? "embedded" : "etcd";
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// The targets of every group of an http_sd or file_sd document; empty when it does not parse.
std::set<std::string> TargetsOf(const std::string& document) {
  std::set<std::string> targets;
  const Json groups = Json::parse(document, nullptr, /*allow_exceptions=*/false);
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

// The value of the sample `series` (name and labels as exposed) in a text exposition, or -1.
double Sample(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(series + " ")) {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

class InvalidRecordsTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    DiscoverydOptions options{.binary = DISCOVERYD_BINARY};
    if (GetParam() == Backend::kEtcd) {
      ASSERT_OK_AND_ASSIGN(EtcdCluster * etcd, SharedEtcdCluster());
      std::random_device random;
      std::uniform_int_distribution<int> letter(0, 25);
      prefix_ = "/invalid-records-";
      for (int i = 0; i < 12; ++i) {
        prefix_ += static_cast<char>('a' + letter(random));
      }
      store_args_ = {"--store=etcd", "--etcd-endpoints=" + etcd->EndpointList(),
                     "--etcd-prefix=" + prefix_};
      options.extra_args = store_args_;
      ASSERT_OK_AND_ASSIGN(store_, store::ConnectEtcdStore({.endpoints = etcd->endpoints()}));
    }
    ASSERT_OK_AND_ASSIGN(discoveryd_, DiscoverydProcess::Start(options));
    if (GetParam() == Backend::kEmbedded) {
      store_args_ = {"--store=embedded", "--data-dir=" + discoveryd_->data_dir()};
      // A second process on the server's database, as `discoveryd exporter` is.
      ASSERT_OK_AND_ASSIGN(
          store_, store::OpenEmbeddedStore({.path = discoveryd_->data_dir() + "/discovery.db"}));
    }
    ASSERT_OK_AND_ASSIGN(token_, discoveryd_->AdminToken());
    ASSERT_OK_AND_ASSIGN(root_, MakeTempDir("invalid-records"));
    std::filesystem::create_directories(root_ + "/.config/discovery");
    std::ofstream(root_ + "/.config/discovery/config.yaml")
        << fmt::format("address: {}\ninsecure: true\n", discoveryd_->grpc_address());
    std::ofstream(root_ + "/.config/discovery/.token") << "machine_token: " << token_ << "\n";
  }

  void TearDown() override {
    if (exporter_ != nullptr) {
      exporter_->Kill().IgnoreError();
    }
    store_.reset();
    discoveryd_.reset();
    if (!root_.empty()) {
      std::filesystem::remove_all(root_);
    }
  }

  absl::StatusOr<HttpResult> Rest(const std::string& method, const std::string& path,
                                  const Json& body = nullptr) const {
    return HttpRequest(method, discoveryd_->http_url() + path, body.is_null() ? "" : body.dump(),
                       {{"Authorization", "Bearer " + token_}});
  }
  void RestOk(const std::string& method, const std::string& path, const Json& body = nullptr) {
    absl::StatusOr<HttpResult> result = Rest(method, path, body);
    ASSERT_THAT(result, IsOk());
    ASSERT_EQ(result->status, 200) << method << " " << path << ": " << result->body;
  }
  Json ListedServices() const {
    absl::StatusOr<HttpResult> result = Rest("GET", "/v1/services?namespace=default");
    return result.ok() && result->status == 200
               ? Json::parse(result->body, nullptr, /*allow_exceptions=*/false)
               : Json();
  }

  // Writes `service` under its key, bypassing the API.
  void Store(const Service& service) {
    ASSERT_THAT(store::Put(*store_, repo::Keys(prefix_).Service("default", service.id),
                           repo::EncodeService(service)),
                IsOk());
  }

  CommandResult Discovery(std::vector<std::string> args) {
    args.insert(args.begin(), DISCOVERY_BINARY);
    absl::StatusOr<CommandResult> result = RunCommand({.argv = std::move(args),
                                                       .env = {"HOME=" + root_, "TMPDIR=" + root_},
                                                       .working_dir = root_},
                                                      absl::Seconds(60));
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *std::move(result) : CommandResult{};
  }

  void LaunchExporter() {
    ASSERT_OK_AND_ASSIGN(std::vector<int> ports, FreePorts(1));
    exporter_metrics_ = fmt::format("http://127.0.0.1:{}/metrics", ports[0]);
    files_ = std::filesystem::path(root_) / "file_sd";
    std::vector<std::string> argv = {DISCOVERYD_BINARY, "--log-format=json"};
    argv.insert(argv.end(), store_args_.begin(), store_args_.end());
    for (const std::string& arg :
         {std::string("exporter"), "--server=" + std::string(kServer),
          "--directory=" + files_.string(), fmt::format("--http-listen=127.0.0.1:{}", ports[0])}) {
      argv.push_back(arg);
    }
    ASSERT_OK_AND_ASSIGN(
        exporter_,
        ChildProcess::Start({.argv = argv, .env = {"HOME=" + root_}, .working_dir = root_},
                            root_ + "/exporter.log"));
  }
  std::string ExporterMetrics() const {
    absl::StatusOr<HttpResult> result = HttpRequest("GET", exporter_metrics_, "", {});
    return result.ok() && result->status == 200 ? result->body : "";
  }
  // The targets of every file of namespace `default` and the names of those files.
  std::set<std::string> FileTargets(std::set<std::string>* names = nullptr) const {
    std::set<std::string> targets;
    std::error_code error;
    for (const auto& entry :
         std::filesystem::directory_iterator(files_ / kServer / "default", error)) {
      if (entry.path().extension() == ".json") {
        if (names != nullptr) {
          names->insert(entry.path().filename().string());
        }
        targets.merge(TargetsOf(ReadFile(entry.path())));
      }
    }
    return targets;
  }

  std::string prefix_ = std::string{repo::kDefaultPrefix};
  std::vector<std::string> store_args_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string token_;
  std::string root_;
  std::unique_ptr<ChildProcess> exporter_;
  std::string exporter_metrics_;
  std::filesystem::path files_;
};

TEST_P(InvalidRecordsTest, LegacyRecordsAreLeftOutListedCountedAndRemovable) {
  RestOk("POST", "/v1/servers", {{"name", kServer}});
  RestOk("POST", "/v1/services", {{"name", "good"}, {"endpoint", "http://good1:9100/metrics"}});
  RestOk("POST", "/v1/services", {{"name", "good"}, {"endpoint", "http://good2:9100/metrics"}});

  // What the Go original accepted and stored, with its stored placement.
  Service legacy{.id = ServiceId("localhost:9100"),
                 .name = "node",
                 .namespace_name = "default",
                 .endpoint = "localhost:9100",
                 .servers = {kServer}};
  // The job name that jammed the original exporter ("File name too long" on every sync).
  Service long_name{.name = std::string(300, 'j'),
                    .namespace_name = "default",
                    .endpoint = "http://long:9100/metrics",
                    .servers = {kServer}};
  long_name.id = ServiceId(long_name.endpoint);
  Service big_label{.name = "big",
                    .namespace_name = "default",
                    .endpoint = "http://big:9100/metrics",
                    .servers = {kServer},
                    .labels = {{"blob", std::string(5000, 'x')}}};
  big_label.id = ServiceId(big_label.endpoint);
  for (const Service& service : {legacy, long_name, big_label}) {
    Store(service);
  }
  ASSERT_TRUE(
      Eventually([&] { return ListedServices().value("invalidServices", Json()).size() == 3; },
                 absl::Seconds(20)))
      << ListedServices().dump() << "\n"
      << discoveryd_->LogTail();

  // ListService (REST): the served services apart from the invalid records and their reasons.
  const Json listed = ListedServices();
  EXPECT_EQ(listed["services"].size(), 2U) << listed.dump();
  std::map<std::string, std::string> reasons;
  for (const Json& record : listed["invalidServices"]) {
    reasons[record["service"]["id"].get<std::string>()] = record["reason"].get<std::string>();
  }
  EXPECT_THAT(reasons[legacy.id], HasSubstr("'localhost:9100' is not a valid url"));
  EXPECT_EQ(reasons[long_name.id], "name is 300 bytes; the limit is 200");
  EXPECT_EQ(reasons[big_label.id], "label value of 'blob' is 5000 bytes; the limit is 4096");

  // http_sd: 200 with the good targets only.
  ASSERT_OK_AND_ASSIGN(HttpResult sd, Rest("GET", fmt::format("/v1/sd/{}/default", kServer)));
  EXPECT_EQ(sd.status, 200) << sd.body;
  EXPECT_EQ(TargetsOf(sd.body), (std::set<std::string>{"good1:9100", "good2:9100"})) << sd.body;

  // ListTargetGroup over gRPC: the same.
  auto channel =
      grpc::CreateChannel(discoveryd_->grpc_address(), grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  context.AddMetadata("authorization", "bearer " + token_);
  pb::ListTargetGroupRequest request;
  request.set_server(kServer);
  request.set_namespace_("default");
  pb::ListTargetGroupResponse groups;
  const grpc::Status status =
      pb::ServiceAPI::NewStub(channel)->ListTargetGroup(&context, request, &groups);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::set<std::string> grpc_targets;
  for (const pb::TargetGroup& group : groups.targetgroups()) {
    grpc_targets.insert(group.targets().begin(), group.targets().end());
  }
  EXPECT_EQ(grpc_targets, (std::set<std::string>{"good1:9100", "good2:9100"}));

  // `service list -o json` shows them with the reason; -o wide in its INVALID column; the
  // default table keeps its columns and says on stderr how many it holds.
  CommandResult cli = Discovery({"service", "list", "-n", "default", "-o", "json"});
  ASSERT_TRUE(cli.status.success()) << cli.err;
  const Json cli_json = Json::parse(cli.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(cli_json.is_array()) << cli.out;
  EXPECT_EQ(cli_json.size(), 5U);
  std::map<std::string, std::string> cli_reasons;
  for (const Json& service : cli_json) {
    if (service.contains("invalid")) {
      cli_reasons[service["id"].get<std::string>()] = service["invalid"].get<std::string>();
    }
  }
  EXPECT_EQ(cli_reasons, reasons);
  cli = Discovery({"service", "list", "-o", "wide"});
  ASSERT_TRUE(cli.status.success()) << cli.err;
  EXPECT_THAT(cli.out, HasSubstr("INVALID"));
  EXPECT_THAT(cli.out, HasSubstr("name is 300 bytes; the limit is 200"));
  cli = Discovery({"service", "list"});
  ASSERT_TRUE(cli.status.success()) << cli.err;
  EXPECT_THAT(cli.out, Not(HasSubstr("INVALID")));
  EXPECT_THAT(cli.out, HasSubstr("localhost:9100"));
  EXPECT_THAT(cli.err, HasSubstr("3 of the listed services are stored records that cannot be"));

  // discovery_invalid_records counts them.
  ASSERT_OK_AND_ASSIGN(HttpResult metrics, Rest("GET", "/metrics"));
  EXPECT_EQ(
      Sample(metrics.body, R"(discovery_invalid_records{kind="service",namespace="default"})"), 3)
      << metrics.body;

  // The exporter writes the good services' file, skips the others and keeps syncing.
  LaunchExporter();
  ASSERT_TRUE(Eventually(
      [&] {
        return FileTargets() == std::set<std::string>{"good1:9100", "good2:9100"};
      },
      absl::Seconds(20)))
      << exporter_->LogTail();
  std::set<std::string> names;
  FileTargets(&names);
  EXPECT_EQ(names, std::set<std::string>{"good.json"});
  ASSERT_TRUE(Eventually(
      [&] {
        const std::string text = ExporterMetrics();
        return Sample(text, "discovery_exporter_errors_total") == 3 &&
               Sample(text, R"(discovery_invalid_records{kind="service",namespace="default"})") ==
                   3 &&
               Sample(text, "discovery_exporter_last_sync_timestamp_seconds") > 0;
      },
      absl::Seconds(20)))
      << ExporterMetrics() << exporter_->LogTail();
  const double first_sync =
      Sample(ExporterMetrics(), "discovery_exporter_last_sync_timestamp_seconds");
  // So that the next sync's timestamp differs however finely the value is printed.
  absl::SleepFor(absl::Milliseconds(1100));
  RestOk("POST", "/v1/services", {{"name", "good"}, {"endpoint", "http://good3:9100/metrics"}});
  ASSERT_TRUE(Eventually(
      [&] {
        return FileTargets() == std::set<std::string>{"good1:9100", "good2:9100", "good3:9100"};
      },
      absl::Seconds(20)))
      << exporter_->LogTail();
  ASSERT_TRUE(Eventually(
      [&] {
        return Sample(ExporterMetrics(), "discovery_exporter_last_sync_timestamp_seconds") >
               first_sync;
      },
      absl::Seconds(20)));
  EXPECT_EQ(Sample(ExporterMetrics(), "discovery_exporter_errors_total"), 3);  // not counted again
  EXPECT_TRUE(exporter_->IsRunning()) << exporter_->LogTail();

  // Logged once per record, however often it was left out of an answer since.
  const std::string log = discoveryd_->LogTail(100000);
  for (const Service& service : {legacy, long_name, big_label}) {
    const std::string key = repo::Keys(prefix_).Service("default", service.id);
    size_t count = 0;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      count += line.find("stored record left out") != std::string::npos &&
               line.find(key) != std::string::npos;
    }
    EXPECT_EQ(count, 1U) << key;
  }

  // `service unregister` removes them although they do not parse.
  for (const Service& service : {legacy, long_name, big_label}) {
    cli = Discovery({"service", "unregister", "-n", "default", service.id});
    EXPECT_TRUE(cli.status.success()) << service.id << ": " << cli.err;
  }
  const Json after = ListedServices();
  EXPECT_EQ(after["invalidServices"], Json::array()) << after.dump();
  EXPECT_EQ(after["services"].size(), 3U);
  ASSERT_OK_AND_ASSIGN(metrics, Rest("GET", "/metrics"));
  EXPECT_THAT(metrics.body, Not(HasSubstr("discovery_invalid_records")));
  EXPECT_TRUE(Eventually(
      [&] { return ExporterMetrics().find("discovery_invalid_records") == std::string::npos; },
      absl::Seconds(20)))
      << ExporterMetrics();
}

INSTANTIATE_TEST_SUITE_P(Backends, InvalidRecordsTest,
                         ::testing::Values(Backend::kEmbedded, Backend::kEtcd), BackendName);

}  // namespace
}  // namespace discovery::testing
