// Registrations with a TTL kept alive at fleet size (docs/decisions.md D49), as real processes:
// by default the scale-out deployment, a 3-member etcd cluster and two `discoveryd server`
// replicas on loopback (tests/testing/discovery_cluster.h); with --ttl_store=embedded one
// `discoveryd server` on its embedded store.
//   BM_KeepAlive  registers --ttl_services services (default 10,000; the figure is
//                 --ttl_services=100000) with a TTL of --ttl_seconds (default 30) through both
//                 replicas, then keeps them alive for two TTLs as `discovery service register
//                 --keepalive` does: every service renewed at a third of its TTL, 128 ids per
//                 KeepAlive call, from 16 client threads spread over the replicas. Meanwhile
//                 1,000 of them (or a tenth, whichever is less) are renewed once, 8 per call
//                 spread over 2 s half a period after the others' first round, and then no
//                 more (their renewals are not in the figures below but for
//                 etcd_revisions_per_s: about 2 revisions per second).
//                 Reports the renewal load next to what the fleet needs:
//                   needed_renewals_per_s   services / (TTL / 3)
//                   renewals_per_s          services renewed per second
//                   keepalive_rpcs_per_s    KeepAlive calls per second
//                   etcd_revisions_per_s    store revisions per second over the whole run
//                                           (every write: the first round moves each renewal
//                                           set onto its lease, the abandoned expire)
//                   steady_rpcs_per_s       KeepAlive calls per second and store revisions per
//                   steady_revisions_per_s  second once every set has moved: from a second
//                                           after the first round until before the abandoned
//                                           expire (steady_s long; on etcd the service record
//                                           puts and deletes a watch saw meanwhile too)
//                                           (the store's header revision, read before and
//                                           after; on the embedded store its meta revision).
//                                           Renewals do not grow the store: ~0.
//                   lost                    services a renewal found gone (must be 0)
//                 and how late the abandoned services left after their expiry (`expires` in
//                 the service record), as Prometheus sees it: the first http_sd answer of
//                 each replica without the target (polled every 20 ms with If-None-Match; up
//                 to http_sd_poll_interval_ms, the mean time between two answers of one
//                 replica, of each figure is the polling):
//                   expiry_delay_p50_ms, expiry_delay_p99_ms, expiry_delay_max_ms, expired,
//                   http_sd_poll_interval_ms
//                 and on etcd when the store deleted the record (a delete seen by a watch on
//                 etcd; a renewed service leaves the views with that delete):
//                   store_delete_delay_p50_ms, store_delete_delay_p99_ms.
// Run (Release build):
//   cmake -S . -B build/cluster-bench -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/cluster-bench --target discovery_ttl_bench discoveryd
//   build/cluster-bench/bench/discovery_ttl_bench --ttl_services=100000
//   build/cluster-bench/bench/discovery_ttl_bench --ttl_store=embedded
// --discoveryd=PATH runs another discoveryd binary (an earlier build, to compare).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "google/protobuf/duration.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "percentile.h"
#include "registration_load.h"

#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "repo/repo.h"
#include "store/embedded/embedded_store.h"
#include "store/etcd/etcd_store.h"
#include "testing/discovery_cluster.h"
#include "testing/discoveryd_process.h"
#include "testing/http_client.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

namespace pb = ::postfinance::discovery::v1;
using Json = ::nlohmann::json;
using bench::Percentile;

constexpr const char* kServer = "prometheus1.example.com";
constexpr int kBatch = 128;
constexpr int kThreads = 16;
constexpr int kAbandonBatch = 8;
constexpr absl::Duration kAbandonSpread = absl::Seconds(2);

// What the benchmark talks to, started by main() on the main thread (child processes die with the
// thread that started them).
struct Deployment {
  std::vector<std::string> grpc_addresses;
  std::vector<std::string> http_urls;
  std::string admin_token;
  std::vector<std::string> etcd_endpoints;  // empty on the embedded store
  std::string embedded_db;                  // the embedded store's file, else empty
};
const Deployment* deployment = nullptr;
int services = 10000;
int ttl_seconds = 30;

std::vector<std::unique_ptr<pb::ServiceAPI::Stub>> Stubs() {
  std::vector<std::unique_ptr<pb::ServiceAPI::Stub>> stubs;
  for (const std::string& address : deployment->grpc_addresses) {
    stubs.push_back(
        pb::ServiceAPI::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())));
  }
  return stubs;
}

void Authorize(grpc::ClientContext& context) {
  context.AddMetadata("authorization", "bearer " + deployment->admin_token);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
}

// Registers every service with the TTL; their ids, or an empty list on a failure.
std::vector<std::string> RegisterAll() {
  const auto stubs = Stubs();
  std::vector<std::string> ids(static_cast<size_t>(services));
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::jthread> threads;
  threads.reserve(32);
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&, t] {
      for (int i = next++; i < services; i = next++) {
        const Service service = bench::MakeService("default", i);
        pb::RegisterServiceRequest request;
        request.set_name(service.name);
        request.set_endpoint(service.endpoint);
        request.mutable_ttl()->set_seconds(ttl_seconds);
        for (const auto& [key, value] : service.labels) {
          (*request.mutable_labels())[key] = value;
        }
        pb::RegisterServiceResponse response;
        grpc::ClientContext context;
        Authorize(context);
        if (!stubs[static_cast<size_t>(t) % stubs.size()]
                 ->RegisterService(&context, request, &response)
                 .ok()) {
          ++failed;
          continue;
        }
        ids[static_cast<size_t>(i)] = response.service().id();
      }
    });
  }
  threads.clear();
  if (failed > 0) {
    std::cerr << failed << " registrations failed\n";
    return {};
  }
  return ids;
}

// The target http_sd hands out for service `i` (bench::MakeService).
std::string Target(int i) { return fmt::format("default-host{}.example.com:9100", i); }

// Polls every replica's http_sd for the abandoned services [0, abandoned) and records, per
// replica, when each target was first missing from an answer.
class HttpSdWatcher {
 public:
  explicit HttpSdWatcher(int abandoned) : abandoned_(abandoned) {
    thread_ = std::jthread([this](const std::stop_token& stop) { Run(stop); });
  }

  // When replica r's answer first lacked target i, for every (r, i) seen gone.
  std::vector<std::map<int, absl::Time>> Gone() {
    absl::MutexLock lock(&mu_);
    return gone_;
  }
  // The mean time between two answers of one replica: the resolution of the delays measured.
  absl::Duration MeanPollInterval() {
    absl::MutexLock lock(&mu_);
    return polls_ == 0 ? absl::ZeroDuration() : (absl::Now() - started_) / polls_;
  }
  bool AllGone() {
    absl::MutexLock lock(&mu_);
    return std::all_of(gone_.begin(), gone_.end(), [this](const std::map<int, absl::Time>& g) {
      return std::ssize(g) >= abandoned_;
    });
  }

 private:
  void Run(const std::stop_token& stop) {
    const size_t replicas = deployment->http_urls.size();
    {
      absl::MutexLock lock(&mu_);
      gone_.resize(replicas);
    }
    std::vector<std::string> etags(replicas);
    {
      absl::MutexLock lock(&mu_);
      started_ = absl::Now();
    }
    const HttpHeaders auth = {{"Authorization", "Bearer " + deployment->admin_token}};
    while (!stop.stop_requested()) {
      for (size_t r = 0; r < replicas; ++r) {
        HttpHeaders headers = auth;
        if (!etags[r].empty()) {
          headers.emplace_back("If-None-Match", etags[r]);
        }
        absl::StatusOr<HttpResult> answer =
            HttpRequest("GET", deployment->http_urls[r] + "/v1/sd/" + kServer + "/default", "",
                        headers, absl::Seconds(10));
        const absl::Time now = absl::Now();
        if (!answer.ok() || answer->status != 200) {
          continue;  // 304: unchanged
        }
        etags[r] = answer->Header("etag").value_or("");
        std::set<std::string> targets;
        const Json groups = Json::parse(answer->body, nullptr, false);
        if (groups.is_array()) {
          for (const Json& group : groups) {
            for (const Json& target : group.value("targets", Json::array())) {
              targets.insert(target.get<std::string>());
            }
          }
        }
        absl::MutexLock lock(&mu_);
        for (int i = 0; i < abandoned_; ++i) {
          if (!targets.contains(Target(i))) {
            gone_[r].emplace(i, now);
          }
        }
      }
      {
        absl::MutexLock lock(&mu_);
        ++polls_;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  const int abandoned_;
  absl::Mutex mu_;
  std::vector<std::map<int, absl::Time>> gone_ ABSL_GUARDED_BY(mu_);
  absl::Time started_ ABSL_GUARDED_BY(mu_);
  int64_t polls_ ABSL_GUARDED_BY(mu_) = 0;
  std::jthread thread_;  // last: starts after the members above
};

void BM_KeepAlive(benchmark::State& state) {
  std::unique_ptr<store::Store> etcd;
  if (!deployment->etcd_endpoints.empty()) {
    absl::StatusOr<std::unique_ptr<store::Store>> connected =
        store::ConnectEtcdStore({.endpoints = deployment->etcd_endpoints});
    if (!connected.ok()) {
      std::cerr << "cannot connect to etcd: " << connected.status() << "\n";
      state.SkipWithError("cannot connect to etcd");
      return;
    }
    etcd = *std::move(connected);
  }
  const absl::Time registration = absl::Now();
  const std::vector<std::string> ids = RegisterAll();
  if (ids.empty()) {
    state.SkipWithError("registration failed");
    return;
  }
  std::cerr << services << " services registered with a TTL of " << ttl_seconds << "s in "
            << absl::FormatDuration(absl::Now() - registration) << "\n";
  const repo::Keys keys;
  const int abandoned = std::min(1000, services / 10);
  // The expiry of each abandoned service (from its last renewal's answer) and when a watch on
  // etcd saw its record deleted.
  absl::Mutex mu;
  std::map<std::string, absl::Time> expires;
  std::map<std::string, absl::Time> deleted;
  // Every change of a service record a watch on etcd saw: when, and whether a put.
  std::vector<std::pair<absl::Time, bool>> changes;
  std::unique_ptr<store::WatchHandle> watch;
  if (etcd != nullptr) {
    absl::StatusOr<std::unique_ptr<store::WatchHandle>> watching =
        etcd->Watch(keys.ServicesIn("default"), 0, [&](const store::WatchResponse& response) {
          const absl::Time now = absl::Now();
          absl::MutexLock lock(&mu);
          for (const store::WatchEvent& event : response.events) {
            changes.emplace_back(now, event.type == store::WatchEvent::Type::kPut);
            if (event.type == store::WatchEvent::Type::kDelete) {
              deleted.emplace(event.kv.key.substr(event.kv.key.rfind('/') + 1), now);
            }
          }
        });
    if (!watching.ok()) {
      state.SkipWithError("cannot watch etcd");
      return;
    }
    watch = *std::move(watching);
  }
  // The store's revision: etcd's header revision, or the embedded file's (read through a
  // store object of this process that never reaps).
  std::unique_ptr<store::Store> embedded;
  if (!deployment->embedded_db.empty()) {
    absl::StatusOr<std::unique_ptr<store::Store>> opened = store::OpenEmbeddedStore(
        {.path = deployment->embedded_db, .reap_interval = absl::ZeroDuration()});
    if (!opened.ok()) {
      std::cerr << "cannot open the embedded store: " << opened.status() << "\n";
      state.SkipWithError("cannot open the embedded store");
      return;
    }
    embedded = *std::move(opened);
  }
  store::Store* const revisions_of = etcd != nullptr ? etcd.get() : embedded.get();
  const auto revision = [revisions_of]() -> int64_t {
    return revisions_of->CurrentRevision().value_or(0);
  };

  const absl::Duration ttl = absl::Seconds(ttl_seconds);
  const absl::Duration period = ttl / 3;
  std::atomic<int64_t> rpcs{0};
  std::atomic<int64_t> renewed{0};
  std::atomic<int64_t> lost{0};
  std::atomic<int64_t> failures{0};
  absl::Duration elapsed;
  int64_t revisions = 0;
  // The steady window: (revision, KeepAlive calls) at its start and end, and its length.
  int64_t steady_revisions = 0;
  int64_t steady_rpcs = 0;
  absl::Time steady_from;
  absl::Duration steady;
  std::unique_ptr<HttpSdWatcher> http_sd;
  for (auto _ : state) {
    const int64_t first_revision = revision();
    const absl::Time start = absl::Now();
    const absl::Time end = start + 2 * ttl;
    const auto stubs = Stubs();
    // Threads through their first round, which moves every set onto its lease.
    std::atomic<int> first_round_done{0};
    std::vector<std::jthread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        // This thread's services: every kThreads-th batch but the first `abandoned` services.
        for (absl::Time round = start; round < end; round += period) {
          absl::SleepFor(round - absl::Now());
          for (int from = t * kBatch; from < services; from += kThreads * kBatch) {
            pb::KeepAliveRequest request;
            request.set_namespace_("default");
            for (int i = from; i < std::min(services, from + kBatch); ++i) {
              if (i >= abandoned) {
                request.add_ids(ids[static_cast<size_t>(i)]);
              }
            }
            if (request.ids_size() == 0) {
              continue;
            }
            pb::KeepAliveResponse response;
            grpc::ClientContext context;
            Authorize(context);
            ++rpcs;
            if (!stubs[static_cast<size_t>(from / kBatch) % stubs.size()]
                     ->KeepAlive(&context, request, &response)
                     .ok()) {
              ++failures;
              continue;
            }
            renewed += response.services_size();
            lost += response.not_found_size();
          }
          if (round == start) {
            ++first_round_done;
          }
        }
      });
    }
    // The abandoned services are renewed once, kAbandonBatch at a time spread over
    // kAbandonSpread, so that their deadlines fall at every point of a second (etcd's lease
    // expiry depends on that phase), then left to expire. They start half a period after the
    // rounds above, so that their deadlines fall between two rounds: a fleet renews at every
    // moment, not in the bursts of these rounds, which on a small machine would measure the
    // burst rather than the expiry.
    const absl::Time abandon_start = start + period / 2;
    threads.emplace_back([&] {
      for (int from = 0; from < abandoned; from += kAbandonBatch) {
        absl::SleepFor(abandon_start + kAbandonSpread * from / abandoned - absl::Now());
        pb::KeepAliveRequest request;
        request.set_namespace_("default");
        for (int i = from; i < std::min(abandoned, from + kAbandonBatch); ++i) {
          request.add_ids(ids[static_cast<size_t>(i)]);
        }
        pb::KeepAliveResponse response;
        grpc::ClientContext context;
        Authorize(context);
        if (!stubs[static_cast<size_t>(from / kAbandonBatch) % stubs.size()]
                 ->KeepAlive(&context, request, &response)
                 .ok()) {
          ++failures;
          continue;
        }
        lost += response.not_found_size();
        absl::MutexLock lock(&mu);
        for (const pb::Service& service : response.services()) {
          expires[service.id()] = absl::FromUnixSeconds(service.expires().seconds()) +
                                  absl::Nanoseconds(service.expires().nanos());
        }
      }
    });
    // Steady renewal: every set has moved in the first round; the abandoned have been renewed
    // and have not expired yet.
    threads.emplace_back([&] {
      // From a second after the first round (which takes longer than a period at fleet size).
      const absl::Time to = abandon_start + ttl - absl::Seconds(1);
      while (first_round_done < kThreads && absl::Now() < to) {
        absl::SleepFor(absl::Milliseconds(100));
      }
      absl::SleepFor(absl::Seconds(1));
      const int64_t first = revision();
      const int64_t first_rpcs = rpcs;
      steady_from = absl::Now();
      absl::SleepFor(to - absl::Now());
      steady_revisions = revision() - first;
      steady_rpcs = rpcs - first_rpcs;
      steady = absl::Now() - steady_from;
    });
    // Watch http_sd from a little before the abandoned services' expiry (a TTL after their
    // renewal) until they are gone.
    absl::SleepFor(abandon_start + ttl - absl::Seconds(2) - absl::Now());
    http_sd = std::make_unique<HttpSdWatcher>(abandoned);
    threads.clear();
    elapsed = absl::Now() - start;
    revisions = revision() - first_revision;
  }
  // Allow for a slow deployment.
  const absl::Time wait_until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < wait_until) {
    {
      absl::MutexLock lock(&mu);
      if ((etcd == nullptr || std::ssize(deleted) >= abandoned) && http_sd->AllGone()) {
        break;
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::vector<double> delays_ms;
  std::vector<double> store_delays_ms;
  absl::Duration poll_interval;
  {
    const std::vector<std::map<int, absl::Time>> gone = http_sd->Gone();
    poll_interval = http_sd->MeanPollInterval();
    http_sd.reset();
    absl::MutexLock lock(&mu);
    for (int i = 0; i < abandoned; ++i) {
      const std::string& id = ids[static_cast<size_t>(i)];
      auto at = expires.find(id);
      if (at == expires.end()) {
        continue;
      }
      for (const std::map<int, absl::Time>& replica : gone) {
        if (auto it = replica.find(i); it != replica.end()) {
          delays_ms.push_back(absl::ToDoubleMilliseconds(it->second - at->second));
        }
      }
      if (auto it = deleted.find(id); it != deleted.end()) {
        store_delays_ms.push_back(absl::ToDoubleMilliseconds(it->second - at->second));
      }
    }
  }
  const double seconds = absl::ToDoubleSeconds(elapsed);
  state.counters["services"] = services;
  state.counters["ttl_s"] = ttl_seconds;
  state.counters["needed_renewals_per_s"] = services / absl::ToDoubleSeconds(period);
  state.counters["renewals_per_s"] = static_cast<double>(renewed) / seconds;
  state.counters["keepalive_rpcs_per_s"] = static_cast<double>(rpcs) / seconds;
  state.counters["etcd_revisions_per_s"] = static_cast<double>(revisions) / seconds;
  const double steady_seconds = absl::ToDoubleSeconds(steady);
  state.counters["steady_s"] = steady_seconds;
  state.counters["steady_rpcs_per_s"] = static_cast<double>(steady_rpcs) / steady_seconds;
  state.counters["steady_revisions_per_s"] = static_cast<double>(steady_revisions) / steady_seconds;
  state.counters["rpc_failures"] = static_cast<double>(failures);
  state.counters["lost"] = static_cast<double>(lost);
  state.counters["expired"] = static_cast<double>(delays_ms.size());
  state.counters["expiry_delay_p50_ms"] = Percentile(delays_ms, 0.5);
  state.counters["expiry_delay_p99_ms"] = Percentile(delays_ms, 0.99);
  state.counters["expiry_delay_max_ms"] = Percentile(delays_ms, 1.0);
  state.counters["http_sd_poll_interval_ms"] = absl::ToDoubleMilliseconds(poll_interval);
  if (etcd != nullptr) {
    // What the steady window's revisions changed, as a watch saw it (service records only).
    int64_t puts = 0;
    int64_t deletes = 0;
    {
      absl::MutexLock lock(&mu);
      for (const auto& [at, put] : changes) {
        if (at >= steady_from && at < steady_from + steady) {
          ++(put ? puts : deletes);
        }
      }
    }
    state.counters["steady_record_puts"] = static_cast<double>(puts);
    state.counters["steady_record_deletes"] = static_cast<double>(deletes);
    state.counters["store_delete_delay_p50_ms"] = Percentile(store_delays_ms, 0.5);
    state.counters["store_delete_delay_p99_ms"] = Percentile(store_delays_ms, 0.99);
  }
}
BENCHMARK(BM_KeepAlive)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
}  // namespace discovery::testing

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string binary = DISCOVERYD_BINARY;
  bool embedded = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--ttl_services=")) {
      discovery::testing::services =
          std::atoi(argv[i] + std::string_view("--ttl_services=").size());
    } else if (arg.starts_with("--ttl_seconds=")) {
      discovery::testing::ttl_seconds =
          std::atoi(argv[i] + std::string_view("--ttl_seconds=").size());
    } else if (arg == "--ttl_store=embedded" || arg == "--ttl_store=etcd") {
      embedded = arg == "--ttl_store=embedded";
    } else if (arg.starts_with("--discoveryd=")) {
      binary = std::string(arg.substr(std::string_view("--discoveryd=").size()));
    } else {
      std::cerr << "unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (discovery::testing::services < 1 || discovery::testing::ttl_seconds < 3) {
    std::cerr << "--ttl_services must be >= 1 and --ttl_seconds >= 3\n";
    return 2;
  }
  namespace testing = discovery::testing;
  testing::Deployment deployment;
  std::unique_ptr<testing::DiscoveryCluster> cluster;
  std::unique_ptr<testing::DiscoverydProcess> server;
  if (embedded) {
    absl::StatusOr<std::unique_ptr<testing::DiscoverydProcess>> started =
        testing::DiscoverydProcess::Start(
            {.binary = binary, .extra_args = {"--min-ttl=1s"}, .debug_logs = false});
    if (!started.ok()) {
      std::cerr << "cannot start discoveryd: " << started.status() << "\n";
      return 1;
    }
    server = *std::move(started);
    absl::StatusOr<std::string> token = server->AdminToken();
    if (!token.ok()) {
      std::cerr << "cannot create a token: " << token.status() << "\n";
      return 1;
    }
    deployment = {.grpc_addresses = {server->grpc_address()},
                  .http_urls = {server->http_url()},
                  .admin_token = *token,
                  .embedded_db = server->data_dir() + "/discovery.db"};
  } else {
    absl::StatusOr<std::unique_ptr<testing::DiscoveryCluster>> started =
        testing::DiscoveryCluster::Start({.discoveryd_binary = binary,
                                          .exporter_server = "",
                                          .replica_args = {"--min-ttl=1s"},
                                          .debug_logs = false});
    if (!started.ok()) {
      std::cerr << "cannot start the cluster: " << started.status() << "\n";
      return 1;
    }
    cluster = *std::move(started);
    for (int i = 0; i < cluster->replica_count(); ++i) {
      deployment.grpc_addresses.push_back(cluster->replica(i).grpc_address());
      deployment.http_urls.push_back(cluster->replica(i).http_url());
    }
    deployment.admin_token = cluster->admin_token();
    deployment.etcd_endpoints = cluster->etcd().endpoints();
  }
  testing::deployment = &deployment;
  absl::StatusOr<testing::HttpResult> registered =
      testing::HttpRequest("POST", deployment.http_urls[0] + "/v1/servers",
                           nlohmann::json{{"name", testing::kServer}}.dump(),
                           {{"Authorization", "Bearer " + deployment.admin_token}});
  if (!registered.ok() || registered->status != 200) {
    std::cerr << "cannot register the server\n";
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  testing::deployment = nullptr;
  return 0;
}
