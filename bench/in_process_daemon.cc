#include "in_process_daemon.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "http_client.h"

#include "auth/machine_token.h"
#include "common/logging.h"
#include "model/model.h"
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"

namespace discovery::bench {
namespace {

namespace pb = ::postfinance::discovery::v1;

// Calls `method` of `stub` with `request`, as the admin holding `token`.
template <typename Stub, typename Request, typename Response>
absl::Status AdminCall(Stub& stub,
                       grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                    Response*),
                       const Request& request, const std::string& token) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + token);
  Response response;
  const grpc::Status status = (stub.*method)(&context, request, &response);
  return status.ok() ? absl::OkStatus() : absl::InternalError(status.error_message());
}

}  // namespace

const char* EtcdEndpoints() {
  // Benchmarks never change their environment.
  return std::getenv("DISCOVERY_BENCH_ETCD_ENDPOINTS");  // NOLINT(concurrency-mt-unsafe)
}

std::string AdminToken() {
  return *auth::CreateMachineToken({.issuer = kTokenIssuer, .secret = kTokenSecret, .admin = true},
                                   "bench", {}, absl::ZeroDuration(), absl::Now());
}

std::string UniquePrefix(std::string_view what) {
  static std::atomic<int> counter{0};
  std::string prefix = fmt::format("/bench-{}-{}-{}", what, getpid(), counter++);
  for (char& c : prefix) {
    if (c >= '0' && c <= '9') {
      c = static_cast<char>('a' + (c - '0'));
    }
  }
  return prefix;
}

InProcessDaemon::InProcessDaemon(bool etcd, std::string_view what) : token_(AdminToken()) {
  // The daemon logs at info as in production (two lines per registration, the change and its
  // audit record), so their cost is part of every figure; the output goes to stderr. A
  // benchmark's own spdlog::set_level would not change that: the benchmarks see a header-only
  // spdlog with a registry of its own, not the one the daemon logs through.
  InitLogging({});
  static std::atomic<int> counter{0};
  dir_ = std::filesystem::temp_directory_path() /
         fmt::format("discovery_bench_{}_{}_{}", what, getpid(), counter++);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);  // left over by a killed run of the same pid
  std::filesystem::create_directories(dir_);
  config_.grpc_listen = "127.0.0.1:0";
  config_.http_listen = "127.0.0.1:0";
  config_.token_secret = kTokenSecret;
  config_.token_issuer = kTokenIssuer;
  config_.store.data_dir = (dir_ / "data").string();
  if (etcd) {
    config_.store.kind = "etcd";
    config_.store.etcd.endpoints = {EtcdEndpoints()};
    config_.store.prefix = UniquePrefix(what);
  }
  absl::StatusOr<std::unique_ptr<server::Daemon>> daemon = server::Daemon::Start(config_);
  if (!daemon.ok()) {
    error_ = std::string{daemon.status().message()};
    return;
  }
  daemon_ = *std::move(daemon);
  channel_ = grpc::CreateChannel(fmt::format("127.0.0.1:{}", daemon_->grpc_port()),
                                 grpc::InsecureChannelCredentials());
  for (int i = 0; i < 300 && HttpGet(Url("/readyz")) != 200; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
}

InProcessDaemon::~InProcessDaemon() {
  daemon_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string InProcessDaemon::Url(std::string_view path) const {
  return fmt::format("http://127.0.0.1:{}{}", daemon_->http_port(), path);
}

absl::Status InProcessDaemon::RegisterServer(const std::string& name) const {
  pb::RegisterServerRequest request;
  request.set_name(name);
  return AdminCall(*pb::ServerAPI::NewStub(channel_), &pb::ServerAPI::Stub::RegisterServer, request,
                   token_);
}

absl::Status InProcessDaemon::RegisterNamespace(const std::string& name) const {
  pb::RegisterNamespaceRequest request;
  request.set_name(name);
  request.set_export_(static_cast<int32_t>(ExportConfig::kStandard));
  return AdminCall(*pb::NamespaceAPI::NewStub(channel_), &pb::NamespaceAPI::Stub::RegisterNamespace,
                   request, token_);
}

}  // namespace discovery::bench
