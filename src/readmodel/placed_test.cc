#include "readmodel/placed.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "readmodel/placed_test_util.h"
#include "selector/selector.h"
#include "targetgroup/targetgroup.h"

namespace discovery::readmodel {
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
  repo::ServiceMap map;
  for (Service& service : services) {
    auto shared = std::make_shared<const Service>(std::move(service));
    map = map.Insert(shared->id, shared);
  }
  if (!map.empty()) {
    snapshot->services["default"] = std::move(map);
  }
  return snapshot;
}

std::vector<std::string> ServersOf(const NamespacePlacement& placement, std::string_view endpoint) {
  const PlacedService* placed = placement.Find(ServiceId(std::string(endpoint)));
  return placed == nullptr ? std::vector<std::string>{"<unknown>"} : *placed->servers;
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
  EXPECT_THAT(ServersOf(*ns, "http://p.example.com/metrics"), ElementsAre("server2", "server3"));
  EXPECT_THAT(ServersOf(*ns, "http://q.example.com/metrics"), IsEmpty());
  EXPECT_EQ(ns->On("server2").size(), 1U);
  EXPECT_TRUE(ns->On("leaver").empty());
  EXPECT_THAT(placed->WithServers(MakeService("http://p.example.com/metrics")).servers,
              ElementsAre("server2", "server3"));
}

TEST(PlacedTest, FallsBackToTheGivenSettingsAndReusesUnchangedNamespaces) {
  auto first = SnapshotWith({{.name = "a"}, {.name = "b"}}, {MakeService("http://x:1")});
  auto placed = Placed::Compute(first, nullptr, {.replicas = 2});
  EXPECT_EQ(placed->settings().replicas, 2);
  EXPECT_THAT(ServersOf(*placed->In("default"), "http://x:1"), ElementsAre("a", "b"));

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

TEST(PlacedTest, AServerJoinKeepsTheRenderedGroupsOfTheServicesThatMove) {
  std::vector<Service> services;
  services.reserve(200);
  for (int i = 0; i < 200; ++i) {
    services.push_back(MakeService("http://host" + std::to_string(i) + ":9100/metrics"));
  }
  auto before = SnapshotWith({{.name = "a"}, {.name = "b"}}, services);
  auto placed = Placed::Compute(before, nullptr, {.replicas = 1});
  for (const char* server : {"a", "b"}) {
    ASSERT_TRUE(placed->HttpSd(server, "default", ExportConfig::kStandard).ok());
  }
  auto after = std::make_shared<repo::Snapshot>(*before);
  after->servers["c"] = Server{.name = "c"};
  auto joined = Placed::Compute(after, placed.get(), {.replicas = 1});
  const PlacedMap& moved = joined->In("default")->On("c");
  ASSERT_FALSE(moved.empty());
  moved.ForEach([&](std::string_view id, const PlacedPtr& entry) {
    const PlacedService* old = placed->In("default")->Find(id);
    ASSERT_NE(old, nullptr);
    EXPECT_NE(old, entry.get()) << "a moved service is a new PlacedService";
    ASSERT_NE(entry->rendered.IfRendered(), nullptr) << id << " would be rendered again";
    EXPECT_EQ(entry->rendered.IfRendered()->json, old->rendered.IfRendered()->json);
  });
  // The answers are still those of a placement computed from scratch.
  auto scratch = Placed::Compute(after, nullptr, {.replicas = 1});
  for (const char* server : {"a", "b", "c"}) {
    const std::shared_ptr<const HttpSdBody> incremental =
        *joined->HttpSd(server, "default", ExportConfig::kStandard);
    const std::shared_ptr<const HttpSdBody> anew =
        *scratch->HttpSd(server, "default", ExportConfig::kStandard);
    EXPECT_EQ(incremental->json(), anew->json()) << server;
    EXPECT_EQ(incremental->etag(), anew->etag()) << server;
  }
}

TEST(PlacedTest, LargeNamespacesArePlacedOnSeveralThreadsWithTheSameResult) {
  // Above the size from which loads and server joins place services on several threads.
  constexpr int kServices = 30000;
  std::vector<Service> services;
  services.reserve(kServices);
  for (int i = 0; i < kServices; ++i) {
    services.push_back(MakeService("http://host" + std::to_string(i) + ":9100/metrics",
                                   i % 3 == 0 ? "tier=gold" : ""));
  }
  std::vector<Server> servers;
  servers.reserve(6);
  for (int i = 0; i < 6; ++i) {
    servers.push_back(
        {.name = "s" + std::to_string(i), .labels = {{"tier", i % 2 == 0 ? "gold" : "silver"}}});
  }
  const placement::Settings settings{.replicas = 2};
  auto check = [&](const Placed& placed) {
    std::vector<Server> enabled;
    for (const auto& [name, server] : placed.snapshot().servers) {
      enabled.push_back(server);
    }
    const auto gold = placement::Candidates(enabled, *selector::Selector::Parse("tier=gold"));
    const auto all = placement::Candidates(enabled, *selector::Selector::Parse(""));
    const NamespacePlacement* ns = placed.In("default");
    ASSERT_NE(ns, nullptr);
    ASSERT_EQ(ns->All().size(), static_cast<size_t>(kServices));
    size_t on_servers = 0;
    ns->All().ForEach([&](std::string_view, const PlacedPtr& entry) {
      const Service& service = *entry->service;
      EXPECT_EQ(*entry->servers,
                placement::Place(service.endpoint, service.selector.empty() ? all : gold,
                                 settings.replicas, settings.algorithm))
          << service.endpoint;
    });
    for (const auto& entry_of_server : placed.snapshot().servers) {
      const std::string& name = entry_of_server.first;
      ns->On(name).ForEach([&](std::string_view, const PlacedPtr& entry) {
        EXPECT_TRUE(std::binary_search(entry->servers->begin(), entry->servers->end(), name));
        ++on_servers;
      });
    }
    EXPECT_EQ(on_servers, 2U * kServices);
  };
  auto before = SnapshotWith(servers, services);
  auto placed = Placed::Compute(before, nullptr, settings);
  check(*placed);
  auto after = std::make_shared<repo::Snapshot>(*before);
  after->servers["s6"] = Server{.name = "s6", .labels = {{"tier", "gold"}}};
  auto joined = Placed::Compute(after, placed.get(), settings);
  check(*joined);
  EXPECT_FALSE(joined->In("default")->On("s6").empty());
}

TEST(PlacedTest, AJoinOrLeaveMovingManyServicesUpdatesEveryTreeAsFromScratch) {
  // Enough that a join moves more services than the size from which the map of all and the
  // slices are updated on two threads.
  constexpr int kServices = 45000;
  std::vector<Service> services;
  services.reserve(kServices);
  for (int i = 0; i < kServices; ++i) {
    services.push_back(MakeService("http://host" + std::to_string(i) + ":9100/metrics"));
  }
  const placement::Settings settings{.replicas = 1};
  auto one = SnapshotWith({{.name = "s0"}}, services);
  auto placed = Placed::Compute(one, nullptr, settings);
  // The only server holds every service: its slice is the map of all.
  ASSERT_TRUE(placed->In("default")->On("s0").SameAs(placed->In("default")->All()));

  auto two = std::make_shared<repo::Snapshot>(*one);
  two->servers["s1"] = Server{.name = "s1"};
  auto joined = Placed::Compute(two, placed.get(), settings);
  const size_t moved = joined->In("default")->On("s1").size();
  EXPECT_GT(moved, 20000U);
  EXPECT_LT(moved, static_cast<size_t>(kServices));
  EXPECT_EQ(Observe(*joined), Observe(*Placed::Compute(two, nullptr, settings)));

  // s0 leaves: everything moves to s1, whose slice then holds every service again.
  auto left = std::make_shared<repo::Snapshot>(*two);
  left->servers.erase("s0");
  auto after_leave = Placed::Compute(left, joined.get(), settings);
  EXPECT_TRUE(after_leave->In("default")->On("s1").SameAs(after_leave->In("default")->All()));
  EXPECT_TRUE(after_leave->In("default")->On("s0").empty());
  EXPECT_EQ(Observe(*after_leave), Observe(*Placed::Compute(left, nullptr, settings)));
}

TEST(PlacedTest, RendersHttpSdOncePerServerAndConfig) {
  auto placed =
      Placed::Compute(SnapshotWith({{.name = "a"}}, {MakeService("http://x:1/m")}), nullptr, {});
  auto standard = placed->HttpSd("a", "default", ExportConfig::kStandard);
  auto blackbox = placed->HttpSd("a", "default", ExportConfig::kBlackbox);
  ASSERT_TRUE(standard.ok() && blackbox.ok());
  EXPECT_EQ(*placed->HttpSd("a", "default", ExportConfig::kStandard), *standard);
  EXPECT_EQ((*blackbox)->json(), R"([{"targets":["http://x:1/m"],"labels":{}}])");
  EXPECT_NE((*standard)->etag(), (*blackbox)->etag());
  EXPECT_EQ((*placed->HttpSd("nobody", "default", ExportConfig::kStandard))->json(), "[]");
}

// The tag is made of the groups' hashes: answers of the same length but other groups are told
// apart, and the same services give the same tag whatever order they come in.
TEST(PlacedTest, AnswersOfTheSameLengthHaveTheirOwnTags) {
  const auto tag_of = [](std::vector<Service> services) {
    auto placed = Placed::Compute(SnapshotWith({{.name = "a"}}, std::move(services)), nullptr, {});
    const std::shared_ptr<const HttpSdBody> body =
        *placed->HttpSd("a", "default", ExportConfig::kStandard);
    return std::pair(body->json().size(), body->etag());
  };
  const auto one = tag_of({MakeService("http://x:1/m"), MakeService("http://y:1/m")});
  const auto other = tag_of({MakeService("http://x:1/m"), MakeService("http://z:1/m")});
  const auto same = tag_of({MakeService("http://y:1/m"), MakeService("http://x:1/m")});
  EXPECT_EQ(one.first, other.first);
  EXPECT_NE(one.second, other.second);
  EXPECT_EQ(one, same);
}

TEST(PlacedTest, GzippedIfReadyNeverCompresses) {
  const HttpSdBody body(R"([{"targets":["http://x:1/m"],"labels":{}}])", "\"tag\"");
  EXPECT_EQ(body.GzippedIfReady(), nullptr);
  EXPECT_EQ(body.GzippedIfReady(), nullptr);
  const std::shared_ptr<const std::string> gzipped = body.Gzipped();
  ASSERT_NE(gzipped, nullptr);
  EXPECT_EQ(body.GzippedIfReady(), gzipped);
}

// A write re-renders only the answers of the servers whose slice it changed; the others stay
// the very same cached body.
TEST(PlacedTest, AWriteDropsOnlyTheAnswersOfServersItChanged) {
  auto first =
      SnapshotWith({{.name = "a", .labels = {{"s", "a"}}}, {.name = "b", .labels = {{"s", "b"}}}},
                   {MakeService("http://x:1/m", "s=a"), MakeService("http://y:1/m", "s=b")});
  auto placed = Placed::Compute(first, nullptr, {});
  auto on_a = placed->HttpSd("a", "default", ExportConfig::kStandard);
  auto on_b = placed->HttpSd("b", "default", ExportConfig::kStandard);
  ASSERT_TRUE(on_a.ok() && on_b.ok());

  auto second = std::make_shared<repo::Snapshot>(*first);
  auto added = std::make_shared<const Service>(MakeService("http://z:1/m", "s=b"));
  second->services["default"] = second->services["default"].Insert(added->id, added);
  auto next = Placed::Compute(second, placed.get(), {});

  auto again_a = next->HttpSd("a", "default", ExportConfig::kStandard);
  auto again_b = next->HttpSd("b", "default", ExportConfig::kStandard);
  ASSERT_TRUE(again_a.ok() && again_b.ok());
  EXPECT_EQ(*again_a, *on_a);  // the same object: not rendered again
  EXPECT_NE(*again_b, *on_b);
  EXPECT_THAT((*again_b)->json(), ::testing::HasSubstr("z:1"));
  EXPECT_TRUE(next->In("default")->On("a").SameAs(placed->In("default")->On("a")));
}

TEST(PlacedTest, AServerHoldingEveryServiceSharesTheMapOfAll) {
  auto first =
      SnapshotWith({{.name = "a", .labels = {{"s", "a"}}}, {.name = "b", .labels = {{"s", "b"}}}},
                   {MakeService("http://x:1/m"), MakeService("http://y:1/m")});
  auto placed = Placed::Compute(first, nullptr, {.replicas = 2});
  const NamespacePlacement* ns = placed->In("default");
  ASSERT_NE(ns, nullptr);
  EXPECT_TRUE(ns->On("a").SameAs(ns->All()));
  EXPECT_TRUE(ns->On("b").SameAs(ns->All()));

  // A service only on a: a still holds everything, b keeps its slice as it was.
  auto second = std::make_shared<repo::Snapshot>(*first);
  auto only_a = std::make_shared<const Service>(MakeService("http://z:1/m", "s=a"));
  second->services["default"] = second->services["default"].Insert(only_a->id, only_a);
  auto next = Placed::Compute(second, placed.get(), {.replicas = 2});
  ns = next->In("default");
  EXPECT_EQ(ns->All().size(), 3U);
  EXPECT_TRUE(ns->On("a").SameAs(ns->All()));
  EXPECT_EQ(ns->On("b").size(), 2U);
  EXPECT_TRUE(ns->On("b").SameAs(placed->In("default")->On("b")));

  // Gone again: a shares the new map of all, b holds every service again.
  auto third = std::make_shared<repo::Snapshot>(*second);
  third->services["default"] = third->services["default"].Erase(only_a->id);
  auto last = Placed::Compute(third, next.get(), {.replicas = 2});
  ns = last->In("default");
  EXPECT_EQ(ns->All().size(), 2U);
  EXPECT_TRUE(ns->On("a").SameAs(ns->All()));
  EXPECT_EQ(ns->On("b").size(), 2U);
}

// A service that cannot be rendered (a snapshot not built by the view, which would have set it
// aside) is left out of the answer instead of failing it.
TEST(PlacedTest, HttpSdLeavesOutWhatCannotBeRendered) {
  Service legacy = MakeService("http://x:2/m");
  legacy.endpoint = "localhost:9100";
  auto placed = Placed::Compute(
      SnapshotWith({{.name = "a"}}, {MakeService("http://x:1/m"), legacy}), nullptr, {});
  ASSERT_EQ(placed->In("default")->On("a").size(), 2U);
  auto body = placed->HttpSd("a", "default", ExportConfig::kBlackbox);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ((*body)->json(), R"([{"targets":["http://x:1/m"],"labels":{}}])");
}

// An answer is put together from per-service parts; its bytes must equal the groups rendered
// from scratch, in their order, whatever the services (query parameters, IPv6, escaping, legacy
// records whose endpoints differ only in spelling, a record that cannot be rendered), and a
// write must reuse the parts of the services it did not touch.
TEST(PlacedTest, HttpSdAnswerEqualsTheGroupsRenderedFromScratch) {
  std::vector<Service> services = {
      MakeService("http://b.example.com:9100/metrics?x=1&x=2&y=%C3%A9"),
      MakeService("https://[2001:db8::1]:8443/"),
      MakeService("http://a.example.com/m"),
      MakeService("http://c.example.com/m"),
  };
  services[2].labels = {{"owner", "Zoë <ops&dev> \"q\"\n"}, {"job", "override"}};
  Service legacy_upper = MakeService("http://dup.example.com:1/m");
  legacy_upper.endpoint = "HTTP://dup.example.com:1/m";  // canonically the same endpoint
  legacy_upper.id = ServiceId(legacy_upper.endpoint);
  legacy_upper.name = "a-job";
  Service legacy_plain = MakeService("http://dup.example.com:1/m");
  legacy_plain.name = "z-job";
  Service broken = MakeService("http://broken.example.com/m");
  broken.endpoint = "localhost:9100";
  services.push_back(legacy_upper);
  services.push_back(legacy_plain);
  services.push_back(broken);

  auto first = SnapshotWith({{.name = "a"}}, services);
  auto placed = Placed::Compute(first, nullptr, {});
  for (ExportConfig config : {ExportConfig::kStandard, ExportConfig::kBlackbox}) {
    auto body = placed->HttpSd("a", "default", config);
    ASSERT_TRUE(body.ok()) << body.status();
    EXPECT_EQ((*body)->json(),
              targetgroup::ToHttpSdJson(targetgroup::FromServices(services, config)));
  }

  const std::string kept_id = ServiceId("http://a.example.com/m");
  std::vector<std::unique_ptr<RenderedGroup>> uncached;
  const PlacedService* kept = placed->In("default")->Find(kept_id);
  ASSERT_NE(kept, nullptr);
  const RenderedGroup* part =
      &kept->rendered.Get(*kept->service, ExportConfig::kStandard, uncached);

  auto second = std::make_shared<repo::Snapshot>(*first);
  Service added = MakeService("http://0.example.com/m");
  services.push_back(added);
  auto shared = std::make_shared<const Service>(added);
  second->services["default"] = second->services["default"].Insert(shared->id, shared);
  auto next = Placed::Compute(second, placed.get(), {});
  auto body = next->HttpSd("a", "default", ExportConfig::kStandard);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ((*body)->json(), targetgroup::ToHttpSdJson(
                                 targetgroup::FromServices(services, ExportConfig::kStandard)));
  const PlacedService* still = next->In("default")->Find(kept_id);
  ASSERT_NE(still, nullptr);
  EXPECT_EQ(&still->rendered.Get(*still->service, ExportConfig::kStandard, uncached), part);
  EXPECT_TRUE(uncached.empty());
}

}  // namespace
}  // namespace discovery::readmodel
