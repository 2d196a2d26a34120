// End-to-end benchmarks of `discoveryd server` running in this process on loopback ports:
//   BM_RegisterService     registrations per second over gRPC (each one a durable store write
//                          that the view has applied before the RPC returns);
//   BM_HttpSd              http_sd requests per second for a namespace of 10,000 targets on one
//                          server (full body, and 304 answers to If-None-Match);
//   BM_ServerJoin          with 100,000 services registered over 10 servers, the time from the
//                          RegisterServer call of an 11th server until every server's http_sd
//                          answer reflects the new placement.
// The embedded store lives in a temporary directory. For etcd, set
// DISCOVERY_BENCH_ETCD_ENDPOINTS (e.g. http://127.0.0.1:2379) to an etcd you started; the
// etcd variants are skipped otherwise. Bulk data is written straight into the store in large
// transactions, as a migration would, so set-up does not dominate the run.
// The daemon logs at info, as in production, so the cost of its log lines is part of every
// figure (see InProcessDaemon).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "http_client.h"
#include "in_process_daemon.h"

#include "model/model.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "repo/repo.h"
#include "server/server_config.h"
#include "store/store.h"

namespace discovery {
namespace {

namespace pb = ::postfinance::discovery::v1;

using bench::EtcdEndpoints;
using bench::HttpClient;
using bench::InProcessDaemon;

// Writes `count` services of namespace "default" straight into the daemon's store in batches.
absl::Status BulkRegister(const InProcessDaemon& daemon, int count) {
  absl::StatusOr<std::unique_ptr<store::Store>> store = server::OpenStore(daemon.config().store);
  if (!store.ok()) {
    return store.status();
  }
  repo::Repository repository(**store, repo::Keys(daemon.config().store.prefix));
  constexpr int kBatch = 500;
  for (int first = 0; first < count; first += kBatch) {
    store::Txn txn;
    for (int i = first; i < std::min(count, first + kBatch); ++i) {
      Service service;
      service.endpoint = fmt::format("http://host{}.example.com:9100/metrics", i);
      service.id = ServiceId(service.endpoint);
      service.name = "node";
      service.namespace_name = "default";
      service.modified = absl::Now();
      absl::StatusOr<store::Op> op = repository.PutServiceOp(service);
      if (!op.ok()) {
        return op.status();
      }
      txn.ops.push_back(*std::move(op));
    }
    if (absl::StatusOr<store::TxnResult> result = (*store)->Commit(txn); !result.ok()) {
      return result.status();
    }
  }
  return absl::OkStatus();
}

void BM_RegisterService(benchmark::State& state) {
  const bool etcd = state.range(0) == 1;
  if (etcd && EtcdEndpoints() == nullptr) {
    state.SkipWithError("set DISCOVERY_BENCH_ETCD_ENDPOINTS to run against etcd");
    return;
  }
  static InProcessDaemon* server = nullptr;
  if (state.thread_index() == 0) {
    server = new InProcessDaemon(etcd, "register");
    if (server->error().empty() && !server->RegisterServer("p1").ok()) {
      state.SkipWithError("cannot register a server");
    }
  }
  // Other threads wait for thread 0 at the start of the timed loop.
  int i = 0;
  for (auto _ : state) {
    // Thread 0 has set it: every thread waits for it at the start of this loop.
    // NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage)
    if (!server->error().empty()) {
      state.SkipWithError(server->error().c_str());
      break;
    }
    auto stub = pb::ServiceAPI::NewStub(server->channel());
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + server->token());
    pb::RegisterServiceRequest request;
    request.set_name("node");
    request.set_endpoint(
        fmt::format("http://t{}-{}.example.com:9100/metrics", state.thread_index(), i++));
    pb::RegisterServiceResponse response;
    grpc::Status status = stub->RegisterService(&context, request, &response);
    if (!status.ok()) {
      state.SkipWithError(status.error_message().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete server;
    server = nullptr;
  }
}
BENCHMARK(BM_RegisterService)
    ->ArgName("etcd")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();

void BM_HttpSd(benchmark::State& state) {
  const bool conditional = state.range(0) == 1;
  InProcessDaemon server(/*etcd=*/false, "http_sd");
  if (!server.error().empty() || !server.RegisterServer("p1").ok() ||
      !BulkRegister(server, 10'000).ok()) {
    state.SkipWithError("set-up failed");
    return;
  }
  HttpClient client("Bearer " + server.token());
  const std::string url = server.Url("/v1/sd/p1/default");
  std::string body;
  // Wait until the view holds all 10,000 and learn the ETag.
  for (int attempt = 0; attempt < 600; ++attempt) {
    client.Get(url, &body);
    if (body.find("host9999.example.com") != std::string::npos) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  state.counters["body_bytes"] = static_cast<double>(body.size());
  if (conditional) {
    if (std::optional<std::string> etag = client.ResponseHeader("ETag"); etag.has_value()) {
      client.AddHeader(fmt::format("If-None-Match: {}", *etag));
    }
  }
  const int expected = conditional ? 304 : 200;
  for (auto _ : state) {
    if (client.Get(url, &body) != expected) {
      state.SkipWithError("http_sd request failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpSd)->ArgName("if_none_match")->Arg(0)->Arg(1)->UseRealTime();

void BM_ServerJoin(benchmark::State& state) {
  InProcessDaemon server(/*etcd=*/false, "join");
  for (int i = 0; i < 10; ++i) {
    if (!server.RegisterServer(fmt::format("p{:02}", i)).ok()) {
      state.SkipWithError("cannot register servers");
      return;
    }
  }
  if (!server.error().empty() || !BulkRegister(server, 100'000).ok()) {
    state.SkipWithError("set-up failed");
    return;
  }
  // Wait until the view holds all 100,000 services.
  for (int attempt = 0; attempt < 1200; ++attempt) {
    if (bench::HttpGet(server.Url("/readyz")) == 200) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  HttpClient client("Bearer " + server.token());
  std::string body;
  auto fetch = [&](const std::string& server_name) {
    client.Get(server.Url(fmt::format("/v1/sd/{}/default", server_name)), &body);
    return body;
  };
  // Warm: every old server's answer rendered once.
  size_t before = 0;
  for (int i = 0; i < 10; ++i) {
    before += fetch(fmt::format("p{:02}", i)).size();
  }
  int joins = 0;
  for (auto _ : state) {
    const std::string name = fmt::format("new{}", joins++);
    const absl::Time start = absl::Now();
    if (!server.RegisterServer(name).ok()) {
      state.SkipWithError("join failed");
      break;
    }
    // The join is visible when the new server's answer is non-empty; then every other answer
    // has been re-rendered from the same placement.
    while (fetch(name).size() <= 2) {
    }
    for (int i = 0; i < 10; ++i) {
      fetch(fmt::format("p{:02}", i));
    }
    state.SetIterationTime(absl::ToDoubleSeconds(absl::Now() - start));
    state.counters["new_server_bytes"] = static_cast<double>(fetch(name).size());
  }
  state.counters["old_servers_bytes_before"] = static_cast<double>(before);
}
BENCHMARK(BM_ServerJoin)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace discovery
