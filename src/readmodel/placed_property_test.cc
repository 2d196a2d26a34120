// Property test of the incremental view and placement (docs/decisions.md D5, D41): random sequences
// of registrations, removals, server joins, leaves and label changes, namespace changes and
// placement settings are written to a real (embedded) store; after every step the view's
// snapshot, placed incrementally from the one before as the registry does, must equal a
// placement computed from scratch, and every few steps the view itself must equal a view loaded
// from scratch. Run for both placement algorithms.
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "readmodel/placed.h"
#include "readmodel/placed_test_util.h"
#include "repo/repo.h"
#include "repo/view.h"
#include "store/embedded/embedded_store.h"
#include "testing/status_matchers.h"

namespace discovery::readmodel {
namespace {

using ::discovery::testing::IsOk;

constexpr absl::Duration kWait = absl::Seconds(30);

// What a snapshot holds, in a comparable form.
std::string Describe(const repo::Snapshot& snapshot) {
  std::string out = fmt::format("revision {}\n", snapshot.revision);
  for (const auto& [name, ns] : snapshot.namespaces) {
    out += fmt::format("ns {} {} @{}\n", name, static_cast<int>(ns.export_config),
                       snapshot.namespace_revisions.at(name));
  }
  for (const auto& [name, server] : snapshot.servers) {
    out += fmt::format("server {} {}\n", name, server.Enabled());
    for (const auto& [key, value] : server.labels) {
      out += fmt::format("  {}={}\n", key, value);
    }
  }
  for (const auto& namespace_services : snapshot.services) {
    const std::string& ns = namespace_services.first;  // captured: no structured binding
    namespace_services.second.ForEach([&](std::string_view id, const repo::ServicePtr& service) {
      out += fmt::format("service {} {} {} {} {}\n", ns, id, service->endpoint, service->selector,
                         service->name);
    });
  }
  if (snapshot.placement) {
    out += fmt::format("placement {} {}\n", static_cast<int>(snapshot.placement->algorithm),
                       snapshot.placement->replicas);
  }
  return out;
}

class PlacedPropertyTest : public ::testing::TestWithParam<placement::Algorithm> {};

TEST_P(PlacedPropertyTest, IncrementalViewAndPlacementEqualFromScratch) {
  absl::StatusOr<std::unique_ptr<store::Store>> opened = store::OpenEmbeddedStore({});
  ASSERT_THAT(opened, IsOk());
  store::Store& store = **opened;
  repo::Repository repo(store, repo::Keys());
  const placement::Settings fallback{.algorithm = GetParam(), .replicas = 2};

  // The registry's chain: every published snapshot placed from the previous placement.
  absl::Mutex mu;
  std::shared_ptr<const Placed> chained;
  repo::View view(
      store, repo::Keys(), {}, [&](const std::shared_ptr<const repo::Snapshot>& snapshot) {
        absl::MutexLock lock(&mu);
        std::shared_ptr<const Placed> next = Placed::Compute(snapshot, chained.get(), fallback);
        // Readers ask for answers between writes; cache them as a replica would.
        Observe(*next);
        chained = std::move(next);
      });

  std::mt19937 random(GetParam() == placement::Algorithm::kJump ? 7 : 11);
  const auto pick = [&random](int n) {
    return std::uniform_int_distribution<int>(0, n - 1)(random);
  };
  const std::vector<std::string> namespaces = {"default", "web", "db"};
  const std::vector<std::string> tiers = {"gold", "silver"};
  std::map<std::string, std::vector<std::string>> endpoints;  // ns -> registered endpoints
  ASSERT_THAT(repo.PutNamespace({.name = "default"}), IsOk());

  constexpr int kSteps = 400;
  for (int step = 0; step < kSteps; ++step) {
    absl::StatusOr<int64_t> revision;
    const std::string& ns = namespaces[pick(3)];
    switch (const int what = pick(100); what < 45   ? 0
                                        : what < 60 ? 1
                                        : what < 72 ? 2
                                        : what < 80 ? 3
                                        : what < 88 ? 4
                                        : what < 95 ? 5
                                                    : 6) {
      case 0: {  // register (or re-register with other labels/selector)
        ASSERT_THAT(repo.PutNamespace({.name = ns}), IsOk());
        const std::string endpoint =
            fmt::format("http://host{}.example.com:{}/metrics", pick(60), 9100 + pick(3));
        Service service{.id = ServiceId(endpoint),
                        .name = fmt::format("job{}", pick(3)),
                        .namespace_name = ns,
                        .endpoint = endpoint,
                        .selector = pick(3) == 0 ? "" : "tier=" + tiers[pick(2)],
                        .labels = {{"step", std::to_string(step)}}};
        revision = repo.PutService(service);
        endpoints[ns].push_back(endpoint);
        break;
      }
      case 1: {  // unregister
        if (endpoints[ns].empty()) {
          continue;
        }
        const std::string endpoint = endpoints[ns][pick(static_cast<int>(endpoints[ns].size()))];
        revision = repo.DeleteService(ns, ServiceId(endpoint));
        if (absl::IsNotFound(revision.status())) {
          continue;
        }
        break;
      }
      case 2: {  // a server joins or changes its labels
        revision = repo.PutServer(
            {.name = fmt::format("prom{}", pick(6)), .labels = {{"tier", tiers[pick(2)]}}});
        break;
      }
      case 3: {  // a server leaves, or is marked leaving
        const std::string name = fmt::format("prom{}", pick(6));
        if (pick(2) == 0) {
          revision = repo.DeleteServer(name);
          if (absl::IsNotFound(revision.status())) {
            continue;
          }
        } else {
          revision = repo.PutServer({.name = name, .state = ServerState::kLeaving});
        }
        break;
      }
      case 4: {  // a namespace is deleted with its services, or its export config changes
        if (ns == "default" || pick(2) == 0) {
          revision = repo.PutNamespace(
              {.name = ns,
               .export_config = pick(2) == 0 ? ExportConfig::kStandard : ExportConfig::kBlackbox});
        } else {
          revision = repo.DeleteNamespace(ns);
          if (absl::IsNotFound(revision.status())) {
            continue;
          }
          endpoints[ns].clear();
        }
        break;
      }
      case 5: {  // placement settings change
        revision = repo.PutPlacementSettings({.algorithm = GetParam(), .replicas = 1 + pick(3)});
        break;
      }
      default: {  // several services in one transaction
        ASSERT_THAT(repo.PutNamespace({.name = ns}), IsOk());
        store::Txn txn;
        const int first = pick(40);
        for (int i = 0; i < 5; ++i) {  // distinct keys: a transaction holds each key once
          const std::string endpoint =
              fmt::format("http://batch{}.example.com/metrics", (first + i * 7) % 40);
          absl::StatusOr<store::Op> op = repo.PutServiceOp({.id = ServiceId(endpoint),
                                                            .name = "batch",
                                                            .namespace_name = ns,
                                                            .endpoint = endpoint,
                                                            .labels = {{"i", std::to_string(i)}}});
          ASSERT_THAT(op, IsOk());
          txn.ops.push_back(*op);
          endpoints[ns].push_back(endpoint);
        }
        absl::StatusOr<store::TxnResult> result = store.Commit(txn);
        ASSERT_THAT(result, IsOk());
        revision = result->revision;
        break;
      }
    }
    ASSERT_THAT(revision, IsOk()) << "step " << step;
    std::shared_ptr<const Placed> incremental;
    {
      // The listener places a snapshot after the view has published it.
      absl::MutexLock lock(&mu);
      const int64_t wanted = *revision;
      auto placed = [&chained, wanted]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return chained != nullptr && chained->snapshot().revision >= wanted;
      };
      ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&placed), kWait)) << "step " << step;
      incremental = chained;
    }
    ASSERT_GE(incremental->snapshot().revision, *revision);
    const std::shared_ptr<const Placed> scratch =
        Placed::Compute(incremental->snapshot_ptr(), nullptr, fallback);
    ASSERT_EQ(Observe(*incremental), Observe(*scratch)) << "step " << step << "\n"
                                                        << Describe(incremental->snapshot());

    if (step % 50 == 49) {
      // A view loaded from scratch (one bulk load) holds what the followed one built up.
      repo::View fresh(store, repo::Keys());
      ASSERT_TRUE(fresh.WaitForRevision(incremental->snapshot().revision, kWait));
      ASSERT_EQ(Describe(*fresh.Current()), Describe(incremental->snapshot())) << "step " << step;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BothAlgorithms, PlacedPropertyTest,
                         ::testing::Values(placement::Algorithm::kRendezvous,
                                           placement::Algorithm::kJump),
                         [](const ::testing::TestParamInfo<placement::Algorithm>& param) {
                           return placement::AlgorithmName(param.param);
                         });

}  // namespace
}  // namespace discovery::readmodel
