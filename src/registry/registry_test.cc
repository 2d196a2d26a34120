#include "registry/registry.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "registry/registry_test_fixture.h"
#include "repo/codec.h"
#include "store/embedded/embedded_store.h"
#include "testing/eventually.h"
#include "testing/status_matchers.h"

// The registry's life: initialization, readiness, replicas on one store, a store that cannot be
// reached, and registrations with a TTL.
namespace discovery::registry {
namespace {

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

// A store whose reads fail: the registry never loads.
class UnreachableStore : public store::Store {
 public:
  absl::StatusOr<store::KeyValue> Get(std::string_view /*key*/) override { return Down(); }
  absl::StatusOr<store::RangeResult> Range(std::string_view /*prefix*/) override { return Down(); }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& /*txn*/) override { return Down(); }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(
      std::string_view /*prefix*/, int64_t /*from*/, store::WatchCallback /*callback*/) override {
    return Down();
  }
  absl::StatusOr<int64_t> CurrentRevision() override { return Down(); }

 private:
  static absl::Status Down() { return absl::UnavailableError("connection refused"); }
};

// A view that reads the store again soon after a failed read.
RegistryOptions QuickRetries() {
  return {
      .view = {.retry_backoff = absl::Milliseconds(1), .max_retry_backoff = absl::Milliseconds(5)}};
}

TEST(RegistryUnloadedTest, AnswersUnavailableUntilTheStoreIsLoaded) {
  UnreachableStore store;
  Registry registry(store, repo::Keys(), QuickRetries());
  EXPECT_THAT(registry.Initialize(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("connection refused")));
  EXPECT_THAT(registry.Ready(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(registry.ListServers(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(registry.HttpSd("p1", "default", ""), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(registry.RegisterServer("p1", {}), StatusIs(absl::StatusCode::kUnavailable));
}

// Forwards every call to `store`; the stores of the tests below override what they change.
class ForwardingStore : public store::Store {
 public:
  explicit ForwardingStore(store::Store& store) : store_(store) {}

  absl::StatusOr<store::KeyValue> Get(std::string_view key) override { return store_.Get(key); }
  absl::StatusOr<store::RangeResult> Range(std::string_view prefix) override {
    return store_.Range(prefix);
  }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& txn) override {
    return store_.Commit(txn);
  }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, store::WatchCallback callback) override {
    return store_.Watch(prefix, start_revision, std::move(callback));
  }
  absl::StatusOr<int64_t> CurrentRevision() override { return store_.CurrentRevision(); }

 protected:
  store::Store& store_;
};

// A store that answers, but whose range reads wait until the test lets them go: a large store
// still being loaded. The first `failing_reads` reads fail at once instead.
class SlowLoadingStore : public ForwardingStore {
 public:
  explicit SlowLoadingStore(store::Store& store, int failing_reads = 0)
      : ForwardingStore(store), failing_reads_(failing_reads) {}

  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

  // Returns once `reads` reads have begun.
  void AwaitReads(int reads) {
    absl::MutexLock lock(&mu_);
    auto begun = [this, reads]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return reads_ >= reads; };
    mu_.Await(absl::Condition(&begun));
  }

  absl::StatusOr<store::RangeResult> Range(std::string_view prefix) override {
    AwaitRelease();
    return store_.Range(prefix);
  }
  absl::StatusOr<int64_t> RangeInBatches(std::string_view prefix, size_t batch_size,
                                         const ConsumeBatch& consume) override {
    {
      absl::MutexLock lock(&mu_);
      if (++reads_ <= failing_reads_) {
        return absl::UnavailableError("connection refused");
      }
    }
    AwaitRelease();
    return store_.RangeInBatches(prefix, batch_size, consume);
  }

 private:
  void AwaitRelease() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&released_));
  }

  const int failing_reads_;
  absl::Mutex mu_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
};

// A load that takes longer than Initialize waits is not a failure: the daemon waits on for it
// rather than pausing as it does when the store cannot be read.
TEST(RegistryUnloadedTest, SaysTheLoadIsStillGoingWhileTheStoreAnswers) {
  absl::StatusOr<std::unique_ptr<store::Store>> embedded = store::OpenEmbeddedStore({});
  ASSERT_THAT(embedded, IsOk());
  SlowLoadingStore store(**embedded);
  Registry registry(store, repo::Keys(), QuickRetries());
  EXPECT_THAT(registry.Initialize(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("still being loaded")));
  EXPECT_THAT(registry.Ready(), StatusIs(absl::StatusCode::kUnavailable));
  store.Release();
  EXPECT_THAT(registry.Initialize(kWait), IsOk());
  EXPECT_THAT(registry.Ready(), IsOk());
}

// A read that failed once is no reason to call the next one a failure while it goes on.
TEST(RegistryUnloadedTest, SaysTheLoadIsStillGoingWhenAReadIsTriedAgain) {
  absl::StatusOr<std::unique_ptr<store::Store>> embedded = store::OpenEmbeddedStore({});
  ASSERT_THAT(embedded, IsOk());
  SlowLoadingStore store(**embedded, /*failing_reads=*/1);
  Registry registry(store, repo::Keys(), QuickRetries());
  store.AwaitReads(2);
  EXPECT_THAT(registry.Initialize(absl::Milliseconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("still being loaded")));
  store.Release();
  EXPECT_THAT(registry.Initialize(kWait), IsOk());
}

// Registrations with a TTL (docs/decisions.md D49). The registry's clock is fixed an hour in the
// past, and the store's reaper is driven by hand, so what expires when is decided by the test
// alone.
class TtlTest : public RegistryTest, public TtlClock {
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
  static void AwaitEndpoints(const Registry& registry, const std::vector<std::string>& endpoints) {
    ::discovery::testing::Eventually([&] { return Endpoints(registry) == endpoints; }, kWait);
    EXPECT_EQ(Endpoints(registry), endpoints);
  }

  static std::vector<std::string> Endpoints(const Registry& registry) {
    std::vector<std::string> endpoints;
    for (const auto& [endpoint, servers] : Placement(registry)) {
      endpoints.push_back(endpoint);
    }
    return endpoints;
  }
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
  EXPECT_EQ(WithTtl(), 0);
  EXPECT_EQ(Expired(), 2);
  EXPECT_EQ(Renewals(), 2);
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
  EXPECT_EQ(Renewals(), 3);
  EXPECT_EQ(WithTtl(), 1);
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
class InterposingStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  void BeforeCommitOf(std::string key, std::function<void()> action) {
    absl::MutexLock lock(&mu_);
    key_ = std::move(key);
    action_ = std::move(action);
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

 private:
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
