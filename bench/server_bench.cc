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
#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "spdlog/spdlog.h"

#include "auth/machine_token.h"
#include "common/logging.h"
#include "model/model.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "repo/repo.h"
#include "server/daemon.h"
#include "server/server_config.h"

namespace discovery {
namespace {

namespace pb = ::postfinance::discovery::v1;

constexpr char kSecret[] = "bench-secret";
constexpr char kIssuer[] = "discovery.bench";

const char* EtcdEndpoints() { return std::getenv("DISCOVERY_BENCH_ETCD_ENDPOINTS"); }

// A running daemon plus what a client needs to talk to it.
class Server {
 public:
  explicit Server(bool etcd) {
    InitLogging({});
    spdlog::set_level(spdlog::level::warn);
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("discovery_server_bench_{}_{}", getpid(), counter_++);
    std::filesystem::create_directories(dir_);
    server::ServerConfig config;
    config.grpc_listen = "127.0.0.1:0";
    config.http_listen = "127.0.0.1:0";
    config.token_secret = kSecret;
    config.token_issuer = kIssuer;
    config.store.data_dir = dir_.string();
    if (etcd) {
      config.store.kind = "etcd";
      config.store.etcd.endpoints = {EtcdEndpoints()};
      // A prefix of its own per run, so runs do not see each other's data.
      config.store.prefix = fmt::format("/bench-{}-{}", getpid(), counter_);
      for (char& c : config.store.prefix) {
        if (c >= '0' && c <= '9') {
          c = static_cast<char>('a' + (c - '0'));
        }
      }
    }
    config_ = config;
    absl::StatusOr<std::unique_ptr<server::Daemon>> daemon = server::Daemon::Start(config);
    if (!daemon.ok()) {
      error_ = std::string{daemon.status().message()};
      return;
    }
    daemon_ = *std::move(daemon);
    channel_ = grpc::CreateChannel(fmt::format("127.0.0.1:{}", daemon_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    token_ = *auth::CreateMachineToken({.issuer = kIssuer, .secret = kSecret, .admin = true},
                                       "bench", {}, absl::ZeroDuration(), absl::Now());
    // Wait until the registry is loaded.
    for (int i = 0; i < 300 && Get("/readyz") != 200; ++i) {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  ~Server() {
    daemon_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  const std::string& error() const { return error_; }
  const server::ServerConfig& config() const { return config_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  const std::string& token() const { return token_; }
  std::string Url(std::string_view path) const {
    return fmt::format("http://127.0.0.1:{}{}", daemon_->http_port(), path);
  }

  long Get(std::string_view path) const {
    CURL* curl = curl_easy_init();
    const std::string url = Url(path);
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION, +[](char*, size_t size, size_t n, void*) { return size * n; });
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) {
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(curl);
    return status;
  }

  absl::Status RegisterServer(const std::string& name) const {
    auto stub = pb::ServerAPI::NewStub(channel_);
    grpc::ClientContext context;
    context.AddMetadata("authorization", "Bearer " + token_);
    pb::RegisterServerRequest request;
    request.set_name(name);
    pb::RegisterServerResponse response;
    grpc::Status status = stub->RegisterServer(&context, request, &response);
    return status.ok() ? absl::OkStatus() : absl::InternalError(status.error_message());
  }

  // Writes `count` services of namespace "default" straight into the store in batches.
  absl::Status BulkRegister(int count) const {
    absl::StatusOr<std::unique_ptr<store::Store>> store = server::OpenStore(config_.store);
    if (!store.ok()) {
      return store.status();
    }
    repo::Repository repository(**store, repo::Keys(config_.store.prefix));
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

 private:
  static inline std::atomic<int> counter_{0};
  std::filesystem::path dir_;
  server::ServerConfig config_;
  std::unique_ptr<server::Daemon> daemon_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
  std::string error_;
};

void BM_RegisterService(benchmark::State& state) {
  const bool etcd = state.range(0) == 1;
  if (etcd && EtcdEndpoints() == nullptr) {
    state.SkipWithError("set DISCOVERY_BENCH_ETCD_ENDPOINTS to run against etcd");
    return;
  }
  static Server* server = nullptr;
  if (state.thread_index() == 0) {
    server = new Server(etcd);
    if (server->error().empty() && !server->RegisterServer("p1").ok()) {
      state.SkipWithError("cannot register a server");
    }
  }
  // Other threads wait for thread 0 at the start of the timed loop.
  int i = 0;
  for (auto _ : state) {
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
  Server server(false);
  if (!server.error().empty() || !server.RegisterServer("p1").ok() ||
      !server.BulkRegister(10'000).ok()) {
    state.SkipWithError("set-up failed");
    return;
  }
  CURL* curl = curl_easy_init();
  const std::string url = server.Url("/v1/sd/p1/default");
  std::string body;
  const std::string auth = "Authorization: Bearer " + server.token();
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
      });
  // Wait until the view holds all 10,000 and learn the ETag.
  std::string etag;
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  for (int attempt = 0; attempt < 600; ++attempt) {
    body.clear();
    curl_easy_perform(curl);
    if (body.find("host9999.example.com") != std::string::npos) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  state.counters["body_bytes"] = static_cast<double>(body.size());
  if (conditional) {
    struct curl_header* header = nullptr;
    if (curl_easy_header(curl, "ETag", 0, CURLH_HEADER, -1, &header) == CURLHE_OK) {
      etag = fmt::format("If-None-Match: {}", header->value);
      headers = curl_slist_append(headers, etag.c_str());
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    }
  }
  const long expected = conditional ? 304 : 200;
  for (auto _ : state) {
    body.clear();
    long status = 0;
    if (curl_easy_perform(curl) != CURLE_OK ||
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
        status != expected) {
      state.SkipWithError("http_sd request failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
}
BENCHMARK(BM_HttpSd)->ArgName("if_none_match")->Arg(0)->Arg(1)->UseRealTime();

void BM_ServerJoin(benchmark::State& state) {
  Server server(false);
  for (int i = 0; i < 10; ++i) {
    if (!server.RegisterServer(fmt::format("p{:02}", i)).ok()) {
      state.SkipWithError("cannot register servers");
      return;
    }
  }
  if (!server.error().empty() || !server.BulkRegister(100'000).ok()) {
    state.SkipWithError("set-up failed");
    return;
  }
  // Wait until the view holds all 100,000 services.
  for (int attempt = 0; attempt < 1200; ++attempt) {
    if (server.Get("/readyz") == 200) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  CURL* curl = curl_easy_init();
  const std::string auth = "Authorization: Bearer " + server.token();
  curl_slist* headers = curl_slist_append(nullptr, auth.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  std::string body;
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
        static_cast<std::string*>(out)->append(data, size * n);
        return size * n;
      });
  auto fetch = [&](const std::string& server_name) {
    body.clear();
    const std::string url = server.Url(fmt::format("/v1/sd/{}/default", server_name));
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_perform(curl);
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
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
}
BENCHMARK(BM_ServerJoin)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace discovery
