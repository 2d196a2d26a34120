#include "testing/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX leaves it undeclared

namespace discovery::testing {
namespace {

std::string ErrnoMessage(std::string_view what) {
  return fmt::format("{}: {}", what, std::error_code(errno, std::generic_category()).message());
}

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&&) = delete;
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  int fd_;
};

// The test's environment with `changes` applied ("NAME=value" sets, "NAME" removes).
std::vector<std::string> BuildEnv(const std::vector<std::string>& changes) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    env.emplace_back(*e);
  }
  for (const std::string& change : changes) {
    const std::string prefix = change.substr(0, change.find('=')) + "=";
    std::erase_if(env, [&prefix](const std::string& e) { return e.starts_with(prefix); });
    if (change.find('=') != std::string::npos) {
      env.push_back(change);
    }
  }
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) {
    out.push_back(s.data());
  }
  out.push_back(nullptr);
  return out;
}

// fork+exec of `command` with stdin from /dev/null, stdout to `out_fd` and stderr to `err_fd`.
// Everything the child touches is prepared before fork: between fork and exec the child of a
// multi-threaded process may only make async-signal-safe calls.
absl::StatusOr<pid_t> Spawn(const Command& command, int out_fd, int err_fd) {
  if (command.argv.empty()) {
    return absl::InvalidArgumentError("empty argv");
  }
  std::vector<std::string> argv_strings = command.argv;
  std::vector<std::string> env_strings = BuildEnv(command.env);
  std::vector<char*> argv = Pointers(argv_strings);
  std::vector<char*> env = Pointers(env_strings);
  const char* working_dir = command.working_dir.empty() ? nullptr : command.working_dir.c_str();
  Fd null_fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) {
    return absl::InternalError(ErrnoMessage("open /dev/null"));
  }
  const std::string exec_failed = fmt::format("cannot execute {}\n", command.argv[0]);
  const std::string chdir_failed = fmt::format("cannot change to {}\n", command.working_dir);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(ErrnoMessage("fork"));
  }
  if (pid == 0) {
    // Dies with the thread that started it; the check closes the race with a parent that died
    // before prctl.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
      _exit(127);
    }
    if (dup2(null_fd.get(), STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0) {
      _exit(127);
    }
    if (working_dir != nullptr && chdir(working_dir) != 0) {
      (void)!write(STDERR_FILENO, chdir_failed.data(), chdir_failed.size());
      _exit(127);
    }
    execve(argv[0], argv.data(), env.data());
    (void)!write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  return pid;
}

ExitStatus Decode(int wstatus) {
  if (WIFSIGNALED(wstatus)) {
    return ExitStatus{.code = -1, .signal = WTERMSIG(wstatus)};
  }
  return ExitStatus{.code = WEXITSTATUS(wstatus), .signal = 0};
}

// waitpid without blocking; the exit status once `pid` has exited, else nullopt.
std::optional<ExitStatus> TryReap(pid_t pid) {
  int wstatus = 0;
  pid_t r = 0;
  do {
    r = waitpid(pid, &wstatus, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid) {
    return Decode(wstatus);
  }
  if (r < 0) {
    // ECHILD: someone else reaped it (or SIGCHLD is ignored); it is gone all the same.
    return ExitStatus{};
  }
  return std::nullopt;
}

// Polls until `pid` exits or `deadline` passes. Polling keeps this free of SIGCHLD handlers,
// which would belong to the whole test process.
std::optional<ExitStatus> ReapBy(pid_t pid, absl::Time deadline) {
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    if (std::optional<ExitStatus> status = TryReap(pid)) {
      return status;
    }
    if (absl::Now() >= deadline) {
      return std::nullopt;
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

}  // namespace

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

absl::StatusOr<std::string> MakeTempDir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe): read-only in tests
  std::string pattern =
      fmt::format("{}/{}-XXXXXX", tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", prefix);
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(ErrnoMessage("mkdtemp " + pattern));
  }
  return pattern;
}

std::string TailFile(const std::string& path, int lines) {
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

std::string ExitStatus::ToString() const {
  if (signal != 0) {
    const char* description = sigdescr_np(signal);
    return fmt::format("signal {} ({})", signal, description != nullptr ? description : "?");
  }
  if (code < 0) {
    return "unknown exit status (reaped elsewhere)";
  }
  return fmt::format("exit code {}", code);
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(const Command& command,
                                                                  std::string log_path) {
  // Appends, so a restarted server's log keeps the story of the earlier run.
  Fd log(open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (log.get() < 0) {
    return absl::InternalError(ErrnoMessage("open " + log_path));
  }
  absl::StatusOr<pid_t> pid = Spawn(command, log.get(), log.get());
  if (!pid.ok()) {
    return pid.status();
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(*pid, std::move(log_path)));
}

ChildProcess::~ChildProcess() {
  if (!Reap()) {
    kill(pid_, SIGKILL);
    // Bounded: a child stuck in the kernel must not hang the test run; it stays a zombie then.
    (void)ReapBy(pid_, absl::Now() + absl::Seconds(10));
  }
}

bool ChildProcess::Reap() const {
  if (!exit_.has_value()) {
    exit_ = TryReap(pid_);
  }
  return exit_.has_value();
}

bool ChildProcess::IsRunning() const { return !Reap(); }

std::optional<ExitStatus> ChildProcess::exit_status() const {
  Reap();
  return exit_;
}

absl::Status ChildProcess::Signal(int signal) {
  if (Reap()) {
    return absl::FailedPreconditionError(
        fmt::format("pid {} has already exited ({})", pid_, exit_->ToString()));
  }
  if (kill(pid_, signal) != 0) {
    return absl::InternalError(ErrnoMessage(fmt::format("kill pid {}", pid_)));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> ChildProcess::WaitExit(absl::Duration timeout) const {
  if (!exit_.has_value()) {
    exit_ = ReapBy(pid_, absl::Now() + timeout);
  }
  if (!exit_.has_value()) {
    return absl::DeadlineExceededError(fmt::format("pid {} ({}) still runs after {}; log tail:\n{}",
                                                   pid_, log_path_, absl::FormatDuration(timeout),
                                                   LogTail()));
  }
  return *exit_;
}

absl::Status ChildProcess::Kill() {
  if (Reap()) {
    return absl::OkStatus();
  }
  kill(pid_, SIGKILL);
  if (!WaitExit(absl::Seconds(10)).ok()) {
    return absl::InternalError(fmt::format("pid {} survived SIGKILL", pid_));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> ChildProcess::Terminate(absl::Duration grace) {
  if (!Reap()) {
    kill(pid_, SIGTERM);
    if (!WaitExit(grace).ok()) {
      if (absl::Status killed = Kill(); !killed.ok()) {
        return killed;
      }
    }
  }
  return *exit_;
}

std::string ChildProcess::LogTail(int lines) const { return TailFile(log_path_, lines); }

absl::StatusOr<CommandResult> RunCommand(const Command& command, absl::Duration timeout,
                                         bool merge_stderr) {
  std::array<int, 2> out_pipe{};
  std::array<int, 2> err_pipe{};
  if (pipe2(out_pipe.data(), O_CLOEXEC) != 0) {
    return absl::InternalError(ErrnoMessage("pipe"));
  }
  Fd out_read(out_pipe[0]);
  Fd out_write(out_pipe[1]);
  if (pipe2(err_pipe.data(), O_CLOEXEC) != 0) {
    return absl::InternalError(ErrnoMessage("pipe"));
  }
  Fd err_read(err_pipe[0]);
  Fd err_write(err_pipe[1]);
  absl::StatusOr<pid_t> pid =
      Spawn(command, out_write.get(), merge_stderr ? out_write.get() : err_write.get());
  // Closed here so the reads below see EOF when the child exits.
  out_write.Reset();
  err_write.Reset();
  if (!pid.ok()) {
    return pid.status();
  }
  if (merge_stderr) {
    err_read.Reset();
  }

  const absl::Time deadline = absl::Now() + timeout;
  CommandResult result;
  struct Stream {
    Fd* fd;
    std::string* text;
  };
  std::vector<Stream> open_streams = {{&out_read, &result.out}};
  if (!merge_stderr) {
    open_streams.push_back({&err_read, &result.err});
  }
  bool timed_out = false;
  while (!open_streams.empty()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    std::vector<pollfd> fds;
    fds.reserve(open_streams.size());
    for (const Stream& stream : open_streams) {
      fds.push_back({.fd = stream.fd->get(), .events = POLLIN, .revents = 0});
    }
    const int ready =
        poll(fds.data(), fds.size(), static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno != EINTR) {
      kill(*pid, SIGKILL);
      (void)ReapBy(*pid, absl::InfiniteFuture());
      return absl::InternalError(ErrnoMessage("poll"));
    }
    std::vector<Stream> still_open;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) {
        still_open.push_back(open_streams[i]);
        continue;
      }
      std::array<char, 4096> buffer{};
      const ssize_t n = read(fds[i].fd, buffer.data(), buffer.size());
      if (n > 0) {
        open_streams[i].text->append(buffer.data(), static_cast<size_t>(n));
        still_open.push_back(open_streams[i]);
      } else if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        still_open.push_back(open_streams[i]);
      }  // else EOF or an error: this stream is done
    }
    open_streams = std::move(still_open);
  }
  std::optional<ExitStatus> status;
  if (!timed_out) {
    status = ReapBy(*pid, deadline);
  }
  if (!status.has_value()) {
    kill(*pid, SIGKILL);
    (void)ReapBy(*pid, absl::Now() + absl::Seconds(10));
    return absl::DeadlineExceededError(
        fmt::format("{} did not finish within {}; stdout:\n{}\nstderr:\n{}", command.argv[0],
                    absl::FormatDuration(timeout), result.out, result.err));
  }
  result.status = *status;
  return result;
}

absl::Status WriteSelfSignedCertificate(const std::string& common_name,
                                        const std::string& cert_file, const std::string& key_file) {
  absl::StatusOr<CommandResult> openssl =
      RunCommand({.argv = {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                           "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                           absl::StrCat("/CN=", common_name), "-addext",
                           "subjectAltName=IP:127.0.0.1", "-keyout", key_file, "-out", cert_file}},
                 absl::Seconds(60));
  if (!openssl.ok()) {
    return openssl.status();
  }
  if (!openssl->status.success()) {
    return absl::InternalError(
        absl::StrCat("openssl could not make a certificate: ", openssl->err));
  }
  return absl::OkStatus();
}

}  // namespace discovery::testing
