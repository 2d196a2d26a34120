// Real etcd processes for integration tests: starts /usr/bin/etcd members on free loopback ports
// with throw-away data dirs, waits until they are healthy, and can kill and restart members for
// fault tests. Tests never skip when etcd cannot start: every error carries the tail of etcd's
// log so the failure explains itself.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery::testing {

struct EtcdClusterOptions {
  int members = 1;
  std::string etcd_binary = "/usr/bin/etcd";
  std::string etcdctl_binary = "/usr/bin/etcdctl";
  // How long Start and Restart wait for every member to report healthy.
  absl::Duration start_timeout = absl::Seconds(30);
  // Extra etcd flags for every member, e.g. "--auth-token-ttl=1".
  std::vector<std::string> extra_flags;
  // When both are set, clients talk TLS: endpoints are https:// and served with this PEM
  // certificate and key (health checks use a separate plain-HTTP metrics port).
  std::string server_cert_file;
  std::string server_key_file;
};

// A local etcd cluster (or an externally provided one). Not thread-safe: drive it from the test
// thread. Destroying it stops every member and removes all data and logs.
class EtcdCluster {
 public:
  // Starts `options.members` members on 127.0.0.1 and waits until all are healthy. Fails with
  // Unavailable (and etcd's log tail) when they do not come up within start_timeout, or with
  // Internal when processes or directories cannot be created.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(const EtcdClusterOptions& options = {});
  // Wraps endpoints of an etcd this process does not manage (Kill/Stop/Restart fail with
  // FailedPrecondition).
  static std::unique_ptr<EtcdCluster> External(std::vector<std::string> endpoints);

  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // Client URLs ("http://127.0.0.1:PORT", https:// with TLS), one per member, in member order.
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  // endpoints() joined with ",", as etcdctl's --endpoints takes them.
  std::string EndpointList() const;
  int size() const { return static_cast<int>(endpoints_.size()); }
  bool external() const { return members_.empty(); }

  // SIGKILLs member `index` and reaps it: a crash, no clean shutdown.
  absl::Status Kill(int index);
  // SIGTERMs member `index`, escalating to SIGKILL when it does not exit within 10 s.
  absl::Status Stop(int index);
  // Starts a stopped member again on its data dir and ports and waits until it is healthy.
  absl::Status Restart(int index);
  bool IsRunning(int index) const;
  // SIGSTOPs / SIGCONTs member `index`: its sockets stay open but nothing answers, like a network
  // partition (clients see hanging calls, not refused connections). The destructor resumes a
  // paused member before stopping it.
  absl::Status Pause(int index);
  absl::Status Resume(int index);
  // The index of the member that currently leads the cluster, from each running member's
  // etcd_server_is_leader metric; NotFound while there is none (e.g. during an election).
  absl::StatusOr<int> LeaderIndex() const;
  // Waits up to `timeout` until some running member leads.
  absl::StatusOr<int> WaitForLeader(absl::Duration timeout) const;

  // Runs etcdctl (API v3) against this cluster's endpoints; returns its combined output, or
  // Internal with that output when it exits non-zero.
  absl::StatusOr<std::string> Etcdctl(const std::vector<std::string>& args) const;

  // The last `lines` lines of member `index`'s log ("" for an external cluster).
  std::string LogTail(int index, int lines = 30) const;

 private:
  struct Member;

  EtcdCluster(EtcdClusterOptions options, std::string root, std::vector<std::string> endpoints);

  absl::Status Launch(Member& member);
  // Waits until every running member answers /health, or one of them exits.
  absl::Status WaitHealthy(absl::Time deadline);
  static absl::Status Terminate(Member& member, int signal, absl::Duration grace);
  std::string AllLogTails() const;

  EtcdClusterOptions options_;
  std::string root_;  // temp dir holding every member's data dir and log; "" when external
  std::vector<std::string> endpoints_;
  std::vector<Member> members_;
};

// The etcd shared by all tests of this process: the cluster named by the comma-separated
// DISCOVERY_TEST_ETCD_ENDPOINTS when set, else a one-member cluster started on first use and
// stopped at exit. A start failure is remembered and returned to every caller (with etcd's log
// tail), so each test using it fails instead of skipping. Thread-safe.
absl::StatusOr<EtcdCluster*> SharedEtcdCluster();

}  // namespace discovery::testing
