// The composition root of `discoveryd exporter`: the store, the exporter writing the file_sd
// directory of one Prometheus server, and /metrics on its own HTTP listener.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "metrics/metrics.h"
#include "server/server_config.h"

namespace discovery::server {

struct ExporterConfig {
  StoreConfig store;
  std::string server;                                  // --server
  std::filesystem::path directory = "/tmp/discovery";  // --directory
  absl::Duration resync_interval = absl::Hours(1);     // --resync-interval
  std::string http_listen = "localhost:3003";          // --http-listen; "" disables /metrics
  absl::Duration shutdown_grace = absl::Seconds(10);
  metrics::BuildInfo build;
  std::vector<std::pair<std::string, std::string>> redacted_flags;
};

class ExporterDaemon {
 public:
  // Opens the store, starts the exporter (see exporter::Exporter::Start for its errors) and the
  // metrics listener. Returns once the files reflect the store.
  static absl::StatusOr<std::unique_ptr<ExporterDaemon>> Start(ExporterConfig config);
  ~ExporterDaemon();
  ExporterDaemon(const ExporterDaemon&) = delete;
  ExporterDaemon& operator=(const ExporterDaemon&) = delete;
  ExporterDaemon(ExporterDaemon&&) = delete;
  ExporterDaemon& operator=(ExporterDaemon&&) = delete;

  // The metrics listener's port, 0 when disabled.
  int http_port() const;
  // Stops the listener and the exporter; the files stay.
  void Shutdown();

 private:
  struct Parts;
  ExporterDaemon();
  std::unique_ptr<Parts> parts_;
};

}  // namespace discovery::server
