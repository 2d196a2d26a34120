#ifndef DISCOVERY_BENCH_IN_PROCESS_DAEMON_H_
#define DISCOVERY_BENCH_IN_PROCESS_DAEMON_H_

// `discoveryd server` running inside a benchmark's process, on loopback ports, and what a client
// of it needs.

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"

#include "server/daemon.h"
#include "server/server_config.h"

namespace discovery::bench {

// The token settings of every daemon the benchmarks start (in this process or as a child).
inline constexpr const char* kTokenSecret = "bench-secret";
inline constexpr const char* kTokenIssuer = "discovery.bench";

// DISCOVERY_BENCH_ETCD_ENDPOINTS (e.g. http://127.0.0.1:2379), an etcd the caller started; null
// when unset, and the etcd variants are skipped.
const char* EtcdEndpoints();

// An admin machine token of kTokenIssuer that does not expire.
std::string AdminToken();

// A key prefix of its own per call ("/bench-<what>-<pid>-<n>", its digits spelt as letters
// since prefixes are lower-case letters), so runs against one etcd do not see each other's data.
std::string UniquePrefix(std::string_view what);

class InProcessDaemon {
 public:
  // Starts the daemon on the embedded store in a temporary directory of its own, or on etcd at
  // EtcdEndpoints() under UniquePrefix(what), and waits until /readyz answers 200 (the registry
  // is loaded). `what` names the benchmark in the directory and the prefix. On failure error()
  // says why.
  InProcessDaemon(bool etcd, std::string_view what);
  // Stops the daemon and removes the temporary directory.
  ~InProcessDaemon();
  InProcessDaemon(const InProcessDaemon&) = delete;
  InProcessDaemon& operator=(const InProcessDaemon&) = delete;

  const std::string& error() const { return error_; }
  const server::ServerConfig& config() const { return config_; }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // AdminToken(), for the "authorization" metadata of calls ("Bearer " + token()).
  const std::string& token() const { return token_; }
  // The URL of `path` ("/readyz") on the daemon's HTTP listener.
  std::string Url(std::string_view path) const;

  absl::Status RegisterServer(const std::string& name) const;
  // A namespace that exports with the standard configuration.
  absl::Status RegisterNamespace(const std::string& name) const;

 private:
  std::filesystem::path dir_;
  server::ServerConfig config_;
  std::unique_ptr<server::Daemon> daemon_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
  std::string error_;
};

}  // namespace discovery::bench

#endif  // DISCOVERY_BENCH_IN_PROCESS_DAEMON_H_
