// What the registry's tests share: a registry over an in-memory embedded store, started and
// initialized, and views of what it stores and places.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "registry/registry.h"
#include "repo/codec.h"
#include "store/embedded/embedded_store.h"
#include "testing/status_matchers.h"

namespace discovery::registry {

using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// How long a test waits for the registry to load or catch up before it fails; passing tests
// never wait this long.
inline constexpr absl::Duration kWait = absl::Seconds(10);

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

// For TTL tests: the registry's clock, fixed an hour in the past and moved by the test alone,
// and the TTL counts the registry reports through its options.
class TtlClock {
 protected:
  // Options with this clock, TTLs bounded to [5 s, 60 s] and the counters wired in. `probe`: how
  // long the view sleeps at most, hence how soon it sees the clock move.
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
  int64_t Expired() {
    absl::MutexLock lock(&mu_);
    return expired_;
  }
  int64_t WithTtl() {
    absl::MutexLock lock(&mu_);
    return with_ttl_;
  }
  int64_t Renewals() {
    absl::MutexLock lock(&mu_);
    return renewals_;
  }

  const absl::Time t0_ = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) - 3600);

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = t0_;
  int64_t renewals_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t with_ttl_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace discovery::registry
