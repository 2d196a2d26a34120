// The real `discoveryd` binary as a child process, for black-box tests of the daemon: free
// loopback ports, a throw-away data dir, JSON logs (at debug level unless told otherwise) in a
// file whose tail goes into every error, and tokens minted by the binary's own `token create`.
//
// Tests get the binary's path from CMake:
//   add_dependencies(<test> discoveryd)
//   target_compile_definitions(<test> PRIVATE DISCOVERYD_BINARY="$<TARGET_FILE:discoveryd>")
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "testing/process.h"

namespace discovery::testing {

struct DiscoverydOptions {
  std::string binary;  // path of discoveryd, e.g. DISCOVERYD_BINARY
  // Appended to the `server` command line, e.g. {"--store=etcd", "--etcd-endpoints=..."} or
  // {"--replicas=2"}. Without --store the daemon uses its embedded store in the data dir.
  std::vector<std::string> extra_args;
  std::string token_secret = "integration-secret";
  std::string token_issuer = "discovery.test";
  // Wait in Start and Restart until GET /readyz answers 200 (the registry is loaded); else only
  // until /healthz answers, i.e. both listeners are up.
  bool wait_ready = true;
  absl::Duration start_timeout = absl::Seconds(30);
  // PEM certificate and key files: both listeners serve TLS and http_url() is https://.
  std::optional<std::pair<std::string, std::string>> tls;
  // --debug: the log tails in test failures then say what the daemon did. Benchmarks turn it
  // off, so that they measure the daemon as it runs in production (at info level).
  bool debug_logs = true;
};

// One discoveryd server. Not thread-safe: drive it from the test thread. Destroying it SIGKILLs
// a still running server and removes the data dir and log; call Stop() first to check that the
// daemon shuts down cleanly.
class DiscoverydProcess {
 public:
  // Starts `discoveryd server` with --grpc-listen/--http-listen on free 127.0.0.1 ports,
  // --data-dir in a new temp dir (also its working and home dir, so no developer config file
  // is read; DISCOVERY_* variables are removed from its environment), the token flags,
  // --log-format=json, --debug unless options.debug_logs is false, and extra_args. Fails with
  // Unavailable and the log tail when it exits or is not ready within start_timeout.
  static absl::StatusOr<std::unique_ptr<DiscoverydProcess>> Start(DiscoverydOptions options);

  ~DiscoverydProcess();
  DiscoverydProcess(const DiscoverydProcess&) = delete;
  DiscoverydProcess& operator=(const DiscoverydProcess&) = delete;

  std::string grpc_address() const;  // "127.0.0.1:PORT"
  std::string http_url() const;      // "http://127.0.0.1:PORT" (https:// with TLS)
  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  const std::string& data_dir() const { return data_dir_; }
  const DiscoverydOptions& options() const { return options_; }
  bool IsRunning() const;
  pid_t pid() const;  // of the running server

  // `discoveryd token create admin --admin` with this server's issuer, secret and data dir;
  // returns the token (stdout, trimmed). Internal with stderr when the command fails.
  absl::StatusOr<std::string> AdminToken() const;
  // `discoveryd token create <id> --namespaces a,b [--expires <expires>]` (a Go duration, e.g.
  // "1h"; empty: never expires).
  absl::StatusOr<std::string> MachineToken(std::string id, std::vector<std::string> namespaces,
                                           const std::string& expires = "") const;

  // SIGTERM, then expects exit status 0 within grace + 5 s. Otherwise SIGKILLs it and fails
  // (DeadlineExceeded, or Internal for a non-zero exit) with the log tail.
  absl::Status Stop(absl::Duration grace = absl::Seconds(10));
  // SIGKILL: a crash, no clean shutdown.
  absl::Status Kill();
  // Stops a running server (as Stop) and starts it again on the same data dir and ports, waiting
  // as Start does.
  absl::Status Restart();

  // The last `lines` lines of discoveryd's log (every run's, appended).
  std::string LogTail(int lines = 40) const;

 private:
  DiscoverydProcess(DiscoverydOptions options, std::string root);

  // Starts the server process and waits until it answers; Unavailable when it exits first.
  absl::Status Launch();
  absl::StatusOr<std::string> CreateToken(std::vector<std::string> args) const;
  // The parts of the environment every discoveryd command gets.
  std::vector<std::string> Environment() const;
  std::string Describe() const;

  DiscoverydOptions options_;
  std::string root_;  // temp dir: data/, discoveryd.log
  std::string data_dir_;
  std::string log_path_;
  int grpc_port_ = 0;
  int http_port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace discovery::testing
