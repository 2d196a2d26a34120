// Registrations with a TTL kept alive at fleet size (docs/decisions.md D49), on the scale-out
// deployment as real processes: a 3-member etcd cluster and two `discoveryd server` replicas on
// loopback (tests/testing/discovery_cluster.h).
//   BM_KeepAlive  registers --ttl_services services (default 10,000; the figure is
//                 --ttl_services=100000) with a TTL of --ttl_seconds (default 30) through both
//                 replicas, then keeps them alive for two TTLs as `discovery service register
//                 --keepalive` does: every service renewed at a third of its TTL, 128 ids per
//                 KeepAlive call, from 16 client threads spread over the replicas. Meanwhile
//                 1,000 of them (or a tenth, whichever is less) stop being renewed.
//                 Reports the renewal load next to what the fleet needs:
//                   needed_renewals_per_s   services / (TTL / 3)
//                   renewals_per_s          services renewed per second
//                   keepalive_rpcs_per_s    KeepAlive calls per second
//                   etcd_revisions_per_s    etcd store revisions per second (every write)
//                   lost                    services a renewal found gone (must be 0)
//                 and how late the abandoned services left etcd after their expiry
//                 (expires + 0 in the service record; a delete seen by a watch on etcd):
//                   expiry_delay_p50_ms, expiry_delay_p99_ms, expiry_delay_max_ms, expired.
// Run (Release build):
//   cmake -S . -B build/cluster-bench -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/cluster-bench --target discovery_ttl_bench discoveryd
//   build/cluster-bench/bench/discovery_ttl_bench --ttl_services=100000
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
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
#include "registration_load.h"

#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "repo/repo.h"
#include "store/etcd/etcd_store.h"
#include "testing/discovery_cluster.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

namespace pb = ::postfinance::discovery::v1;
using Json = ::nlohmann::json;

constexpr char kServer[] = "prometheus1.example.com";
constexpr int kBatch = 128;
constexpr int kThreads = 16;

// Started by main() on the main thread: child processes die with the thread that started them.
DiscoveryCluster* cluster = nullptr;
int services = 10000;
int ttl_seconds = 30;

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) {
    return 0;
  }
  std::sort(values.begin(), values.end());
  const auto index = static_cast<size_t>(fraction * static_cast<double>(values.size() - 1));
  return values[index];
}

std::vector<std::unique_ptr<pb::ServiceAPI::Stub>> Stubs() {
  std::vector<std::unique_ptr<pb::ServiceAPI::Stub>> stubs;
  for (int i = 0; i < cluster->replica_count(); ++i) {
    stubs.push_back(pb::ServiceAPI::NewStub(grpc::CreateChannel(
        cluster->replica(i).grpc_address(), grpc::InsecureChannelCredentials())));
  }
  return stubs;
}

void Authorize(grpc::ClientContext& context) {
  context.AddMetadata("authorization", "bearer " + cluster->admin_token());
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
}

// Registers every service with the TTL; their ids, or an empty list on a failure.
std::vector<std::string> RegisterAll() {
  const auto stubs = Stubs();
  std::vector<std::string> ids(static_cast<size_t>(services));
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::jthread> threads;
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

void BM_KeepAlive(benchmark::State& state) {
  absl::StatusOr<std::unique_ptr<store::Store>> etcd =
      store::ConnectEtcdStore({.endpoints = cluster->etcd().endpoints()});
  if (!etcd.ok()) {
    std::cerr << "cannot connect to etcd: " << etcd.status() << "\n";
    state.SkipWithError("cannot connect to etcd");
    return;
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
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> watch =
      (*etcd)->Watch(keys.ServicesIn("default"), 0, [&](const store::WatchResponse& response) {
        const absl::Time now = absl::Now();
        absl::MutexLock lock(&mu);
        for (const store::WatchEvent& event : response.events) {
          if (event.type == store::WatchEvent::Type::kDelete) {
            deleted.emplace(event.kv.key.substr(event.kv.key.rfind('/') + 1), now);
          }
        }
      });
  if (!watch.ok()) {
    state.SkipWithError("cannot watch etcd");
    return;
  }

  const absl::Duration ttl = absl::Seconds(ttl_seconds);
  const absl::Duration period = ttl / 3;
  std::atomic<int64_t> rpcs{0};
  std::atomic<int64_t> renewed{0};
  std::atomic<int64_t> lost{0};
  std::atomic<int64_t> failures{0};
  absl::Duration elapsed;
  int64_t revisions = 0;
  for (auto _ : state) {
    const int64_t first_revision = (*etcd)->CurrentRevision().value_or(0);
    const absl::Time start = absl::Now();
    const absl::Time end = start + 2 * ttl;
    const auto stubs = Stubs();
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        // This thread's services: every kThreads-th batch. The first `abandoned` services are
        // renewed once, then left to expire.
        bool first_round = true;
        for (absl::Time round = start; round < end; round += period) {
          absl::SleepFor(round - absl::Now());
          for (int from = t * kBatch; from < services; from += kThreads * kBatch) {
            pb::KeepAliveRequest request;
            request.set_namespace_("default");
            for (int i = from; i < std::min(services, from + kBatch); ++i) {
              if (first_round || i >= abandoned) {
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
            if (first_round && from < abandoned) {
              absl::MutexLock lock(&mu);
              for (const pb::Service& service : response.services()) {
                expires[service.id()] = absl::FromUnixSeconds(service.expires().seconds()) +
                                        absl::Nanoseconds(service.expires().nanos());
              }
            }
          }
          first_round = false;
        }
      });
    }
    threads.clear();
    elapsed = absl::Now() - start;
    revisions = (*etcd)->CurrentRevision().value_or(0) - first_revision;
  }
  // The abandoned services expired a TTL after the first round; allow for a slow cluster.
  const absl::Time wait_until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < wait_until) {
    {
      absl::MutexLock lock(&mu);
      if (std::ssize(deleted) >= abandoned) {
        break;
      }
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::vector<double> delays_ms;
  {
    absl::MutexLock lock(&mu);
    for (const auto& [id, at] : expires) {
      if (auto it = deleted.find(id); it != deleted.end()) {
        delays_ms.push_back(absl::ToDoubleMilliseconds(it->second - at));
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
  state.counters["rpc_failures"] = static_cast<double>(failures);
  state.counters["lost"] = static_cast<double>(lost);
  state.counters["expired"] = static_cast<double>(delays_ms.size());
  state.counters["expiry_delay_p50_ms"] = Percentile(delays_ms, 0.5);
  state.counters["expiry_delay_p99_ms"] = Percentile(delays_ms, 0.99);
  state.counters["expiry_delay_max_ms"] = Percentile(delays_ms, 1.0);
}
BENCHMARK(BM_KeepAlive)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
}  // namespace discovery::testing

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.starts_with("--ttl_services=")) {
      discovery::testing::services =
          std::atoi(argv[i] + std::string_view("--ttl_services=").size());
    } else if (arg.starts_with("--ttl_seconds=")) {
      discovery::testing::ttl_seconds =
          std::atoi(argv[i] + std::string_view("--ttl_seconds=").size());
    } else {
      std::cerr << "unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (discovery::testing::services < 1 || discovery::testing::ttl_seconds < 3) {
    std::cerr << "--ttl_services must be >= 1 and --ttl_seconds >= 3\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<discovery::testing::DiscoveryCluster>> started =
      discovery::testing::DiscoveryCluster::Start({.discoveryd_binary = DISCOVERYD_BINARY,
                                                   .exporter_server = "",
                                                   .replica_args = {"--min-ttl=1s"}});
  if (!started.ok()) {
    std::cerr << "cannot start the cluster: " << started.status() << "\n";
    return 1;
  }
  discovery::testing::cluster = started->get();
  absl::StatusOr<discovery::testing::HttpResult> server = discovery::testing::cluster->Rest(
      0, "POST", "/v1/servers", nlohmann::json{{"name", discovery::testing::kServer}});
  if (!server.ok() || server->status != 200) {
    std::cerr << "cannot register the server\n";
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  discovery::testing::cluster = nullptr;
  return 0;
}
