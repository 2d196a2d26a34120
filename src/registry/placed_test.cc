#include "registry/placed.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::registry {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Service MakeService(std::string endpoint, std::string selector = "") {
  Service service;
  service.id = ServiceId(endpoint);
  service.name = "node";
  service.namespace_name = "default";
  service.endpoint = std::move(endpoint);
  service.selector = std::move(selector);
  // Stale stored placement: the derived one must not look at it.
  service.servers = {"gone"};
  return service;
}

std::shared_ptr<repo::Snapshot> SnapshotWith(std::vector<Server> servers,
                                             std::vector<Service> services) {
  auto snapshot = std::make_shared<repo::Snapshot>();
  for (Server& server : servers) {
    snapshot->servers[server.name] = std::move(server);
  }
  auto map = std::make_shared<repo::ServiceMap>();
  for (Service& service : services) {
    (*map)[service.id] = std::move(service);
  }
  snapshot->services["default"] = std::move(map);
  return snapshot;
}

TEST(PlacedTest, DerivesPlacementFromServersSelectorsAndSettings) {
  auto snapshot = SnapshotWith({{.name = "server1"},
                                {.name = "server2"},
                                {.name = "server3"},
                                {.name = "leaver", .state = ServerState::kLeaving}},
                               {MakeService("http://p.example.com/metrics"),
                                MakeService("http://q.example.com/metrics", "tier=gold")});
  snapshot->placement =
      placement::Settings{.algorithm = placement::Algorithm::kJump, .replicas = 2};
  auto placed = Placed::Compute(snapshot, nullptr, {});
  const NamespacePlacement* ns = placed->In("default");
  ASSERT_NE(ns, nullptr);
  EXPECT_THAT(*ns->ServersOf(ServiceId("http://p.example.com/metrics")),
              ElementsAre("server2", "server3"));
  EXPECT_THAT(*ns->ServersOf(ServiceId("http://q.example.com/metrics")), IsEmpty());
  EXPECT_EQ(ns->ServicesOn("server2").size(), 1U);
  EXPECT_THAT(ns->ServicesOn("leaver"), IsEmpty());
  EXPECT_THAT(placed->WithServers(MakeService("http://p.example.com/metrics")).servers,
              ElementsAre("server2", "server3"));
}

TEST(PlacedTest, FallsBackToTheGivenSettingsAndReusesUnchangedNamespaces) {
  auto first = SnapshotWith({{.name = "a"}, {.name = "b"}}, {MakeService("http://x:1")});
  auto placed = Placed::Compute(first, nullptr, {.replicas = 2});
  EXPECT_EQ(placed->settings().replicas, 2);
  EXPECT_THAT(*placed->In("default")->ServersOf(ServiceId("http://x:1")), ElementsAre("a", "b"));

  // Same servers (a newer `modified` does not matter) and the same service map: reused.
  auto second = std::make_shared<repo::Snapshot>(*first);
  second->servers["a"].modified = absl::Now();
  auto again = Placed::Compute(second, placed.get(), {.replicas = 2});
  EXPECT_EQ(again->In("default"), placed->In("default"));
  // A label change can change candidates: recomputed.
  auto third = std::make_shared<repo::Snapshot>(*first);
  third->servers["a"].labels = {{"tier", "gold"}};
  auto recomputed = Placed::Compute(third, again.get(), {.replicas = 2});
  EXPECT_NE(recomputed->In("default"), placed->In("default"));
}

TEST(PlacedTest, RendersHttpSdOncePerServerAndConfig) {
  auto placed =
      Placed::Compute(SnapshotWith({{.name = "a"}}, {MakeService("http://x:1/m")}), nullptr, {});
  const NamespacePlacement* ns = placed->In("default");
  auto standard = ns->HttpSd("a", ExportConfig::kStandard);
  auto blackbox = ns->HttpSd("a", ExportConfig::kBlackbox);
  ASSERT_TRUE(standard.ok() && blackbox.ok());
  EXPECT_EQ(*ns->HttpSd("a", ExportConfig::kStandard), *standard);
  EXPECT_EQ((*blackbox)->json, R"([{"targets":["http://x:1/m"],"labels":{}}])");
  EXPECT_NE((*standard)->etag, (*blackbox)->etag);
  EXPECT_EQ((*ns->HttpSd("nobody", ExportConfig::kStandard))->json, "[]");
}

}  // namespace
}  // namespace discovery::registry
