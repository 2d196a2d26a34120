// Benchmarks of the scale-out deployment: a 3-member etcd cluster (Debian's etcd-server), two
// `discoveryd server` replicas on it and one `discoveryd exporter`, all real processes on
// loopback (tests/testing/discovery_cluster.h).
//   BM_Propagation           a registration acknowledged by replica 0 (REST): the time until
//                            replica 1's http_sd answer and the exporter's file_sd file show it.
//                            Reports p50/p99/max of both in milliseconds.
//   BM_TwoReplicasVsRawPuts  registrations/s over gRPC, 64 in flight split over the two replicas,
//                            against raw etcd puts of the same documents to the same cluster
//                            from 64 threads, in five alternating rounds of each (ratio: the
//                            median of the rounds' ratios).
//   BM_RegistrationThroughput registrations per second (registrations_per_s) of N concurrent
//                            REST clients, half of them on each replica (every one a durable etcd
//                            write the replica's view has applied before it answers).
// Run (Release build):
//   cmake -S . -B build/cluster-bench -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/cluster-bench --target discovery_cluster_bench discoveryd
//   build/cluster-bench/bench/discovery_cluster_bench
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "percentile.h"
#include "registration_load.h"

#include "repo/repo.h"
#include "store/etcd/etcd_store.h"
#include "testing/discovery_cluster.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using bench::Percentile;

constexpr const char* kServer = "prometheus1.example.com";

// Started by main() on the main thread: child processes die with the thread that started them.
DiscoveryCluster* cluster = nullptr;

bool Contains(const std::vector<std::string>& targets, const std::string& target) {
  return std::find(targets.begin(), targets.end(), target) != targets.end();
}

void BM_Propagation(benchmark::State& state) {
  static std::atomic<int> run{0};
  const std::string ns = fmt::format("propagation{}", run++);
  if (auto created = cluster->Rest(0, "POST", "/v1/namespaces", Json{{"name", ns}, {"export", 1}});
      !created.ok() || created->status != 200) {
    state.SkipWithError("cannot create the namespace");
    return;
  }
  std::vector<double> to_replica_ms;
  std::vector<double> to_file_ms;
  int i = 0;
  for (auto _ : state) {
    const std::string target =
        fmt::format("10.{}.{}.{}:9100", 20 + i / 62500, i / 250 % 250, i % 250 + 1);
    ++i;
    absl::StatusOr<HttpResult> result = cluster->Rest(
        0, "POST", "/v1/services",
        Json{{"name", "node"}, {"namespace", ns}, {"endpoint", "http://" + target + "/metrics"}});
    const absl::Time acked = absl::Now();
    if (!result.ok() || result->status != 200) {
      state.SkipWithError("registration failed");
      return;
    }
    bool on_replica = false;
    bool in_file = false;
    while (!on_replica || !in_file) {
      if (absl::Now() - acked > absl::Seconds(30)) {
        state.SkipWithError("a registration did not propagate within 30 s");
        return;
      }
      if (!on_replica) {
        absl::StatusOr<std::vector<std::string>> targets = cluster->HttpSdTargets(1, kServer, ns);
        if (targets.ok() && Contains(*targets, target)) {
          on_replica = true;
          to_replica_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - acked));
        }
      }
      if (!in_file && Contains(cluster->ExporterTargets(ns), target)) {
        in_file = true;
        to_file_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - acked));
      }
    }
  }
  state.counters["replica_p50_ms"] = Percentile(to_replica_ms, 0.5);
  state.counters["replica_p99_ms"] = Percentile(to_replica_ms, 0.99);
  state.counters["replica_max_ms"] = Percentile(to_replica_ms, 1.0);
  state.counters["file_p50_ms"] = Percentile(to_file_ms, 0.5);
  state.counters["file_p99_ms"] = Percentile(to_file_ms, 0.99);
  state.counters["file_max_ms"] = Percentile(to_file_ms, 1.0);
}
BENCHMARK(BM_Propagation)->Iterations(500)->Unit(benchmark::kMillisecond)->UseRealTime();

// Each iteration: `clients` threads, alternating between the replicas, register 20 services each.
void BM_RegistrationThroughput(benchmark::State& state) {
  static std::atomic<int> next{0};
  const int clients = static_cast<int>(state.range(0));
  constexpr int kPerClient = 20;
  std::atomic<int64_t> failed{0};
  int64_t registered = 0;
  absl::Duration elapsed;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    {
      std::vector<std::jthread> threads;
      threads.reserve(clients);
      for (int c = 0; c < clients; ++c) {
        threads.emplace_back([c, &failed] {
          for (int k = 0; k < kPerClient; ++k) {
            const int i = next++;
            const std::string endpoint = fmt::format("http://10.{}.{}.{}:9100/metrics",
                                                     100 + i / 62500, i / 250 % 250, i % 250 + 1);
            absl::StatusOr<HttpResult> result = cluster->Rest(
                c % 2, "POST", "/v1/services",
                Json{{"name", "throughput"}, {"namespace", "default"}, {"endpoint", endpoint}});
            if (!result.ok() || result->status != 200) {
              ++failed;
            }
          }
        });
      }
    }
    const absl::Duration took = absl::Now() - start;
    state.SetIterationTime(absl::ToDoubleSeconds(took));
    elapsed += took;
    registered += int64_t{clients} * kPerClient;
  }
  state.counters["registrations_per_s"] =
      static_cast<double>(registered) / absl::ToDoubleSeconds(elapsed);
  state.counters["failed"] = static_cast<double>(failed.load());
}
BENCHMARK(BM_RegistrationThroughput)
    ->ArgName("clients")
    ->RangeMultiplier(2)
    ->Range(2, 32)
    ->MinTime(3.0)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Registrations/s over gRPC with 64 calls in flight, half to each replica, against raw etcd puts
// (KV.Put) of the same JSON documents to the same 3-member cluster from 64 threads of this
// process, measured right before in the same run.
void BM_TwoReplicasVsRawPuts(benchmark::State& state) {
  static std::atomic<int> run{0};
  constexpr int kCount = 6400;
  constexpr int kRounds = 5;
  constexpr int kInFlight = 64;
  for (auto _ : state) {
    const std::string ns = fmt::format("replicas{}", run++);
    if (auto created = cluster->Rest(0, "POST", "/v1/namespaces", Json{{"name", ns}});
        !created.ok() || created->status != 200) {
      state.SkipWithError("cannot create the namespace");
      return;
    }
    std::vector<std::pair<std::string, std::string>> kvs;
    {
      store::EtcdOptions options;
      options.endpoints = cluster->etcd().endpoints();
      absl::StatusOr<std::unique_ptr<store::Store>> store = store::ConnectEtcdStore(options);
      if (!store.ok()) {
        state.SkipWithError("cannot reach etcd");
        return;
      }
      // Only to encode the documents and keys exactly as registrations store them, beside the
      // replicas' data so the two do not mix.
      const repo::Repository repository(**store, repo::Keys("/bench-raw"));
      for (int i = 0; i < kRounds * kCount; ++i) {
        absl::StatusOr<store::Op> op = repository.PutServiceOp(bench::MakeService(ns, i));
        if (!op.ok()) {
          state.SkipWithError("cannot encode a service");
          return;
        }
        kvs.emplace_back(op->key, op->value);
      }
    }
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    channels.reserve(cluster->replica_count());
    for (int r = 0; r < cluster->replica_count(); ++r) {
      channels.push_back(grpc::CreateChannel(cluster->replica(r).grpc_address(),
                                             grpc::InsecureChannelCredentials()));
    }
    // Rounds of a second or two each (one window of each varied the ratio from 0.46 to 0.72
    // between runs of the same code); the figure is the median of the rounds' ratios.
    const bench::RoundsResult rounds =
        bench::RawPutsThenRegistrationsInRounds(cluster->etcd().endpoints(), kvs, kRounds, channels,
                                                "Bearer " + cluster->admin_token(), ns, kInFlight);
    if (rounds.failed_puts > 0) {
      state.SkipWithError("raw etcd puts failed");
      return;
    }
    for (const auto& [name, value] : rounds.Counters()) {
      state.counters[name] = value;
    }
  }
}
BENCHMARK(BM_TwoReplicasVsRawPuts)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
}  // namespace discovery::testing

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  absl::StatusOr<std::unique_ptr<discovery::testing::DiscoveryCluster>> started =
      discovery::testing::DiscoveryCluster::Start({.discoveryd_binary = DISCOVERYD_BINARY,
                                                   .exporter_server = "prometheus1.example.com",
                                                   .debug_logs = false});
  if (!started.ok()) {
    std::cerr << "cannot start the cluster: " << started.status() << "\n";
    return 1;
  }
  discovery::testing::cluster = started->get();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  discovery::testing::cluster = nullptr;
  return 0;
}
