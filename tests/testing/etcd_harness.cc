#include "testing/etcd_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "testing/process.h"

namespace discovery::testing {

struct EtcdCluster::Member {
  std::string name;
  int client_port = 0;
  int peer_port = 0;
  int metrics_port = 0;  // plain HTTP /health, also when clients use TLS
  std::string data_dir;
  std::string log_path;
  // Null until launched and after a deliberate stop; a member that died on its own keeps its
  // (exited) process, so WaitHealthy reports the death.
  std::unique_ptr<ChildProcess> process;
  bool paused = false;

  bool running() const { return process != nullptr && process->IsRunning(); }
};

namespace {

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&&) = delete;
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// GET `path` on a loopback port over HTTP/1.0 (2 s timeouts); the whole response, or "" when
// the port does not answer.
std::string LocalGet(int port, const std::string& path) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return "";
  }
  timeval timeout{.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return "";
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return "";
  }
  std::string response;
  std::array<char, 1024> buffer{};
  ssize_t n = 0;
  while ((n = recv(fd.get(), buffer.data(), buffer.size(), 0)) > 0) {
    response.append(buffer.data(), static_cast<size_t>(n));
  }
  return response;
}

// GET /health on an etcd metrics port; true when etcd reports itself healthy (it has a leader
// and can serve a quorum read).
bool Healthy(int port) {
  return absl::StrContains(LocalGet(port, "/health"), R"("health":"true")");
}

std::string Url(int port) { return absl::StrCat("http://127.0.0.1:", port); }

bool UsesTls(const EtcdClusterOptions& options) {
  return !options.server_cert_file.empty() && !options.server_key_file.empty();
}

std::string ClientUrl(const EtcdClusterOptions& options, int port) {
  return UsesTls(options) ? absl::StrCat("https://127.0.0.1:", port) : Url(port);
}

// Ports per member: client, peer, metrics.
constexpr int kPortsPerMember = 3;

}  // namespace

EtcdCluster::EtcdCluster(EtcdClusterOptions options, std::string root,
                         std::vector<std::string> endpoints)
    : options_(std::move(options)), root_(std::move(root)), endpoints_(std::move(endpoints)) {}

EtcdCluster::~EtcdCluster() {
  for (Member& member : members_) {
    (void)Terminate(member, SIGTERM, absl::Seconds(10));
  }
  if (!root_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
}

std::unique_ptr<EtcdCluster> EtcdCluster::External(std::vector<std::string> endpoints) {
  return std::unique_ptr<EtcdCluster>(new EtcdCluster({}, "", std::move(endpoints)));
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(const EtcdClusterOptions& options) {
  if (options.members < 1) {
    return absl::InvalidArgumentError("an etcd cluster needs at least one member");
  }
  absl::Status last_error;
  // Free ports can be taken by someone else before etcd binds them; new ports fix that.
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<std::string> temp_dir = MakeTempDir("discovery-etcd");
    if (!temp_dir.ok()) {
      return temp_dir.status();
    }
    const std::string root = *std::move(temp_dir);
    absl::StatusOr<std::vector<int>> ports = FreePorts(kPortsPerMember * options.members);
    if (!ports.ok()) {
      std::error_code ignored;
      std::filesystem::remove_all(root, ignored);
      return ports.status();
    }
    std::vector<Member> members;
    std::vector<std::string> endpoints;
    for (int i = 0; i < options.members; ++i) {
      Member member;
      member.name = absl::StrCat("m", i);
      const size_t first_port = static_cast<size_t>(kPortsPerMember) * static_cast<size_t>(i);
      member.client_port = (*ports)[first_port];
      member.peer_port = (*ports)[first_port + 1];
      member.metrics_port = (*ports)[first_port + 2];
      member.data_dir = absl::StrCat(root, "/", member.name, ".etcd");
      member.log_path = absl::StrCat(root, "/", member.name, ".log");
      endpoints.push_back(ClientUrl(options, member.client_port));
      members.push_back(std::move(member));
    }
    std::unique_ptr<EtcdCluster> cluster(new EtcdCluster(options, root, std::move(endpoints)));
    cluster->members_ = std::move(members);
    const absl::Time deadline = absl::Now() + options.start_timeout;
    absl::Status status;
    for (Member& member : cluster->members_) {
      status = cluster->Launch(member);
      if (!status.ok()) {
        break;
      }
    }
    if (status.ok()) {
      status = cluster->WaitHealthy(deadline);
    }
    if (status.ok()) {
      return cluster;
    }
    last_error = status;
    if (!absl::StrContains(status.message(), "address already in use")) {
      break;
    }
  }
  return last_error;
}

absl::Status EtcdCluster::Launch(Member& member) {
  std::vector<std::string> initial_cluster;
  for (const Member& m : members_) {
    initial_cluster.push_back(absl::StrCat(m.name, "=", Url(m.peer_port)));
  }
  Command command;
  command.argv = {options_.etcd_binary,
                  "--name=" + member.name,
                  "--data-dir=" + member.data_dir,
                  "--listen-client-urls=" + ClientUrl(options_, member.client_port),
                  "--advertise-client-urls=" + ClientUrl(options_, member.client_port),
                  "--listen-metrics-urls=" + Url(member.metrics_port),
                  "--listen-peer-urls=" + Url(member.peer_port),
                  "--initial-advertise-peer-urls=" + Url(member.peer_port),
                  "--initial-cluster=" + absl::StrJoin(initial_cluster, ","),
                  "--initial-cluster-state=new",
                  "--initial-cluster-token=" + root_,
                  "--logger=zap",
                  "--log-outputs=stderr"};
  if (UsesTls(options_)) {
    command.argv.push_back("--cert-file=" + options_.server_cert_file);
    command.argv.push_back("--key-file=" + options_.server_key_file);
  }
  command.argv.insert(command.argv.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  absl::StatusOr<std::unique_ptr<ChildProcess>> process =
      ChildProcess::Start(command, member.log_path);
  if (!process.ok()) {
    return process.status();
  }
  member.process = *std::move(process);
  return absl::OkStatus();
}

absl::Status EtcdCluster::WaitHealthy(absl::Time deadline) {
  for (size_t i = 0; i < members_.size(); ++i) {
    Member& member = members_[i];
    while (member.process != nullptr && !Healthy(member.metrics_port)) {
      if (!member.process->IsRunning()) {
        const std::string how = member.process->exit_status()->ToString();
        member.process.reset();
        return absl::UnavailableError(absl::StrCat("etcd member ", member.name,
                                                   " exited during startup (", how,
                                                   "); log tail:\n", LogTail(static_cast<int>(i))));
      }
      if (absl::Now() >= deadline) {
        return absl::UnavailableError(absl::StrCat(
            "etcd member ", member.name, " at ", Url(member.client_port), " not healthy within ",
            absl::FormatDuration(options_.start_timeout), "; logs:\n", AllLogTails()));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  return absl::OkStatus();
}

absl::Status EtcdCluster::Terminate(Member& member, int signal, absl::Duration grace) {
  if (!member.running()) {
    return absl::OkStatus();
  }
  if (member.paused) {  // a stopped process would not act on SIGTERM
    (void)member.process->Signal(SIGCONT);
    member.paused = false;
  }
  absl::Status status;
  if (signal == SIGKILL || !member.process->Signal(signal).ok() ||
      !member.process->WaitExit(grace).ok()) {
    status = member.process->Kill();
  }
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("etcd member ", member.name, ": ", status.message()));
  }
  member.process.reset();  // stopped on purpose: WaitHealthy no longer waits for it
  return absl::OkStatus();
}

std::string EtcdCluster::EndpointList() const { return absl::StrJoin(endpoints_, ","); }

absl::Status EtcdCluster::Kill(int index) {
  if (index < 0 || index >= static_cast<int>(members_.size())) {
    return absl::FailedPreconditionError(absl::StrCat("no managed etcd member ", index));
  }
  return Terminate(members_[index], SIGKILL, absl::Seconds(10));
}

absl::Status EtcdCluster::Stop(int index) {
  if (index < 0 || index >= static_cast<int>(members_.size())) {
    return absl::FailedPreconditionError(absl::StrCat("no managed etcd member ", index));
  }
  return Terminate(members_[index], SIGTERM, absl::Seconds(10));
}

absl::Status EtcdCluster::Restart(int index) {
  if (index < 0 || index >= static_cast<int>(members_.size())) {
    return absl::FailedPreconditionError(absl::StrCat("no managed etcd member ", index));
  }
  Member& member = members_[index];
  if (member.running()) {
    return absl::FailedPreconditionError(absl::StrCat("etcd member ", member.name, " is running"));
  }
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  // The old process released its ports when it died, but a port can linger in a state that
  // refuses bind for a moment; etcd then exits at once and is simply started again.
  while (true) {
    if (absl::Status status = Launch(member); !status.ok()) {
      return status;
    }
    absl::Status status = WaitHealthy(deadline);
    if (status.ok() || !absl::StrContains(status.message(), "address already in use") ||
        absl::Now() >= deadline) {
      return status;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

bool EtcdCluster::IsRunning(int index) const {
  return index >= 0 && index < static_cast<int>(members_.size()) && members_[index].running();
}

absl::Status EtcdCluster::Pause(int index) {
  if (!IsRunning(index)) {
    return absl::FailedPreconditionError(absl::StrCat("etcd member ", index, " is not running"));
  }
  Member& member = members_[index];
  if (absl::Status status = member.process->Signal(SIGSTOP); !status.ok()) {
    return status;
  }
  member.paused = true;
  return absl::OkStatus();
}

absl::Status EtcdCluster::Resume(int index) {
  if (!IsRunning(index)) {
    return absl::FailedPreconditionError(absl::StrCat("etcd member ", index, " is not running"));
  }
  Member& member = members_[index];
  if (absl::Status status = member.process->Signal(SIGCONT); !status.ok()) {
    return status;
  }
  member.paused = false;
  return absl::OkStatus();
}

absl::StatusOr<int> EtcdCluster::LeaderIndex() const {
  for (size_t i = 0; i < members_.size(); ++i) {
    const Member& member = members_[i];
    if (!member.running() || member.paused) {
      continue;
    }
    for (absl::string_view line : absl::StrSplit(LocalGet(member.metrics_port, "/metrics"), '\n')) {
      if (line == "etcd_server_is_leader 1") {
        return static_cast<int>(i);
      }
    }
  }
  return absl::NotFoundError("no etcd member leads the cluster");
}

absl::StatusOr<int> EtcdCluster::WaitForLeader(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<int> leader = LeaderIndex();
    if (leader.ok() || absl::Now() >= deadline) {
      return leader;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::StatusOr<std::string> EtcdCluster::Etcdctl(const std::vector<std::string>& args) const {
  Command command;
  command.argv = {options_.etcdctl_binary, "--endpoints=" + EndpointList()};
  if (UsesTls(options_)) {
    command.argv.push_back("--cacert=" + options_.server_cert_file);
  }
  command.argv.insert(command.argv.end(), args.begin(), args.end());
  command.env = {"ETCDCTL_API=3"};
  absl::StatusOr<CommandResult> result =
      RunCommand(command, absl::Minutes(1), /*merge_stderr=*/true);
  if (!result.ok()) {
    return result.status();
  }
  if (!result->status.success()) {
    return absl::InternalError(
        absl::StrCat("etcdctl ", absl::StrJoin(args, " "), " failed: ", result->out));
  }
  return std::move(result->out);
}

std::string EtcdCluster::LogTail(int index, int lines) const {
  if (index < 0 || index >= static_cast<int>(members_.size())) {
    return "";
  }
  return TailFile(members_[index].log_path, lines);
}

std::string EtcdCluster::AllLogTails() const {
  std::string out;
  for (size_t i = 0; i < members_.size(); ++i) {
    absl::StrAppend(&out, "--- ", members_[i].name, " (", members_[i].log_path, ")\n",
                    LogTail(static_cast<int>(i)), "\n");
  }
  return out;
}

namespace {

struct SharedCluster {
  absl::Mutex mu;
  bool started ABSL_GUARDED_BY(mu) = false;
  absl::Status error ABSL_GUARDED_BY(mu);
  std::unique_ptr<EtcdCluster> cluster ABSL_GUARDED_BY(mu);
};

// Leaked on purpose: it must still exist when the atexit hook below runs.
SharedCluster& Shared() {
  static auto* shared = new SharedCluster;
  return *shared;
}

void StopSharedCluster() {
  SharedCluster& shared = Shared();
  absl::MutexLock lock(&shared.mu);
  shared.cluster.reset();
}

}  // namespace

absl::StatusOr<EtcdCluster*> SharedEtcdCluster() {
  SharedCluster& shared = Shared();
  absl::MutexLock lock(&shared.mu);
  if (!shared.started) {
    shared.started = true;
    // NOLINTNEXTLINE(concurrency-mt-unsafe): tests do not change this variable
    const char* env = std::getenv("DISCOVERY_TEST_ETCD_ENDPOINTS");
    if (env != nullptr && *env != '\0') {
      shared.cluster = EtcdCluster::External(absl::StrSplit(env, ',', absl::SkipWhitespace()));
    } else {
      absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start();
      if (cluster.ok()) {
        shared.cluster = *std::move(cluster);
        // Fails only when the handler table is full; the members would then outlive the binary.
        (void)std::atexit(StopSharedCluster);
      } else {
        shared.error = absl::Status(
            cluster.status().code(),
            absl::StrCat("cannot start the test etcd (set DISCOVERY_TEST_ETCD_ENDPOINTS to use "
                         "a running one): ",
                         cluster.status().message()));
      }
    }
  }
  if (!shared.error.ok()) {
    return shared.error;
  }
  return shared.cluster.get();
}

}  // namespace discovery::testing
