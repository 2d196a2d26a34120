#include "exporter/exporter.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "exporter/file_sd.h"
#include "registry/registry.h"
#include "repo/codec.h"
#include "testing/api_stack.h"
#include "testing/status_matchers.h"

namespace discovery::exporter {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAreArray;

constexpr absl::Duration kWait = absl::Seconds(10);

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

class ExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(stack_, testing::ApiStack::Create({.initialize_timeout = kWait}));
    store_ = &stack_->store();
    registry_ = &stack_->registry();
    std::string pattern = "/tmp/exporter-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    exporter_.reset();
    std::filesystem::remove_all(dir_);
  }

  absl::Status StartExporter(const std::string& server) {
    absl::StatusOr<std::unique_ptr<Exporter>> exporter = Exporter::Start(
        *store_, repo::Keys(), {.server = server, .directory = dir_, .metrics = &metrics_});
    if (!exporter.ok()) {
      return exporter.status();
    }
    exporter_ = *std::move(exporter);
    return absl::OkStatus();
  }

  // Waits until the exporter has seen every write made so far.
  void CatchUp() {
    absl::StatusOr<store::RangeResult> range = store_->Range("/nothing");
    ASSERT_THAT(range, IsOk());
    ASSERT_TRUE(exporter_->WaitForRevision(range->revision, kWait));
  }

  void Register(const std::string& name, const std::string& endpoint, const std::string& ns = "") {
    ASSERT_THAT(
        registry_->RegisterService({.name = name, .endpoint = endpoint, .namespace_name = ns}),
        IsOk());
  }

  // Every file under the server's directory (relative paths), foreign ones included.
  std::set<std::string> Files(const std::string& server) const {
    std::set<std::string> files;
    const std::filesystem::path root = dir_ / server;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && !name.starts_with(".")) {
        files.insert(std::filesystem::relative(entry.path(), root).string());
      }
    }
    return files;
  }

  // The targets in the server's files.
  std::set<std::string> Targets(const std::string& server) const {
    std::set<std::string> targets;
    for (const std::string& file : Files(server)) {
      for (const auto& group : nlohmann::json::parse(ReadFile(dir_ / server / file))) {
        for (const auto& target : group["targets"]) {
          targets.insert(target.get<std::string>());
        }
      }
    }
    return targets;
  }

  std::unique_ptr<testing::ApiStack> stack_;
  store::Store* store_ = nullptr;
  registry::Registry* registry_ = nullptr;
  metrics::Metrics metrics_;
  std::filesystem::path dir_;
  std::unique_ptr<Exporter> exporter_;
};

TEST_F(ExporterTest, RefusesAnUnknownServer) {
  EXPECT_THAT(StartExporter("prometheus9"),
              StatusIs(absl::StatusCode::kNotFound, "server prometheus9 not found"));
  EXPECT_THAT(StartExporter("../etc"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ExporterTest, WritesTheSameTargetGroupsAsHttpSd) {
  ASSERT_THAT(registry_->RegisterServer("prometheus1", {{"environment", "test"}}), IsOk());
  ASSERT_THAT(registry_->RegisterNamespace("default-blackbox", ExportConfig::kBlackbox), IsOk());
  ASSERT_THAT(registry_->RegisterService({.name = "example",
                                          .endpoint = "http://example.com/metrics",
                                          .selector = "environment=test",
                                          .labels = {{"label1", "value1"}, {"label2", "value2"}}}),
              IsOk());
  Register("blackbox", "http://blackbox.example.com", "default-blackbox");
  ASSERT_THAT(StartExporter("prometheus1"), IsOk());

  EXPECT_EQ(ReadFile(dir_ / "prometheus1/default/example.json"),
            R"([{"targets":["example.com"],"labels":{"__metrics_path__":"/metrics",)"
            R"("__scheme__":"http","instance":"example.com","job":"example",)"
            R"("label1":"value1","label2":"value2"}}])");
  EXPECT_EQ(ReadFile(dir_ / "prometheus1/default-blackbox/blackbox.json"),
            R"([{"targets":["http://blackbox.example.com"]}])");
}

TEST_F(ExporterTest, FollowsRegistrationsAndRemovesWhatIsGone) {
  ASSERT_THAT(registry_->RegisterServer("prometheus1", {}), IsOk());
  Register("node", "http://h1:9100/metrics");
  ASSERT_THAT(StartExporter("prometheus1"), IsOk());
  EXPECT_THAT(Files("prometheus1"), UnorderedElementsAreArray({"default/node.json"}));

  ASSERT_THAT(registry_->RegisterNamespace("web", ExportConfig::kStandard), IsOk());
  Register("node", "http://h2:9100/metrics");
  Register("shop", "https://shop.example.com/metrics", "web");
  CatchUp();
  EXPECT_THAT(Files("prometheus1"),
              UnorderedElementsAreArray({"default/node.json", "web/shop.json"}));
  EXPECT_THAT(Targets("prometheus1"),
              UnorderedElementsAreArray({"h1:9100", "h2:9100", "shop.example.com"}));

  // An emptied job loses its file (not a zero-byte file, docs/decisions.md D7).
  ASSERT_THAT(registry_->UnregisterService("https://shop.example.com/metrics", "web"), IsOk());
  CatchUp();
  EXPECT_THAT(Files("prometheus1"), UnorderedElementsAreArray({"default/node.json"}));

  // A disabled namespace loses its files (docs/decisions.md D7), and gets them back when enabled
  // again.
  ASSERT_THAT(registry_->RegisterNamespace("default", ExportConfig::kDisabled), IsOk());
  CatchUp();
  EXPECT_THAT(Files("prometheus1"), IsEmpty());
  ASSERT_THAT(registry_->RegisterNamespace("default", ExportConfig::kStandard), IsOk());
  CatchUp();
  EXPECT_THAT(Files("prometheus1"), UnorderedElementsAreArray({"default/node.json"}));

  // A deleted namespace loses its files.
  Register("shop", "https://shop.example.com/metrics", "web");
  CatchUp();
  EXPECT_THAT(Files("prometheus1"),
              UnorderedElementsAreArray({"default/node.json", "web/shop.json"}));
  ASSERT_THAT(registry_->UnregisterNamespace("web"), IsOk());
  CatchUp();
  EXPECT_THAT(Files("prometheus1"), UnorderedElementsAreArray({"default/node.json"}));
}

// docs/decisions.md D6: services moved to a joining server leave this server's files at once, not
// at the next resync; the files always hold exactly what the registry places on the server.
TEST_F(ExporterTest, ServerJoinMovesTargetsBetweenExporters) {
  ASSERT_THAT(registry_->RegisterServer("prometheus1", {}), IsOk());
  for (int i = 0; i < 40; ++i) {
    Register("node", "http://host" + std::to_string(i) + ":9100/metrics");
  }
  ASSERT_THAT(StartExporter("prometheus1"), IsOk());
  EXPECT_EQ(Targets("prometheus1").size(), 40U);

  ASSERT_THAT(registry_->RegisterServer("prometheus2", {}), IsOk());
  CatchUp();
  absl::StatusOr<std::vector<Service>> services = registry_->ListServices("");
  ASSERT_THAT(services, IsOk());
  std::set<std::string> on_first;
  for (const Service& service : *services) {
    if (std::find(service.servers.begin(), service.servers.end(), "prometheus1") !=
        service.servers.end()) {
      on_first.insert(service.endpoint.substr(7, service.endpoint.find("/metrics") - 7));
    }
  }
  EXPECT_LT(on_first.size(), 40U);
  EXPECT_GT(on_first.size(), 0U);
  EXPECT_EQ(Targets("prometheus1"), on_first);
}

TEST_F(ExporterTest, ForeignFilesAreLeftAlone) {
  ASSERT_THAT(registry_->RegisterServer("prometheus1", {}), IsOk());
  ASSERT_THAT(registry_->RegisterNamespace("web", ExportConfig::kStandard), IsOk());
  Register("node", "http://h1:9100/metrics", "web");
  ASSERT_THAT(StartExporter("prometheus1"), IsOk());
  std::ofstream(dir_ / "prometheus1/web/static.json") << "[]";
  ASSERT_THAT(registry_->UnregisterNamespace("web"), IsOk());
  CatchUp();
  EXPECT_THAT(Files("prometheus1"), UnorderedElementsAreArray({"web/static.json"}));
}

TEST_F(ExporterTest, OneExporterPerDirectory) {
  ASSERT_THAT(registry_->RegisterServer("prometheus1", {}), IsOk());
  ASSERT_THAT(StartExporter("prometheus1"), IsOk());
  absl::StatusOr<std::unique_ptr<Exporter>> second =
      Exporter::Start(*store_, repo::Keys(), {.server = "prometheus1", .directory = dir_});
  EXPECT_THAT(second.status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another exporter")));
}

TEST_F(ExporterTest, CountsEventsAndSyncs) {
  ASSERT_THAT(registry_->RegisterServer("prometheus1", {}), IsOk());
  ASSERT_THAT(StartExporter("prometheus1"), IsOk());
  // Events are counted from snapshot differences, so each change is awaited on its own: a
  // register and unregister of h1 folded into one snapshot would count as nothing.
  Register("node", "http://h1:9100/metrics");
  CatchUp();
  Register("node", "http://h2:9100/metrics");
  CatchUp();
  ASSERT_THAT(registry_->UnregisterService("http://h1:9100/metrics", ""), IsOk());
  CatchUp();
  const std::string text = metrics_.Serialize();
  EXPECT_THAT(text, HasSubstr(R"(discovery_exporter_service_watch_events_total{op="Change"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(discovery_exporter_service_watch_events_total{op="Delete"} 1)"));
  EXPECT_THAT(text, HasSubstr("discovery_exporter_last_sync_timestamp_seconds"));
}

// docs/decisions.md D36, D37: a 300-character job name jammed the original exporter ("File name too
// long" on every sync, nothing written, last sync frozen). Records the exporter cannot write are
// left out and reported once; everything else is written and the sync goes on.
TEST_F(ExporterTest, SkipsRecordsItCannotWriteAndKeepsSyncing) {
  ASSERT_THAT(registry_->RegisterServer("prometheus1", {}), IsOk());
  Register("node", "http://h1:9100/metrics");
  ASSERT_THAT(registry_->RegisterNamespace("web", ExportConfig::kStandard), IsOk());
  Register("front", "http://w1:80/metrics", "web");
  Service long_name{.name = std::string(300, 'j'),
                    .namespace_name = "default",
                    .endpoint = "http://h2:9100/metrics"};
  long_name.id = ServiceId(long_name.endpoint);
  const std::string legacy_id = ServiceId("localhost:9100");
  ASSERT_THAT(store::Put(*store_, repo::Keys().Service("default", long_name.id),
                         repo::EncodeService(long_name)),
              IsOk());
  ASSERT_THAT(
      store::Put(*store_, repo::Keys().Service("default", legacy_id),
                 R"({"id":")" + legacy_id +
                     R"(","name":"node","namespace":"default","endpoint":"localhost:9100"})"),
      IsOk());

  ASSERT_THAT(StartExporter("prometheus1"), IsOk());
  CatchUp();
  EXPECT_THAT(Files("prometheus1"),
              UnorderedElementsAreArray({"default/node.json", "web/front.json"}));
  EXPECT_EQ(Targets("prometheus1"), (std::set<std::string>{"h1:9100", "w1:80"}));
  std::string text = metrics_.Serialize();
  EXPECT_THAT(text, HasSubstr("discovery_exporter_errors_total 2\n"));
  EXPECT_THAT(text,
              HasSubstr(R"(discovery_invalid_records{kind="service",namespace="default"} 2)"));
  EXPECT_THAT(text, HasSubstr("discovery_exporter_last_sync_timestamp_seconds"));

  // Later changes are written; what stays left out is not counted again.
  Register("node", "http://h3:9100/metrics");
  CatchUp();
  EXPECT_EQ(Targets("prometheus1"), (std::set<std::string>{"h1:9100", "h3:9100", "w1:80"}));
  text = metrics_.Serialize();
  EXPECT_THAT(text, HasSubstr("discovery_exporter_errors_total 2\n"));

  // Removed, they are no longer reported.
  ASSERT_THAT(registry_->UnregisterService(long_name.id, "default"), IsOk());
  ASSERT_THAT(registry_->UnregisterService(legacy_id, "default"), IsOk());
  CatchUp();
  EXPECT_THAT(metrics_.Serialize(), Not(HasSubstr("discovery_invalid_records")));
}

// A snapshot the view did not vet (a namespace written by another tool is not classified):
// a file that cannot be named costs only itself.
TEST(DesiredFilesTest, LeavesOutFilesThatCannotBeNamed) {
  auto snapshot = std::make_shared<repo::Snapshot>();
  snapshot->servers["p1"] = Server{.name = "p1"};
  const std::string long_ns(300, 'n');
  for (const std::string& ns : {std::string("default"), long_ns}) {
    snapshot->namespaces[ns] = Namespace{.name = ns};
    Service service{.name = "node", .namespace_name = ns, .endpoint = "http://h1:9100/metrics"};
    service.id = ServiceId(service.endpoint);
    Service broken = service;
    broken.endpoint = "localhost:9100";
    broken.id = ServiceId(broken.endpoint);
    repo::ServiceMap services;
    for (const Service& s : {service, broken}) {
      auto shared = std::make_shared<const Service>(s);
      services = services.Insert(std::string_view{shared->id}, shared);
    }
    snapshot->services[ns] = std::move(services);
  }
  auto placed = readmodel::Placed::Compute(snapshot, nullptr, {});
  std::vector<std::string> problems;
  const FileSet files = DesiredFiles(*placed, "p1", &problems);
  ASSERT_EQ(files.size(), 1U);
  EXPECT_EQ(files.begin()->first, "default/node.json");
  EXPECT_THAT(files.begin()->second.text(), HasSubstr("h1:9100"));
  ASSERT_EQ(problems.size(), 2U);
  EXPECT_THAT(problems, ::testing::Contains(HasSubstr("invalid endpoint \"localhost:9100\"")));
  EXPECT_THAT(problems, ::testing::Contains(HasSubstr("longer than 255 bytes")));
}

// FileSdRenderer renders only what changed from one placement to the next: after every step of
// random registrations, changes, removals, export settings, servers joining and leaving and
// namespaces going, its files and problems must be exactly those rendered from scratch.
TEST(FileSdRendererTest, EveryUpdateEqualsTheFilesRenderedFromScratch) {
  const std::vector<std::string> namespaces = {"a", "b", std::string(300, 'n')};
  // "bad job" cannot be a file name; localhost:9100 does not parse as an endpoint.
  const std::vector<std::string> jobs = {"node", "app", "bad job"};
  const std::vector<ExportConfig> configs = {ExportConfig::kStandard, ExportConfig::kBlackbox,
                                             ExportConfig::kDisabled};
  for (const uint32_t seed : {1U, 2U, 3U, 4U}) {
    SCOPED_TRACE(seed);
    std::mt19937 random(seed);
    const auto pick = [&random](size_t n) {
      return std::uniform_int_distribution<size_t>(0, n - 1)(random);
    };
    auto snapshot = std::make_shared<repo::Snapshot>();
    snapshot->servers["p1"] = Server{.name = "p1"};
    for (const std::string& ns : namespaces) {
      snapshot->namespaces[ns] = Namespace{.name = ns};
    }
    std::shared_ptr<const readmodel::Placed> placed;
    FileSdRenderer renderer;
    for (int step = 0; step < 300; ++step) {
      auto next = std::make_shared<repo::Snapshot>(*snapshot);
      const std::string& ns = namespaces[pick(namespaces.size())];
      switch (pick(10)) {
        case 0:  // the namespace's export setting
          next->namespaces[ns].export_config = configs[pick(configs.size())];
          break;
        case 1:  // a second server joins or leaves: services move
          if (next->servers.contains("p2")) {
            next->servers.erase("p2");
          } else {
            next->servers["p2"] = Server{.name = "p2"};
          }
          break;
        case 2:  // a service goes
          if (const repo::ServiceMap* services = next->ServicesIn(ns);
              services != nullptr && !services->empty()) {
            std::vector<std::string> ids;
            services->ForEach(
                [&ids](std::string_view id, const repo::ServicePtr&) { ids.emplace_back(id); });
            repo::ServiceMap left = services->Erase(ids[pick(ids.size())]);
            if (left.empty()) {
              next->services.erase(ns);
            } else {
              next->services[ns] = std::move(left);
            }
          }
          break;
        default: {  // a service comes, or comes again with another job or labels
          const size_t host = pick(12);
          Service service{.name = jobs[pick(jobs.size())],
                          .namespace_name = ns,
                          .endpoint = host == 0 ? "localhost:9100"
                                                : fmt::format("http://h{}:9100/metrics", host),
                          .labels = {{"team", fmt::format("t{}", pick(3))}}};
          service.id = ServiceId(service.endpoint);
          auto shared = std::make_shared<const Service>(std::move(service));
          next->services[ns] = next->services[ns].Insert(std::string_view{shared->id}, shared);
          break;
        }
      }
      snapshot = next;
      placed = readmodel::Placed::Compute(snapshot, placed.get(), {});
      std::vector<std::string> expected_problems;
      const FileSet expected = DesiredFiles(*placed, "p1", &expected_problems);
      std::vector<std::string> problems;
      const FileSet files = renderer.Update(*placed, "p1", &problems);
      ASSERT_EQ(files, expected) << "step " << step;
      ASSERT_EQ(problems, expected_problems) << "step " << step;
    }
  }
}

}  // namespace
}  // namespace discovery::exporter
