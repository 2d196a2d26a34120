#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "registry/registry.h"
#include "registry/registry_test_fixture.h"
#include "repo/codec.h"
#include "store/store.h"
#include "testing/status_matchers.h"

// Servers and placement: placement settings, which servers a service is placed on as servers
// join and leave, and server names.
namespace discovery::registry {
namespace {

TEST_F(RegistryTest, PlacementSettingsAreSharedThroughTheStore) {
  const placement::Settings jump{.algorithm = placement::Algorithm::kJump, .replicas = 2};
  auto configured = Start({.placement = jump});
  EXPECT_EQ(configured->Current()->settings(), jump);
  // A replica started without placement flags follows the stored settings.
  auto follower = Start();
  EXPECT_EQ(follower->Current()->settings(), jump);
  // One started with other flags stores them, and everybody follows.
  const placement::Settings rendezvous{.replicas = 1};
  auto changed = Start({.placement = rendezvous});
  absl::StatusOr<int64_t> revision = store_->CurrentRevision();
  ASSERT_THAT(revision, IsOk());
  ASSERT_TRUE(follower->WaitForRevision(*revision, kWait));
  ASSERT_TRUE(configured->WaitForRevision(*revision, kWait));
  EXPECT_EQ(follower->Current()->settings(), rendezvous);
  EXPECT_EQ(configured->Current()->settings(), rendezvous);
}

TEST_F(RegistryTest, JumpPlacementMatchesTheGoOriginal) {
  auto registry = Start(
      {.placement = placement::Settings{.algorithm = placement::Algorithm::kJump, .replicas = 2}});
  for (const char* name : {"server1", "server2", "server3"}) {
    ASSERT_THAT(registry->RegisterServer(name, {}), IsOk());
  }
  absl::StatusOr<Service> service =
      registry->RegisterService(Target("http://p.example.com/metrics"));
  ASSERT_THAT(service, IsOk());
  EXPECT_THAT(service->servers, ElementsAre("server2", "server3"));
  EXPECT_EQ(service->id, ServiceId("http://p.example.com/metrics"));
  EXPECT_EQ(service->namespace_name, "default");
}

TEST_F(RegistryTest, AServerJoinMovesFewServicesAndRewritesNone) {
  auto registry = Start();
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(registry->RegisterServer(fmt::format("p{}", i), {}), IsOk());
  }
  for (int i = 0; i < 200; ++i) {
    ASSERT_THAT(registry->RegisterService(Target(fmt::format("http://host{}:9100/metrics", i))),
                IsOk());
  }
  const auto before = Placement(*registry);
  const auto stored_before = StoredServiceRevisions();

  ASSERT_THAT(registry->RegisterServer("p4", {}), IsOk());
  const auto after = Placement(*registry);
  int moved = 0;
  for (const auto& [endpoint, servers] : after) {
    ASSERT_THAT(servers, SizeIs(1));
    if (servers != before.at(endpoint)) {
      ++moved;
      EXPECT_EQ(servers[0], "p4") << endpoint << " moved between old servers";
    }
  }
  // About 1/5 move; rendezvous hashing keeps it well within these bounds.
  EXPECT_GT(moved, 10);
  EXPECT_LT(moved, 80);
  EXPECT_EQ(StoredServiceRevisions(), stored_before) << "a join rewrote service records";

  // A leave moves exactly the leaver's services back.
  ASSERT_THAT(registry->UnregisterServer("p4"), IsOk());
  EXPECT_EQ(Placement(*registry), before);
  EXPECT_EQ(StoredServiceRevisions(), stored_before);
}

// docs/decisions.md D5.
TEST_F(RegistryTest, TheLastServerCanLeaveAndServicesWaitForTheNextOne) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {{"env", "prod"}}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100", "", "env=prod")), IsOk());

  ASSERT_THAT(registry->UnregisterServer("p1"), IsOk());
  absl::StatusOr<std::vector<Server>> servers = registry->ListServers();
  ASSERT_THAT(servers, IsOk());
  EXPECT_THAT(*servers, IsEmpty());
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("default");
  ASSERT_THAT(services, IsOk());
  ASSERT_THAT(*services, SizeIs(1));
  EXPECT_THAT((*services)[0].servers, IsEmpty());

  ASSERT_THAT(registry->RegisterServer("p2", {{"env", "test"}}), IsOk());
  EXPECT_THAT(Placement(*registry)["http://a:9100"], IsEmpty());
  ASSERT_THAT(registry->RegisterServer("p3", {{"env", "prod"}}), IsOk());
  EXPECT_THAT(Placement(*registry)["http://a:9100"], ElementsAre("p3"));
}

// docs/decisions.md D10.
TEST_F(RegistryTest, ServerNamesAreValidated) {
  auto registry = Start();
  EXPECT_THAT(registry->RegisterServer("", {}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->RegisterServer("../namespace/v1/x", {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->UnregisterServer("nosuch"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("server nosuch not found")));
}

// A server the Go original stored under a name RegisterServer refuses (docs/decisions.md D39):
// answered on http_sd and removable, its services move; a refused name that is not stored stays an
// error.
TEST_F(RegistryTest, ServerTheOriginalStoredAsHostPortIsServedAndRemovable) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  Server odd{.name = "host:9090", .state = ServerState::kActive};
  absl::StatusOr<store::TxnResult> put =
      store::Put(*store_, repo::Keys().Server(odd.name), repo::EncodeServer(odd));
  ASSERT_THAT(put, IsOk());
  ASSERT_TRUE(registry->WaitForRevision(put->revision, absl::Seconds(10)));
  for (int i = 0; i < 8; ++i) {
    ASSERT_THAT(registry->RegisterService(Target(fmt::format("http://n{}:9100/metrics", i))),
                IsOk());
  }
  absl::StatusOr<std::vector<targetgroup::TargetGroup>> on_odd =
      registry->TargetGroups("host:9090", "default", "");
  ASSERT_THAT(on_odd, IsOk());
  EXPECT_FALSE(on_odd->empty());
  // An unknown host:port name has no targets, as any unknown server; another refused name that
  // is not stored is an error.
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> unknown =
      registry->HttpSd("host:9091", "default", "");
  ASSERT_THAT(unknown, IsOk());
  EXPECT_EQ((*unknown)->json(), "[]");
  EXPECT_THAT(registry->UnregisterServer("host:9091"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(registry->HttpSd("a b", "default", ""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->UnregisterServer("a b"), StatusIs(absl::StatusCode::kInvalidArgument));
  // Stored under such a name by the original, it is answered and removable.
  put = store::Put(*store_, repo::Keys().Server("a b"),
                   repo::EncodeServer(Server{.name = "a b", .state = ServerState::kActive}));
  ASSERT_THAT(put, IsOk());
  ASSERT_TRUE(registry->WaitForRevision(put->revision, absl::Seconds(10)));
  EXPECT_THAT(registry->HttpSd("a b", "default", ""), IsOk());
  EXPECT_THAT(registry->UnregisterServer("a b"), IsOk());

  ASSERT_THAT(registry->UnregisterServer("host:9090"), IsOk());
  absl::StatusOr<std::vector<targetgroup::TargetGroup>> on_p1 =
      registry->TargetGroups("p1", "default", "");
  ASSERT_THAT(on_p1, IsOk());
  EXPECT_EQ(on_p1->size(), 8U);
}

}  // namespace
}  // namespace discovery::registry
