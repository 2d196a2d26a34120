// The scale-out deployment on one machine, for fault tests and benchmarks: a multi-member etcd
// cluster (Debian's etcd-server), several stateless `discoveryd server` replicas on it and one
// `discoveryd exporter` writing file_sd files for one Prometheus server. Everything listens on
// free loopback ports and lives in throw-away directories.
//
// Users get the binary's path from CMake (DISCOVERYD_BINARY, see discoveryd_process.h).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

#include "testing/discoveryd_process.h"
#include "testing/etcd_harness.h"
#include "testing/http_client.h"
#include "testing/process.h"

namespace discovery::testing {

struct DiscoveryClusterOptions {
  std::string discoveryd_binary;
  int etcd_members = 3;
  int replicas = 2;
  // The Prometheus server the exporter writes files for; Start registers it (with `server_labels`)
  // through the first replica. Empty: no exporter.
  std::string exporter_server = "prometheus1.example.com";
  std::vector<std::string> replica_args;  // appended to every replica's command line
  // The replicas log at debug level (see DiscoverydOptions::debug_logs); benchmarks turn it off.
  bool debug_logs = true;
};

// Not thread-safe except where noted: drive it from the test thread. Destroying it kills the
// exporter and the replicas, then stops etcd and removes every directory.
class DiscoveryCluster {
 public:
  // Starts etcd, then the replicas (each waits until ready), registers the exporter's server
  // and starts the exporter. Fails with the failing component's log tail.
  static absl::StatusOr<std::unique_ptr<DiscoveryCluster>> Start(DiscoveryClusterOptions options);

  ~DiscoveryCluster();
  DiscoveryCluster(const DiscoveryCluster&) = delete;
  DiscoveryCluster& operator=(const DiscoveryCluster&) = delete;

  EtcdCluster& etcd() { return *etcd_; }
  DiscoverydProcess& replica(int index) { return *replicas_.at(index); }
  int replica_count() const { return static_cast<int>(replicas_.size()); }
  // An admin token every replica accepts (they share the token secret).
  const std::string& admin_token() const { return admin_token_; }

  // The exporter process (null without one) and the directory it writes for its server:
  // <directory>/<server>/<namespace>/<job>.json.
  ChildProcess* exporter() { return exporter_.get(); }
  std::filesystem::path exporter_files() const;

  // A REST call with the admin token on replica `index`. Thread-safe.
  absl::StatusOr<HttpResult> Rest(int index, std::string_view method, const std::string& path,
                                  const nlohmann::json& body = nullptr,
                                  absl::Duration timeout = absl::Seconds(10)) const;
  // The targets replica `index` hands `server` over http_sd for `ns`, or an error when it does
  // not answer 200. Thread-safe.
  absl::StatusOr<std::vector<std::string>> HttpSdTargets(int index, const std::string& server,
                                                         const std::string& ns) const;
  // The targets in the exporter's files of `ns` (files that do not parse are skipped: they are
  // never half-written, so that only happens to foreign files). Thread-safe.
  std::vector<std::string> ExporterTargets(const std::string& ns) const;

  // Every component's log tail, for failure messages.
  std::string LogTails() const;

 private:
  DiscoveryCluster(DiscoveryClusterOptions options, std::string root);
  absl::Status StartExporter();

  DiscoveryClusterOptions options_;
  std::string root_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<DiscoverydProcess>> replicas_;
  std::string admin_token_;
  std::unique_ptr<ChildProcess> exporter_;
};

}  // namespace discovery::testing
