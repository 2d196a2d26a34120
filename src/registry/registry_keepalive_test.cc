// KeepAlive on a store that renews in place (docs/decisions.md D49, "renewals do not grow the
// store"): a renewal writes no revision, the views leave the expiry of renewed services to the
// store's delete, and the list shows the deadline in force. The registry's clock is fixed an hour
// in the past and the reaper is driven by hand (at that clock's time), so what expires when is
// decided by the test alone.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "registry/registry.h"
#include "registry/registry_test_fixture.h"
#include "store/embedded/embedded_store.h"
#include "testing/eventually.h"
#include "testing/sqlite_files.h"
#include "testing/status_matchers.h"

namespace discovery::registry {
namespace {

class KeepAliveInPlaceTest : public ::testing::Test, public TtlClock {
 protected:
  void SetUp() override {
    path_ = std::filesystem::path(::testing::TempDir()) /
            (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".db");
    ::discovery::testing::RemoveSqliteDatabase(path_.string());
    absl::StatusOr<std::unique_ptr<store::Store>> store = OpenStore();
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  // Every store of the test is closed by now; the file would otherwise outlive the run.
  void TearDown() override {
    store_.reset();
    ::discovery::testing::RemoveSqliteDatabase(path_.string());
  }

  // Another "process" on the same file.
  absl::StatusOr<std::unique_ptr<store::Store>> OpenStore() const {
    return store::OpenEmbeddedStore(
        {.path = path_.string(), .reap_interval = absl::ZeroDuration()});
  }

  std::unique_ptr<Registry> Start(store::Store& store) {
    auto registry = std::make_unique<Registry>(store, repo::Keys(), ClockOptions());
    EXPECT_THAT(registry->Initialize(kWait), IsOk());
    return registry;
  }

  static absl::StatusOr<Service> RegisterWithTtl(Registry& registry, std::string endpoint) {
    ServiceRegistration registration{.name = "node", .endpoint = std::move(endpoint)};
    registration.ttl = absl::Seconds(30);
    return registry.RegisterService(registration);
  }

  // Server p1, and `endpoint` registered at t0 with a 30 s TTL and renewed at t0 + 25: its
  // record says t0 + 30, the deadline in force is t0 + 55. The clock is left at t0 + 25.
  absl::StatusOr<Service> RegisterAndRenewAt25(Registry& registry, std::string endpoint) {
    if (absl::StatusOr<Server> server = registry.RegisterServer("p1", {}); !server.ok()) {
      return server.status();
    }
    absl::StatusOr<Service> service = RegisterWithTtl(registry, std::move(endpoint));
    if (!service.ok()) {
      return service;
    }
    SetNow(t0_ + absl::Seconds(25));
    if (absl::StatusOr<KeepAliveResult> renewed = registry.KeepAlive({service->id}, "");
        !renewed.ok()) {
      return renewed.status();
    }
    return service;
  }

  // The clock reaches `at` and the store deletes what has expired by then.
  void ReapAt(absl::Time at) {
    SetNow(at);
    ASSERT_THAT(store::ReapEmbeddedStore(*store_, at), IsOk());
  }

  int64_t Revision() {
    absl::StatusOr<int64_t> revision = store_->CurrentRevision();
    EXPECT_THAT(revision, IsOk());
    return revision.value_or(-1);
  }

  // The services `registry` lists, with their expiry, by endpoint.
  static std::map<std::string, absl::Time> Listed(const Registry& registry) {
    std::map<std::string, absl::Time> listed;
    absl::StatusOr<std::vector<Service>> services = registry.ListServices("");
    EXPECT_THAT(services, IsOk());
    for (const Service& service : *services) {
      listed[service.endpoint] = service.expires;
    }
    return listed;
  }

  // Waits until the view of `registry` holds exactly `endpoints` (it learns of deletes from the
  // store's watch, on its own thread).
  static void AwaitEndpoints(const Registry& registry, const std::vector<std::string>& endpoints) {
    auto shown = [&registry] {
      std::vector<std::string> held;
      for (const auto& [endpoint, expires] : Listed(registry)) {
        held.push_back(endpoint);
      }
      return held;
    };
    ::discovery::testing::Eventually([&] { return shown() == endpoints; }, kWait);
    EXPECT_EQ(shown(), endpoints);
  }

  std::filesystem::path path_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(KeepAliveInPlaceTest, RenewalsWriteNoRevisionAndTheListShowsTheDeadlineInForce) {
  auto registry = Start(*store_);
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  absl::StatusOr<Service> a = RegisterWithTtl(*registry, "http://a:9100");
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(RegisterWithTtl(*registry, "http://b:9100"), IsOk());
  const int64_t before = Revision();

  for (const absl::Duration at : {absl::Seconds(10), absl::Seconds(20), absl::Seconds(40)}) {
    SetNow(t0_ + at);
    absl::StatusOr<KeepAliveResult> renewed = registry->KeepAlive({a->id}, "");
    ASSERT_THAT(renewed, IsOk());
    ASSERT_THAT(renewed->renewed, SizeIs(1));
    EXPECT_EQ(renewed->renewed[0].expires, t0_ + at + absl::Seconds(30));
    EXPECT_THAT(renewed->not_found, IsEmpty());
    if (at == absl::Seconds(20)) {
      // b was not renewed and has expired: the reaper deletes it, and only it.
      ReapAt(t0_ + absl::Seconds(31));
      AwaitEndpoints(*registry, {"http://a:9100"});
    }
  }
  // Three renewals, not one of them a revision (the reaper's delete of b is the one).
  EXPECT_EQ(Revision(), before + 1);
  EXPECT_EQ(Renewals(), 2 + 3);
  ::discovery::testing::Eventually([&] { return Expired() == 1; }, kWait);
  EXPECT_EQ(Expired(), 1);
  // Past the deadline its record was written with, a is listed with the one in force.
  EXPECT_THAT(Listed(*registry), ElementsAre(std::pair("http://a:9100", t0_ + absl::Seconds(70))));
}

TEST_F(KeepAliveInPlaceTest, ARenewedServiceGoesWhenItStopsBeingRenewedAndCountsAsExpired) {
  auto registry = Start(*store_);
  absl::StatusOr<Service> a = RegisterAndRenewAt25(*registry, "http://a:9100");
  ASSERT_THAT(a, IsOk());
  // Its record still says t0 + 30; it lives until t0 + 55.
  SetNow(t0_ + absl::Seconds(45));
  ReapAt(t0_ + absl::Seconds(45));
  EXPECT_THAT(Listed(*registry), SizeIs(1));
  EXPECT_EQ(Expired(), 0);
  ReapAt(t0_ + absl::Seconds(55));
  AwaitEndpoints(*registry, {});
  ::discovery::testing::Eventually([&] { return Expired() == 1; }, kWait);
  EXPECT_EQ(Expired(), 1);
  // Gone means gone: a keepalive does not bring it back.
  absl::StatusOr<KeepAliveResult> renewed = registry->KeepAlive({a->id}, "");
  ASSERT_THAT(renewed, IsOk());
  EXPECT_THAT(renewed->renewed, IsEmpty());
  EXPECT_THAT(renewed->not_found, ElementsAre(a->id));
}

TEST_F(KeepAliveInPlaceTest, UnregisteringARenewedServicePastItsRecordsDeadlineIsNoExpiration) {
  auto registry = Start(*store_);
  absl::StatusOr<Service> a = RegisterAndRenewAt25(*registry, "http://a:9100");
  ASSERT_THAT(a, IsOk());
  SetNow(t0_ + absl::Seconds(40));
  ASSERT_THAT(registry->UnregisterService(a->id, ""), IsOk());
  AwaitEndpoints(*registry, {});
  // b expires after a's unregistration: the count then is b alone.
  ASSERT_THAT(RegisterWithTtl(*registry, "http://b:9100"), IsOk());
  ReapAt(t0_ + absl::Seconds(71));
  AwaitEndpoints(*registry, {});
  ::discovery::testing::Eventually([&] { return Expired() >= 1; }, kWait);
  EXPECT_EQ(Expired(), 1);
}

TEST_F(KeepAliveInPlaceTest, AnotherProcessKeepsARenewedServiceUntilTheReaperDeletesIt) {
  absl::StatusOr<std::unique_ptr<store::Store>> other_store = OpenStore();
  ASSERT_THAT(other_store, IsOk());
  auto registry = Start(*store_);
  ASSERT_THAT(registry->RegisterServer("p1", {}), IsOk());
  absl::StatusOr<Service> a = RegisterWithTtl(*registry, "http://a:9100");
  ASSERT_THAT(a, IsOk());
  // A replica (or an exporter) on the same file, whose view never hears of the renewals.
  auto other = Start(**other_store);
  AwaitEndpoints(*other, {"http://a:9100"});
  SetNow(t0_ + absl::Seconds(25));
  ASSERT_THAT(registry->KeepAlive({a->id}, ""), IsOk());
  // Well past the record's deadline, by the other view's clock too: still served there, with
  // the deadline in force.
  SetNow(t0_ + absl::Seconds(50));
  ASSERT_TRUE(other->WaitForRevision(Revision(), kWait));
  EXPECT_THAT(Listed(*other), ElementsAre(std::pair("http://a:9100", t0_ + absl::Seconds(55))));
  // A restart of it loads the record as it is now.
  other.reset();
  other = Start(**other_store);
  EXPECT_THAT(Listed(*other), ElementsAre(std::pair("http://a:9100", t0_ + absl::Seconds(55))));
  ReapAt(t0_ + absl::Seconds(56));
  AwaitEndpoints(*other, {});
  AwaitEndpoints(*registry, {});
}

}  // namespace
}  // namespace discovery::registry
