#include "registry/registry.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "repo/codec.h"
#include "store/embedded/embedded_store.h"
#include "testing/eventually.h"
#include "testing/status_matchers.h"

namespace discovery::registry {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(10);

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::OpenEmbeddedStore({});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  std::unique_ptr<Registry> Start(RegistryOptions options = {}) {
    auto registry = std::make_unique<Registry>(*store_, repo::Keys(), std::move(options));
    EXPECT_THAT(registry->Initialize(kWait), IsOk());
    return registry;
  }

  static ServiceRegistration Target(std::string endpoint, std::string ns = "",
                                    std::string selector = "") {
    return {.name = "node",
            .endpoint = std::move(endpoint),
            .namespace_name = std::move(ns),
            .selector = std::move(selector)};
  }

  // Every service record as stored, by key, with its mod_revision.
  std::map<std::string, int64_t> StoredServiceRevisions() {
    std::map<std::string, int64_t> revisions;
    absl::StatusOr<store::RangeResult> range = store_->Range(repo::Keys().Services());
    EXPECT_THAT(range, IsOk());
    for (const store::KeyValue& kv : range->kvs) {
      revisions[kv.key] = kv.mod_revision;
    }
    return revisions;
  }

  static std::map<std::string, std::vector<std::string>> Placement(const Registry& registry) {
    std::map<std::string, std::vector<std::string>> placement;
    absl::StatusOr<std::vector<Service>> services = registry.ListServices("");
    EXPECT_THAT(services, IsOk());
    for (const Service& service : *services) {
      placement[service.endpoint] = service.servers;
    }
    return placement;
  }

  std::unique_ptr<store::Store> store_;
};

TEST_F(RegistryTest, InitializeCreatesTheDefaultNamespaceOnce) {
  auto registry = Start();
  absl::StatusOr<std::vector<Namespace>> namespaces = registry->ListNamespaces();
  ASSERT_THAT(namespaces, IsOk());
  ASSERT_THAT(*namespaces, SizeIs(1));
  EXPECT_EQ((*namespaces)[0].name, "default");
  EXPECT_EQ((*namespaces)[0].export_config, ExportConfig::kStandard);

  // An operator's change survives the next start.
  ASSERT_THAT(registry->RegisterNamespace("default", ExportConfig::kBlackbox), IsOk());
  registry.reset();
  registry = Start();
  namespaces = registry->ListNamespaces();
  ASSERT_THAT(namespaces, IsOk());
  EXPECT_EQ((*namespaces)[0].export_config, ExportConfig::kBlackbox);
}

// /readyz follows Ready(): a client let in before Initialize finished could find no `default`.
TEST_F(RegistryTest, IsReadyOnlyOnceInitialized) {
  Registry registry(*store_, repo::Keys(), {});
  ASSERT_TRUE(registry.WaitForRevision(0, kWait));
  EXPECT_THAT(registry.Ready(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("default")));
  ASSERT_THAT(registry.Initialize(kWait), IsOk());
  EXPECT_THAT(registry.Ready(), IsOk());
}

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

TEST_F(RegistryTest, RegisterServiceErrors) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {{"env", "prod"}}), IsOk());

  EXPECT_THAT(registry->RegisterService(Target("localhost:9100")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("http://localhost:9100")));
  ServiceRegistration unnamed = Target("http://a:9100");
  unnamed.name = "";
  EXPECT_THAT(registry->RegisterService(unnamed),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name")));
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100", "no/such")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // docs/decisions.md D3: an unknown namespace is NotFound, not Internal.
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100", "nosuch")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("namespace nosuch not found")));
  // docs/decisions.md D11: a malformed selector is InvalidArgument and says what is wrong.
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100", "", "env in (prod")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid selector")));
  EXPECT_THAT(
      registry->RegisterService(Target("http://a:9100", "", "env=test")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("no server found for selector 'env=test'")));
  ServiceRegistration labelled = Target("http://a:9100");
  labelled.labels = {{"__scheme__", "https"}};
  EXPECT_THAT(registry->RegisterService(labelled), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->RegisterService(Target("http://a:9100/probe?mod-ule=x")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("__param_mod-ule")));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, IsEmpty());
}

TEST_F(RegistryTest, ReRegisteringAnEndpointReplacesTheService) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration first = Target("HTTP://a:9100/metrics");
  first.labels = {{"team", "x"}};
  ASSERT_THAT(registry->RegisterService(first), IsOk());
  ServiceRegistration second = Target("http://a:9100/metrics");
  second.name = "renamed";
  absl::StatusOr<Service> stored = registry->RegisterService(second);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->endpoint, "http://a:9100/metrics");
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("default");
  ASSERT_THAT(services, IsOk());
  ASSERT_THAT(*services, SizeIs(1));
  EXPECT_EQ((*services)[0].name, "renamed");
  EXPECT_THAT((*services)[0].labels, IsEmpty());
}

// docs/decisions.md D9, D10.
TEST_F(RegistryTest, UnregisterServiceByIdOrByAnyFormOfItsEndpoint) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  absl::StatusOr<Service> a = registry->RegisterService(Target("http://a:9100/metrics"));
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100/metrics")), IsOk());

  EXPECT_THAT(registry->UnregisterService("HTTP://b:9100/metrics", ""), IsOk());
  EXPECT_THAT(registry->UnregisterService(a->id, "default"), IsOk());
  EXPECT_THAT(registry->UnregisterService(a->id, "default"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not found")));
  // Path tricks never reach another key.
  EXPECT_THAT(registry->UnregisterService("../../../server/v1/p1", "default"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->UnregisterService(a->id, "../server"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<std::vector<Server>> servers = registry->ListServers();
  ASSERT_THAT(servers, IsOk());
  EXPECT_THAT(*servers, SizeIs(1));
}

// docs/decisions.md D2.
TEST_F(RegistryTest, UnregisteringANamespaceDeletesExactlyItsServices) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("web", ExportConfig::kStandard), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("default-blackbox", ExportConfig::kBlackbox), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100", "web")), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9115", "default-blackbox")), IsOk());

  ASSERT_THAT(registry->UnregisterNamespace("web"), IsOk());
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("");
  ASSERT_THAT(services, IsOk());
  ASSERT_THAT(*services, SizeIs(1));
  EXPECT_EQ((*services)[0].namespace_name, "default-blackbox");
  EXPECT_THAT(registry->UnregisterNamespace("web"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not found")));
  EXPECT_THAT(registry->RegisterNamespace("bad name", ExportConfig::kStandard),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->RegisterNamespace("x", static_cast<ExportConfig>(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("export config 7")));
}

// Registrations without a namespace need `default`: it cannot be deleted, and keeps its services.
TEST_F(RegistryTest, TheDefaultNamespaceCannotBeUnregistered) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  EXPECT_THAT(registry->UnregisterNamespace("default"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("namespace default cannot be unregistered")));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("default");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, SizeIs(1));
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

// docs/decisions.md D15.
TEST_F(RegistryTest, TargetGroupsFollowTheNamespaceExportConfig) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterNamespace("probes", ExportConfig::kBlackbox), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100/metrics")), IsOk());
  ServiceRegistration probe = Target("https://example.com", "probes");
  probe.labels = {{"module", "http_2xx"}};
  ASSERT_THAT(registry->RegisterService(probe), IsOk());

  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(), R"([{"targets":["a:9100"],"labels":{"__metrics_path__":"/metrics",)"
                             R"("__scheme__":"http","instance":"a:9100","job":"node"}}])");
  body = registry->HttpSd("p1", "probes", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(),
            R"([{"targets":["https://example.com"],"labels":{"module":"http_2xx"}}])");
  body = registry->HttpSd("p1", "probes", "standard");
  ASSERT_THAT(body, IsOk());
  EXPECT_THAT((*body)->json(), HasSubstr(R"("job":"node")"));

  ASSERT_THAT(registry->RegisterNamespace("probes", ExportConfig::kDisabled), IsOk());
  body = registry->HttpSd("p1", "probes", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(), "[]");

  EXPECT_THAT(registry->HttpSd("p1", "default", "disabled"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid exporter config: 'disabled'")));
  EXPECT_THAT(registry->HttpSd(".*", "default", ""), StatusIs(absl::StatusCode::kInvalidArgument));
  // An unknown server or namespace is an empty answer, never an error: Prometheus would keep
  // the old targets of a server that answers with an error.
  for (const auto& [server, ns] : {std::pair{"p.", "default"}, std::pair{"p1", "nowhere"}}) {
    body = registry->HttpSd(server, ns, "");
    ASSERT_THAT(body, IsOk());
    EXPECT_EQ((*body)->json(), "[]");
    absl::StatusOr<std::vector<targetgroup::TargetGroup>> groups =
        registry->TargetGroups(server, ns, "");
    ASSERT_THAT(groups, IsOk());
    EXPECT_TRUE(groups->empty());
  }
  absl::StatusOr<std::vector<targetgroup::TargetGroup>> groups =
      registry->TargetGroups("p1", "default", "blackbox");
  ASSERT_THAT(groups, IsOk());
  ASSERT_THAT(*groups, SizeIs(1));
  EXPECT_THAT((*groups)[0].targets, ElementsAre("http://a:9100/metrics"));
}

TEST_F(RegistryTest, HttpSdETagChangesWithTheContentOnly) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> first =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(first, IsOk());
  // An unrelated change keeps the answer and its tag.
  ASSERT_THAT(registry->RegisterNamespace("other", ExportConfig::kStandard), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> same =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(same, IsOk());
  EXPECT_EQ((*same)->etag(), (*first)->etag());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100")), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> changed =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(changed, IsOk());
  EXPECT_NE((*changed)->etag(), (*first)->etag());
  EXPECT_THAT((*changed)->json(), HasSubstr("b:9100"));
}

// The I/O thread's variant answers only what is rendered already, and never renders.
TEST_F(RegistryTest, CachedHttpSdAnswersOnlyRenderedBodies) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> cached =
      registry->CachedHttpSd("p1", "default", "");
  ASSERT_THAT(cached, IsOk());
  EXPECT_EQ(*cached, nullptr);
  // Still not rendered: asking did not render it.
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(nullptr));

  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(*body));
  // Another config is another body, not rendered yet.
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", "blackbox"), IsOkAndHolds(nullptr));

  // A change of the slice makes the cached body stale: nothing until it is rendered anew.
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100")), IsOk());
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(nullptr));
  body = registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_THAT((*body)->json(), HasSubstr("b:9100"));
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", ""), IsOkAndHolds(*body));

  // Nothing to render: the empty answer right away. Errors as HttpSd.
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> unknown =
      registry->CachedHttpSd("nobody", "default", "");
  ASSERT_THAT(unknown, IsOk());
  ASSERT_NE(*unknown, nullptr);
  EXPECT_EQ((*unknown)->json(), "[]");
  EXPECT_THAT(registry->CachedHttpSd(".*", "default", ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->CachedHttpSd("p1", "default", "disabled"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RegistryTest, ServiceCountsAreReported) {
  absl::Mutex mu;
  ServiceCounts last;
  auto registry = Start({.on_counts = [&](const ServiceCounts& counts) {
    absl::MutexLock lock(&mu);
    last = counts;
  }});
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100")), IsOk());
  absl::MutexLock lock(&mu);
  EXPECT_EQ(last, (ServiceCounts{{{"p1", "default"}, 2}}));
}

// A store whose reads fail: the registry never loads.
// Two replicas on one store: a revocation through one is seen by the other's view.
TEST_F(RegistryTest, RevocationsReachEveryReplicaThroughTheStore) {
  std::unique_ptr<Registry> first = Start();
  std::unique_ptr<Registry> second = Start();
  EXPECT_FALSE(second->IsTokenRevoked("ci-42"));
  absl::StatusOr<repo::TokenRevocation> revoked = first->RevokeToken("ci-42", "user:alice");
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->revoked_by, "user:alice");
  EXPECT_TRUE(first->IsTokenRevoked("ci-42"));
  ASSERT_TRUE(second->WaitForRevision(first->Current()->snapshot().revision, kWait));
  EXPECT_TRUE(second->IsTokenRevoked("ci-42"));
  EXPECT_FALSE(second->IsTokenRevoked("ci-43"));
  absl::StatusOr<std::vector<repo::TokenRevocation>> listed = second->ListRevokedTokens();
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 1U);
  EXPECT_EQ(listed->front().id, "ci-42");
  EXPECT_THAT(first->RevokeToken("a/b", "user:alice"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

class UnreachableStore : public store::Store {
 public:
  absl::StatusOr<store::KeyValue> Get(std::string_view) override { return Down(); }
  absl::StatusOr<store::RangeResult> Range(std::string_view) override { return Down(); }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn&) override { return Down(); }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(std::string_view, int64_t,
                                                            store::WatchCallback) override {
    return Down();
  }
  absl::StatusOr<int64_t> CurrentRevision() override { return Down(); }

 private:
  static absl::Status Down() { return absl::UnavailableError("connection refused"); }
};

TEST(RegistryUnloadedTest, AnswersUnavailableUntilTheStoreIsLoaded) {
  UnreachableStore store;
  Registry registry(store, repo::Keys(),
                    {.view = {.retry_backoff = absl::Milliseconds(1),
                              .max_retry_backoff = absl::Milliseconds(5)}});
  EXPECT_THAT(registry.Initialize(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("connection refused")));
  EXPECT_THAT(registry.Ready(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(registry.ListServers(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(registry.HttpSd("p1", "default", ""), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(registry.RegisterServer("p1", {}), StatusIs(absl::StatusCode::kUnavailable));
}

// docs/decisions.md D37: records are bounded at registration, with the field and the limit in the
// message.
TEST_F(RegistryTest, RegisterServiceEnforcesTheRecordLimits) {
  auto registry = Start();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration big = Target("http://a:9100/metrics");
  big.labels = {{"x", std::string(5000, 'v')}};
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("label value of 'x' is 5000 bytes; the limit is 4096")));
  big.labels.clear();
  for (int i = 0; i <= 64; ++i) {
    big.labels[fmt::format("l{}", i)] = "v";
  }
  EXPECT_THAT(registry->RegisterService(big), StatusIs(absl::StatusCode::kInvalidArgument,
                                                       HasSubstr("65 labels; the limit is 64")));
  big.labels.clear();
  big.description = std::string(1025, 'd');
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("description is 1025 bytes; the limit is 1024")));
  big.description.clear();
  big.name = std::string(300, 'n');
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name is 300 bytes; the limit is 200")));
  big.name = "node";
  big.namespace_name = std::string(256, 'n');
  EXPECT_THAT(registry->RegisterService(big),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name is 256 bytes; the limit is 255")));
  EXPECT_THAT(registry->RegisterNamespace(std::string(256, 'n'), ExportConfig::kStandard),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("name is 256 bytes; the limit is 255")));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, IsEmpty());

  // Right at the limits is fine.
  ServiceRegistration full = Target("http://b:9100/metrics");
  full.name = std::string(200, 'n');
  full.description = std::string(1024, 'd');
  for (int i = 0; i < 64; ++i) {
    full.labels[fmt::format("l{}", i)] = std::string(4096, 'v');
  }
  EXPECT_THAT(registry->RegisterService(full), IsOk());
}

// docs/decisions.md D36: a stored record that cannot be served (the Go original accepted
// "localhost:9100") is left out of http_sd and ListTargetGroup, listed apart with the reason,
// counted, and removable; the good services next to it are served as before.
TEST_F(RegistryTest, ALegacyRecordNeverBreaksAnAnswer) {
  std::vector<InvalidCounts> counts;
  absl::Mutex mu;
  auto registry = Start({.on_invalid = [&](const InvalidCounts& c) {
    absl::MutexLock lock(&mu);
    counts.push_back(c);
  }});
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100/metrics")), IsOk());
  const std::string legacy_id = ServiceId("localhost:9100");
  ASSERT_THAT(store::Put(*store_, repo::Keys().Service("default", legacy_id),
                         R"({"id":")" + legacy_id +
                             R"(","name":"node","namespace":"default",)"
                             R"("endpoint":"localhost:9100","servers":["p1"]})"),
              IsOk());
  Service too_big{.name = "big", .namespace_name = "default", .endpoint = "http://big:1"};
  too_big.id = ServiceId(too_big.endpoint);
  too_big.labels = {{"blob", std::string(3 << 20, 'x')}};
  ASSERT_THAT(store::Put(*store_, repo::Keys().Service("default", too_big.id),
                         repo::EncodeService(too_big)),
              IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100/metrics")), IsOk());

  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      registry->HttpSd("p1", "default", "");
  ASSERT_THAT(body, IsOk());
  EXPECT_EQ((*body)->json(), R"([{"targets":["a:9100"],"labels":{"__metrics_path__":"/metrics",)"
                             R"("__scheme__":"http","instance":"a:9100","job":"node"}},)"
                             R"({"targets":["b:9100"],"labels":{"__metrics_path__":"/metrics",)"
                             R"("__scheme__":"http","instance":"b:9100","job":"node"}}])");
  absl::StatusOr<std::vector<targetgroup::TargetGroup>> groups =
      registry->TargetGroups("p1", "default", "");
  ASSERT_THAT(groups, IsOk());
  EXPECT_THAT(*groups, SizeIs(2));
  absl::StatusOr<std::vector<Service>> services = registry->ListServices("default");
  ASSERT_THAT(services, IsOk());
  EXPECT_THAT(*services, SizeIs(2));

  absl::StatusOr<std::vector<InvalidService>> invalid = registry->ListInvalidServices("");
  ASSERT_THAT(invalid, IsOk());
  ASSERT_THAT(*invalid, SizeIs(2));
  std::map<std::string, InvalidService> by_id;
  for (const InvalidService& record : *invalid) {
    by_id[record.service.id] = record;
  }
  EXPECT_THAT(by_id.at(legacy_id).reason, HasSubstr("'localhost:9100' is not a valid url"));
  EXPECT_EQ(by_id.at(legacy_id).service.endpoint, "localhost:9100");
  EXPECT_THAT(by_id.at(legacy_id).service.servers, IsEmpty());
  EXPECT_EQ(by_id.at(too_big.id).reason,
            "label value of 'blob' is 3145728 bytes; the limit is 4096");
  EXPECT_EQ(by_id.at(too_big.id).service.labels.at("blob").size(), kMaxLabelValueBytes);
  EXPECT_THAT(registry->ListInvalidServices("other"), IsOkAndHolds(IsEmpty()));
  {
    absl::MutexLock lock(&mu);
    ASSERT_FALSE(counts.empty());
    EXPECT_EQ(counts.back(), (InvalidCounts{{{"service", "default"}, 2}}));
  }

  // Removable by id like any other service, although the record does not parse.
  EXPECT_THAT(registry->UnregisterService(legacy_id, "default"), IsOk());
  EXPECT_THAT(registry->UnregisterService(too_big.id, "default"), IsOk());
  EXPECT_THAT(registry->ListInvalidServices(""), IsOkAndHolds(IsEmpty()));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(counts.back(), InvalidCounts{});
}

// Registrations with a TTL (docs/decisions.md D49). The registry's clock is fixed an hour in the
// past, and the store's reaper is driven by hand, so what expires when is decided by the test
// alone.
class TtlTest : public RegistryTest {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store =
        store::OpenEmbeddedStore({.reap_interval = absl::ZeroDuration(), .renew_in_place = false});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  // `probe`: how long the view sleeps at most, hence how soon it sees the clock move.
  std::unique_ptr<Registry> StartWithClock(absl::Duration probe = absl::Milliseconds(5)) {
    return Start(ClockOptions(probe));
  }

  RegistryOptions ClockOptions(absl::Duration probe = absl::Milliseconds(5)) {
    RegistryOptions options;
    options.view.store_probe_interval = probe;
    options.clock = [this] {
      absl::MutexLock lock(&mu_);
      return now_;
    };
    options.min_ttl = absl::Seconds(5);
    options.max_ttl = absl::Seconds(60);
    options.on_renewals = [this](int64_t renewed) {
      absl::MutexLock lock(&mu_);
      renewals_ += renewed;
    };
    options.on_ttl = [this](int64_t with_ttl, int64_t expired) {
      absl::MutexLock lock(&mu_);
      with_ttl_ = with_ttl;
      expired_ = expired;
    };
    return options;
  }

  void SetNow(absl::Time now) {
    absl::MutexLock lock(&mu_);
    now_ = now;
  }

  // The clock reaches `at`; the store deletes what has expired then, and `registry` shows it.
  void ReapAt(Registry& registry, absl::Time at) {
    SetNow(at);
    ASSERT_THAT(store::ReapEmbeddedStore(*store_, at), IsOk());
    absl::StatusOr<int64_t> revision = store_->CurrentRevision();
    ASSERT_THAT(revision, IsOk());
    ASSERT_TRUE(registry.WaitForRevision(*revision, kWait));
  }

  // Waits until `registry` lists exactly `endpoints` (the view removes expired services on its
  // own thread).
  void AwaitEndpoints(const Registry& registry, const std::vector<std::string>& endpoints) {
    ::discovery::testing::Eventually([&] { return Endpoints(registry) == endpoints; }, kWait);
    EXPECT_EQ(Endpoints(registry), endpoints);
  }

  int64_t Expired() {
    absl::MutexLock lock(&mu_);
    return expired_;
  }
  int64_t WithTtl() {
    absl::MutexLock lock(&mu_);
    return with_ttl_;
  }

  static std::vector<std::string> Endpoints(const Registry& registry) {
    std::vector<std::string> endpoints;
    for (const auto& [endpoint, servers] : Placement(registry)) {
      endpoints.push_back(endpoint);
    }
    return endpoints;
  }

  const absl::Time t0_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) - 3600);
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = t0_;
  int64_t renewals_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t with_ttl_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_F(TtlTest, TheServerBoundsTheTtlAndWithoutOneNothingExpires) {
  auto registry = StartWithClock();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration long_ttl = Target("http://long:9100");
  long_ttl.ttl = absl::Hours(1);
  absl::StatusOr<Service> registered = registry->RegisterService(long_ttl);
  ASSERT_THAT(registered, IsOk());
  EXPECT_EQ(registered->ttl, absl::Seconds(60));
  EXPECT_EQ(registered->expires, t0_ + absl::Seconds(60));
  ServiceRegistration short_ttl = Target("http://short:9100");
  short_ttl.ttl = absl::Milliseconds(10);
  registered = registry->RegisterService(short_ttl);
  ASSERT_THAT(registered, IsOk());
  EXPECT_EQ(registered->ttl, absl::Seconds(5));
  ServiceRegistration negative = Target("http://negative:9100");
  negative.ttl = -absl::Seconds(1);
  EXPECT_THAT(registry->RegisterService(negative), StatusIs(absl::StatusCode::kInvalidArgument));
  registered = registry->RegisterService(Target("http://forever:9100"));
  ASSERT_THAT(registered, IsOk());
  EXPECT_FALSE(registered->HasTtl());

  ReapAt(*registry, t0_ + absl::Hours(10));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://forever:9100"));
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(with_ttl_, 0);
  EXPECT_EQ(expired_, 2);
  EXPECT_EQ(renewals_, 2);
}

TEST_F(TtlTest, KeepAliveMovesTheExpiryAndNamesWhatIsGone) {
  auto registry = StartWithClock();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  ServiceRegistration b = Target("http://b:9100");
  b.ttl = absl::Seconds(30);
  absl::StatusOr<Service> service_a = registry->RegisterService(a);
  ASSERT_THAT(service_a, IsOk());
  ASSERT_THAT(registry->RegisterService(b), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://c:9100")), IsOk());

  SetNow(t0_ + absl::Seconds(20));
  absl::StatusOr<KeepAliveResult> renewed =
      registry->KeepAlive({service_a->id, "http://c:9100", "http://unknown:9100"}, "");
  ASSERT_THAT(renewed, IsOk());
  ASSERT_THAT(renewed->renewed, SizeIs(2));
  EXPECT_EQ(renewed->renewed[0].expires, t0_ + absl::Seconds(50));
  EXPECT_FALSE(renewed->renewed[1].HasTtl());
  EXPECT_THAT(renewed->not_found, ElementsAre("http://unknown:9100"));

  // b was not renewed: it goes at its deadline, a lives on to its new one.
  ReapAt(*registry, t0_ + absl::Seconds(31));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://a:9100", "http://c:9100"));
  ReapAt(*registry, t0_ + absl::Seconds(51));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://c:9100"));
  renewed = registry->KeepAlive({service_a->id}, "default");
  ASSERT_THAT(renewed, IsOk());
  EXPECT_THAT(renewed->renewed, IsEmpty());
  EXPECT_THAT(renewed->not_found, ElementsAre(service_a->id));

  EXPECT_THAT(registry->KeepAlive({"not-an-id"}, ""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(registry->KeepAlive({service_a->id}, "nope"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      registry->KeepAlive(std::vector<std::string>(kMaxKeepAliveIds + 1, service_a->id), ""),
      StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(TtlTest, RenewingWithinTheSameSecondOfDeadlineWritesNothing) {
  auto registry = StartWithClock();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  SetNow(t0_ + absl::Milliseconds(200));
  absl::StatusOr<Service> service = registry->RegisterService(a);
  ASSERT_THAT(service, IsOk());
  const std::map<std::string, int64_t> before = StoredServiceRevisions();
  SetNow(t0_ + absl::Milliseconds(700));
  ASSERT_THAT(registry->KeepAlive({service->id}, ""), IsOk());
  EXPECT_EQ(StoredServiceRevisions(), before);
  SetNow(t0_ + absl::Seconds(3));
  ASSERT_THAT(registry->KeepAlive({service->id}, ""), IsOk());
  EXPECT_NE(StoredServiceRevisions(), before);
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(renewals_, 3);
  EXPECT_EQ(with_ttl_, 1);
}

TEST_F(TtlTest, RegisteringAgainWithoutATtlMakesTheServicePermanent) {
  auto registry = StartWithClock();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  ASSERT_THAT(registry->RegisterService(a), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://a:9100")), IsOk());
  ReapAt(*registry, t0_ + absl::Hours(1));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://a:9100"));
}

TEST_F(TtlTest, AServiceLeavesAtItsDeadlineBeforeTheStoreDeletesItAndCountsOnce) {
  auto registry = StartWithClock();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  ASSERT_THAT(registry->RegisterService(a), IsOk());
  ASSERT_THAT(registry->RegisterService(Target("http://b:9100")), IsOk());

  SetNow(t0_ + absl::Seconds(30));
  AwaitEndpoints(*registry, {"http://b:9100"});
  // The store (whose reaper does not run here) still holds the record.
  EXPECT_THAT(StoredServiceRevisions(), SizeIs(2));
  EXPECT_EQ(Expired(), 1);
  EXPECT_EQ(WithTtl(), 0);
  // Its delete changes nothing the view shows and is no second expiration.
  ReapAt(*registry, t0_ + absl::Seconds(31));
  EXPECT_THAT(StoredServiceRevisions(), SizeIs(1));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://b:9100"));
  EXPECT_EQ(Expired(), 1);
}

TEST_F(TtlTest, KeepAliveDoesNotReviveAnExpiredServiceButRegisteringAgainDoes) {
  auto registry = StartWithClock();
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  absl::StatusOr<Service> registered = registry->RegisterService(a);
  ASSERT_THAT(registered, IsOk());
  SetNow(t0_ + absl::Seconds(31));
  AwaitEndpoints(*registry, {});
  const std::map<std::string, int64_t> stored = StoredServiceRevisions();
  ASSERT_THAT(stored, SizeIs(1));

  absl::StatusOr<KeepAliveResult> renewed = registry->KeepAlive({registered->id}, "");
  ASSERT_THAT(renewed, IsOk());
  EXPECT_THAT(renewed->renewed, IsEmpty());
  EXPECT_THAT(renewed->not_found, ElementsAre(registered->id));
  EXPECT_EQ(StoredServiceRevisions(), stored);
  EXPECT_THAT(Endpoints(*registry), IsEmpty());

  registered = registry->RegisterService(a);
  ASSERT_THAT(registered, IsOk());
  EXPECT_EQ(registered->expires, t0_ + absl::Seconds(61));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://a:9100"));
  // The store's expiry of the old record no longer applies: registering replaced it.
  ReapAt(*registry, t0_ + absl::Seconds(40));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://a:9100"));
  EXPECT_EQ(Expired(), 1);
  EXPECT_EQ(WithTtl(), 1);
}

TEST_F(TtlTest, KeepAlivePastTheDeadlineFindsNothingEvenBeforeTheViewRemovesTheService) {
  // The view sleeps until the deadline by the real clock (30 s): it has not removed the
  // service when the fake clock has passed it.
  auto registry = StartWithClock(absl::Hours(1));
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  absl::StatusOr<Service> registered = registry->RegisterService(a);
  ASSERT_THAT(registered, IsOk());
  const std::map<std::string, int64_t> stored = StoredServiceRevisions();
  SetNow(t0_ + absl::Seconds(30));
  absl::StatusOr<KeepAliveResult> renewed = registry->KeepAlive({registered->id}, "");
  ASSERT_THAT(renewed, IsOk());
  EXPECT_THAT(renewed->renewed, IsEmpty());
  EXPECT_THAT(renewed->not_found, ElementsAre(registered->id));
  EXPECT_EQ(StoredServiceRevisions(), stored);
}

TEST_F(TtlTest, ARestartServesNoRecordPastItsDeadline) {
  {
    auto registry = StartWithClock();
    ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
    ServiceRegistration a = Target("http://a:9100");
    a.ttl = absl::Seconds(30);
    ASSERT_THAT(registry->RegisterService(a), IsOk());
    ServiceRegistration b = Target("http://b:9100");
    b.ttl = absl::Seconds(60);
    ASSERT_THAT(registry->RegisterService(b), IsOk());
  }
  SetNow(t0_ + absl::Seconds(45));
  // The store still holds both records; the first snapshot of the new registry has only b.
  auto registry = StartWithClock(absl::Hours(1));
  EXPECT_THAT(StoredServiceRevisions(), SizeIs(2));
  EXPECT_THAT(Endpoints(*registry), ElementsAre("http://b:9100"));
  EXPECT_EQ(Expired(), 1);
  EXPECT_EQ(WithTtl(), 1);
}

// A store that runs `before_commit` once, before the first transaction that writes `key`.
class InterposingStore : public store::Store {
 public:
  explicit InterposingStore(store::Store& store) : store_(store) {}

  void BeforeCommitOf(std::string key, std::function<void()> action) {
    absl::MutexLock lock(&mu_);
    key_ = std::move(key);
    action_ = std::move(action);
  }

  absl::StatusOr<store::KeyValue> Get(std::string_view key) override { return store_.Get(key); }
  absl::StatusOr<store::RangeResult> Range(std::string_view prefix) override {
    return store_.Range(prefix);
  }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& txn) override {
    std::function<void()> action;
    {
      absl::MutexLock lock(&mu_);
      if (action_ && std::any_of(txn.ops.begin(), txn.ops.end(),
                                 [this](const store::Op& op)
                                     ABSL_SHARED_LOCKS_REQUIRED(mu_) { return op.key == key_; })) {
        action = std::exchange(action_, nullptr);
      }
    }
    if (action) {
      action();
    }
    return store_.Commit(txn);
  }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, store::WatchCallback callback) override {
    return store_.Watch(prefix, start_revision, std::move(callback));
  }
  absl::StatusOr<int64_t> CurrentRevision() override { return store_.CurrentRevision(); }

 private:
  store::Store& store_;
  absl::Mutex mu_;
  std::string key_ ABSL_GUARDED_BY(mu_);
  std::function<void()> action_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TtlTest, AKeepAliveRacingAnUnregisterDoesNotReviveTheService) {
  InterposingStore store(*store_);
  Registry registry(store, repo::Keys(), ClockOptions());
  ASSERT_THAT(registry.Initialize(kWait), IsOk());
  ASSERT_THAT(registry.RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  absl::StatusOr<Service> registered = registry.RegisterService(a);
  ASSERT_THAT(registered, IsOk());
  SetNow(t0_ + absl::Seconds(10));
  // The unregistration commits after KeepAlive read the view and before its write.
  store.BeforeCommitOf(repo::Keys().Service("default", registered->id), [&] {
    EXPECT_THAT(registry.UnregisterService(registered->id, ""), IsOk());
  });
  absl::StatusOr<KeepAliveResult> renewed = registry.KeepAlive({registered->id}, "");
  ASSERT_THAT(renewed, IsOk());
  EXPECT_THAT(renewed->renewed, IsEmpty());
  EXPECT_THAT(renewed->not_found, ElementsAre(registered->id));
  EXPECT_THAT(StoredServiceRevisions(), IsEmpty());
  EXPECT_THAT(Endpoints(registry), IsEmpty());
}

TEST_F(TtlTest, AKeepAliveRacingARegistrationRenewsTheNewRecord) {
  InterposingStore store(*store_);
  Registry registry(store, repo::Keys(), ClockOptions());
  ASSERT_THAT(registry.Initialize(kWait), IsOk());
  ASSERT_THAT(registry.RegisterServer("p1", {}), IsOk());
  ServiceRegistration a = Target("http://a:9100");
  a.ttl = absl::Seconds(30);
  absl::StatusOr<Service> registered = registry.RegisterService(a);
  ASSERT_THAT(registered, IsOk());
  ServiceRegistration relabelled = a;
  relabelled.labels = {{"team", "new"}};
  store.BeforeCommitOf(repo::Keys().Service("default", registered->id),
                       [&] { EXPECT_THAT(registry.RegisterService(relabelled), IsOk()); });
  // The first write of the keepalive is the registration's (the action runs once).
  SetNow(t0_ + absl::Seconds(20));
  absl::StatusOr<KeepAliveResult> renewed = registry.KeepAlive({registered->id}, "");
  ASSERT_THAT(renewed, IsOk());
  ASSERT_THAT(renewed->renewed, SizeIs(1));
  EXPECT_EQ(renewed->renewed[0].expires, t0_ + absl::Seconds(50));
  absl::StatusOr<std::vector<Service>> services = registry.ListServices("default");
  ASSERT_THAT(services, IsOk());
  ASSERT_THAT(*services, SizeIs(1));
  EXPECT_EQ((*services)[0].labels, relabelled.labels);
  EXPECT_EQ((*services)[0].expires, t0_ + absl::Seconds(50));
}

}  // namespace
}  // namespace discovery::registry
