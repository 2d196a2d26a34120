// Debian's real Prometheus (/usr/bin/prometheus, 2.42) as a child process, the consumer our
// http_sd endpoint is written for: tests hand it a prometheus.yml whose scrape configs point
// http_sd_configs at a discoveryd and read back the targets it discovered.
//
// Timing that callers must plan for (Prometheus 2.42 as Debian 12 ships it):
//   * http_sd_configs refresh every 60 s by default: set `refresh_interval: 1s` in each one
//     (0s passes promtool but makes Prometheus panic at start).
//   * The discovery manager hands new targets to the scrape manager at most every 5 s, so a
//     change on the SD endpoint shows in ActiveTargets() after about 4-6 s: poll with
//     AwaitActiveTargets() instead of sleeping.
//   * A target's health stays "unknown" until its first scrape (scrape_interval, default 1m).
//   * Relative file paths in the config (file_sd, credentials_file) resolve against
//     config_dir(), where callers may write such files before or after Start.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

#include "testing/process.h"

namespace discovery::testing {

struct PrometheusOptions {
  std::string binary = "/usr/bin/prometheus";
  // The complete prometheus.yml, e.g.
  //   scrape_configs:
  //     - job_name: sd
  //       http_sd_configs:
  //         - url: http://127.0.0.1:PORT/v1/sd/prom1/default
  //           refresh_interval: 1s
  std::string config_yaml;
  // Appended to the command line, e.g. {"--web.enable-lifecycle", "--log.level=debug"}.
  std::vector<std::string> extra_flags;
  // How long Start waits for GET /-/ready to answer 200.
  absl::Duration start_timeout = absl::Seconds(30);
};

// One Prometheus server on a free loopback port with a throw-away config dir and TSDB. Not
// thread-safe: drive it from the test thread. Destroying it SIGKILLs a still running server and
// removes its directory.
class PrometheusProcess {
 public:
  // Writes config_yaml to <tmp>/prometheus.yml and starts
  //   prometheus --config.file=<tmp>/prometheus.yml --storage.tsdb.path=<tmp>/data
  //              --web.listen-address=127.0.0.1:<free port> <extra_flags>
  // with its log in <tmp>/prometheus.log. Fails with Unavailable and the log tail when it exits
  // (e.g. on an invalid config) or is not ready within start_timeout.
  static absl::StatusOr<std::unique_ptr<PrometheusProcess>> Start(PrometheusOptions options);

  ~PrometheusProcess();
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  std::string url() const;  // "http://127.0.0.1:PORT"
  int port() const { return port_; }
  const std::string& config_dir() const { return root_; }
  bool IsRunning() const;

  // GET /api/v1/targets?state=active -> data.activeTargets: an array of objects with
  // "discoveredLabels", "labels", "scrapePool", "scrapeUrl", "health", ... Fails with the HTTP
  // status and body when Prometheus does not answer "success".
  absl::StatusOr<nlohmann::json> ActiveTargets() const;
  // Polls ActiveTargets() until `done` accepts them and returns those; DeadlineExceeded with the
  // last targets seen and the log tail after `timeout`.
  absl::StatusOr<nlohmann::json> AwaitActiveTargets(
      const std::function<bool(const nlohmann::json&)>& done,
      absl::Duration timeout = absl::Seconds(20)) const;

  // SIGTERM; expects exit status 0 within `grace`, else SIGKILLs it and fails with the log tail.
  absl::Status Stop(absl::Duration grace = absl::Seconds(10));

  std::string LogTail(int lines = 40) const;

 private:
  PrometheusProcess(PrometheusOptions options, std::string root);

  absl::Status Launch();

  PrometheusOptions options_;
  std::string root_;  // prometheus.yml, prometheus.log, data/
  std::string log_path_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace discovery::testing
