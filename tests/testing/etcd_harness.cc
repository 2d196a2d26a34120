#include "testing/etcd_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
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

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX leaves it undeclared

namespace discovery::testing {

struct EtcdCluster::Member {
  std::string name;
  int client_port = 0;
  int peer_port = 0;
  int metrics_port = 0;  // plain HTTP /health, also when clients use TLS
  std::string data_dir;
  std::string log_path;
  pid_t pid = -1;  // -1: not running
};

namespace {

std::string ErrnoMessage(const std::string& what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

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
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reserves `n` distinct free loopback ports. They are only free at this moment: etcd may lose a
// race for one, which Start detects ("address already in use") and answers with new ports.
absl::StatusOr<std::vector<int>> FreePorts(int n) {
  std::vector<std::unique_ptr<Fd>> sockets;  // held open until all are picked: no duplicates
  std::vector<int> ports;
  for (int i = 0; i < n; ++i) {
    auto fd = std::make_unique<Fd>(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd->get() < 0) {
      return absl::InternalError(ErrnoMessage("socket"));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (bind(fd->get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd->get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return absl::InternalError(ErrnoMessage("bind 127.0.0.1:0"));
    }
    ports.push_back(ntohs(addr.sin_port));
    sockets.push_back(std::move(fd));
  }
  return ports;
}

// GET /health on an etcd metrics port; true when etcd reports itself healthy (it has a leader
// and can serve a quorum read).
bool Healthy(int port) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return false;
  }
  timeval timeout{.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return false;
  }
  const std::string request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return false;
  }
  std::string response;
  char buffer[1024];
  ssize_t n = 0;
  while ((n = recv(fd.get(), buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<size_t>(n));
  }
  return absl::StrContains(response, "\"health\":\"true\"");
}

// fork+exec with every string prepared beforehand: between fork and exec the child of a
// multi-threaded process may only make async-signal-safe calls.
struct Command {
  std::vector<std::string> argv;
  std::vector<std::string> extra_env;

  std::vector<char*> Argv() {
    std::vector<char*> out;
    for (std::string& arg : argv) {
      out.push_back(arg.data());
    }
    out.push_back(nullptr);
    return out;
  }
  std::vector<char*> Env() {
    std::vector<char*> out;
    for (char** e = environ; *e != nullptr; ++e) {
      out.push_back(*e);
    }
    for (std::string& e : extra_env) {
      out.push_back(e.data());
    }
    out.push_back(nullptr);
    return out;
  }
};

// Starts `command` with stdin from /dev/null and stdout+stderr to `output_fd`. The child gets
// SIGKILL when the thread that started it dies, so a crashed test leaves no etcd behind.
absl::StatusOr<pid_t> Spawn(Command& command, int output_fd) {
  std::vector<char*> argv = command.Argv();
  std::vector<char*> env = command.Env();
  Fd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) {
    return absl::InternalError(ErrnoMessage("open /dev/null"));
  }
  const std::string exec_failed = absl::StrCat("cannot execute ", command.argv[0], "\n");
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(ErrnoMessage("fork"));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
      _exit(127);
    }
    if (dup2(null_fd.get(), STDIN_FILENO) < 0 || dup2(output_fd, STDOUT_FILENO) < 0 ||
        dup2(output_fd, STDERR_FILENO) < 0) {
      _exit(127);
    }
    execve(argv[0], argv.data(), env.data());
    (void)!write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  return pid;
}

// Polls waitpid for up to `timeout`; true when `pid` exited (and was reaped).
bool WaitExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const pid_t r = waitpid(pid, nullptr, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      return true;
    }
    if (absl::Now() >= deadline) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

std::string Tail(const std::string& path, int lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(std::move(line));
    if (static_cast<int>(last.size()) > lines) {
      last.pop_front();
    }
  }
  return absl::StrJoin(last, "\n");
}

std::string TempRoot() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/discovery-etcd-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return "";
  }
  return pattern;
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

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(EtcdClusterOptions options) {
  if (options.members < 1) {
    return absl::InvalidArgumentError("an etcd cluster needs at least one member");
  }
  absl::Status last_error;
  // Free ports can be taken by someone else before etcd binds them; new ports fix that.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::string root = TempRoot();
    if (root.empty()) {
      return absl::InternalError(ErrnoMessage("mkdtemp"));
    }
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
      member.client_port = (*ports)[kPortsPerMember * i];
      member.peer_port = (*ports)[kPortsPerMember * i + 1];
      member.metrics_port = (*ports)[kPortsPerMember * i + 2];
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
  // Appends, so a restarted member's log keeps the story of the earlier run.
  Fd log(open(member.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (log.get() < 0) {
    return absl::InternalError(ErrnoMessage("open " + member.log_path));
  }
  absl::StatusOr<pid_t> pid = Spawn(command, log.get());
  if (!pid.ok()) {
    return pid.status();
  }
  member.pid = *pid;
  return absl::OkStatus();
}

absl::Status EtcdCluster::WaitHealthy(absl::Time deadline) {
  for (size_t i = 0; i < members_.size(); ++i) {
    Member& member = members_[i];
    while (member.pid >= 0 && !Healthy(member.metrics_port)) {
      if (waitpid(member.pid, nullptr, WNOHANG) == member.pid) {
        member.pid = -1;
        return absl::UnavailableError(absl::StrCat("etcd member ", member.name,
                                                   " exited during startup; log tail:\n",
                                                   LogTail(static_cast<int>(i))));
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
  if (member.pid < 0) {
    return absl::OkStatus();
  }
  kill(member.pid, signal);
  if (!WaitExit(member.pid, grace)) {
    kill(member.pid, SIGKILL);
    if (!WaitExit(member.pid, absl::Seconds(10))) {
      return absl::InternalError(
          absl::StrCat("etcd member ", member.name, " (pid ", member.pid, ") survived SIGKILL"));
    }
  }
  member.pid = -1;
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
  if (member.pid >= 0) {
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
  return index >= 0 && index < static_cast<int>(members_.size()) && members_[index].pid >= 0;
}

absl::StatusOr<std::string> EtcdCluster::Etcdctl(const std::vector<std::string>& args) const {
  Command command;
  command.argv = {options_.etcdctl_binary, "--endpoints=" + EndpointList()};
  if (UsesTls(options_)) {
    command.argv.push_back("--cacert=" + options_.server_cert_file);
  }
  command.argv.insert(command.argv.end(), args.begin(), args.end());
  command.extra_env = {"ETCDCTL_API=3"};
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(ErrnoMessage("pipe"));
  }
  Fd read_end(pipe_fds[0]);
  absl::StatusOr<pid_t> pid;
  {
    Fd write_end(pipe_fds[1]);  // closed here so the read below sees EOF when etcdctl exits
    pid = Spawn(command, write_end.get());
  }
  if (!pid.ok()) {
    return pid.status();
  }
  std::string output;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = read(read_end.get(), buffer, sizeof(buffer))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) {
      output.append(buffer, static_cast<size_t>(n));
    }
  }
  int wstatus = 0;
  while (waitpid(*pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError(
        absl::StrCat("etcdctl ", absl::StrJoin(args, " "), " failed: ", output));
  }
  return output;
}

std::string EtcdCluster::LogTail(int index, int lines) const {
  if (index < 0 || index >= static_cast<int>(members_.size())) {
    return "";
  }
  return Tail(members_[index].log_path, lines);
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
  static SharedCluster* shared = new SharedCluster;
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
    const char* env = std::getenv("DISCOVERY_TEST_ETCD_ENDPOINTS");
    if (env != nullptr && *env != '\0') {
      shared.cluster = EtcdCluster::External(absl::StrSplit(env, ',', absl::SkipWhitespace()));
    } else {
      absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start();
      if (cluster.ok()) {
        shared.cluster = *std::move(cluster);
        std::atexit(StopSharedCluster);
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
