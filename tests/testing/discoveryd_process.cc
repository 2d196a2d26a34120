#include "testing/discoveryd_process.h"

#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "fmt/ranges.h"

#include "testing/http_client.h"
#include "testing/process.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX leaves it undeclared

namespace discovery::testing {
namespace {

// How often Start retries with new ports when another process took one first.
constexpr int kStartAttempts = 3;

// discoveryd's messages when a listener cannot bind (gRPC's is generic, Beast's has errno text).
bool LostPortRace(const std::string& log_tail) {
  return absl::StrContains(log_tail, "cannot listen") ||
         absl::StrContains(absl::AsciiStrToLower(log_tail), "address already in use");
}

}  // namespace

DiscoverydProcess::DiscoverydProcess(DiscoverydOptions options, std::string root)
    : options_(std::move(options)),
      root_(std::move(root)),
      data_dir_(root_ + "/data"),
      log_path_(root_ + "/discoveryd.log") {}

DiscoverydProcess::~DiscoverydProcess() {
  process_.reset();  // SIGKILLs and reaps a running server before its files go
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

absl::StatusOr<std::unique_ptr<DiscoverydProcess>> DiscoverydProcess::Start(
    DiscoverydOptions options) {
  if (options.binary.empty()) {
    return absl::InvalidArgumentError("DiscoverydOptions.binary is empty");
  }
  absl::StatusOr<std::string> root = MakeTempDir("discoveryd");
  if (!root.ok()) {
    return root.status();
  }
  std::unique_ptr<DiscoverydProcess> daemon(
      new DiscoverydProcess(std::move(options), *std::move(root)));
  std::error_code ec;
  std::filesystem::create_directory(daemon->data_dir_, ec);
  if (ec) {
    return absl::InternalError(fmt::format("mkdir {}: {}", daemon->data_dir_, ec.message()));
  }
  absl::Status status;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    absl::StatusOr<std::vector<int>> ports = FreePorts(2);
    if (!ports.ok()) {
      return ports.status();
    }
    daemon->grpc_port_ = (*ports)[0];
    daemon->http_port_ = (*ports)[1];
    status = daemon->Launch();
    if (status.ok()) {
      return daemon;
    }
    if (daemon->IsRunning() || !LostPortRace(daemon->LogTail(10))) {
      break;
    }
  }
  return status;
}

std::string DiscoverydProcess::grpc_address() const {
  return fmt::format("127.0.0.1:{}", grpc_port_);
}

std::string DiscoverydProcess::http_url() const {
  return fmt::format("{}://127.0.0.1:{}", options_.tls.has_value() ? "https" : "http", http_port_);
}

bool DiscoverydProcess::IsRunning() const { return process_ != nullptr && process_->IsRunning(); }

pid_t DiscoverydProcess::pid() const { return process_ == nullptr ? -1 : process_->pid(); }

std::vector<std::string> DiscoverydProcess::Environment() const {
  // HOME holds ~/.config/discovery/config.yaml; the working dir holds ./discovery.yaml.
  std::vector<std::string> env = {"HOME=" + root_};
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("DISCOVERY_")) {
      env.emplace_back(entry.substr(0, entry.find('=')));  // a bare name removes the variable
    }
  }
  return env;
}

std::string DiscoverydProcess::Describe() const {
  return fmt::format("discoveryd (grpc {}, http {}, log {})", grpc_address(), http_url(),
                     log_path_);
}

absl::Status DiscoverydProcess::Launch() {
  Command command;
  command.argv = {options_.binary,
                  "server",
                  "--grpc-listen=" + grpc_address(),
                  "--http-listen=" + fmt::format("127.0.0.1:{}", http_port_),
                  "--data-dir=" + data_dir_,
                  "--token-secret=" + options_.token_secret,
                  "--token-issuer=" + options_.token_issuer,
                  "--log-format=json"};
  if (options_.debug_logs) {
    command.argv.emplace_back("--debug");
  }
  if (options_.tls.has_value()) {
    command.argv.push_back("--tls-cert=" + options_.tls->first);
    command.argv.push_back("--tls-key=" + options_.tls->second);
  }
  command.argv.insert(command.argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  command.env = Environment();
  command.working_dir = root_;
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(command, log_path_);
  if (!process.ok()) {
    return process.status();
  }
  process_ = *std::move(process);

  const std::string probe = http_url() + (options_.wait_ready ? "/readyz" : "/healthz");
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  std::string last_answer = "no answer";
  while (true) {
    if (!process_->IsRunning()) {
      return absl::UnavailableError(fmt::format("{} exited during startup ({}); log tail:\n{}",
                                                Describe(), process_->exit_status()->ToString(),
                                                LogTail()));
    }
    absl::StatusOr<HttpResult> answer =
        HttpGet(probe, absl::Seconds(2), /*insecure_tls=*/options_.tls.has_value());
    if (answer.ok() && answer->status == 200) {
      return absl::OkStatus();
    }
    last_answer = answer.ok() ? fmt::format("{} {}", answer->status, answer->body)
                              : std::string{answer.status().message()};
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          fmt::format("{} not answering 200 on {} within {} (last: {}); log tail:\n{}", Describe(),
                      probe, absl::FormatDuration(options_.start_timeout), last_answer, LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::StatusOr<std::string> DiscoverydProcess::CreateToken(std::vector<std::string> args) const {
  Command command;
  // --data-dir: where a default secret would live; the explicit --token-secret wins over it.
  command.argv = {options_.binary, "--data-dir=" + data_dir_, "--log-format=json", "token",
                  "create"};
  command.argv.insert(command.argv.end(), args.begin(), args.end());
  command.argv.push_back("--token-secret=" + options_.token_secret);
  command.argv.push_back("--token-issuer=" + options_.token_issuer);
  command.env = Environment();
  command.working_dir = root_;
  absl::StatusOr<CommandResult> result = RunCommand(command, absl::Seconds(30));
  if (!result.ok()) {
    return result.status();
  }
  const std::string token(absl::StripAsciiWhitespace(result->out));
  if (!result->status.success() || token.empty()) {
    return absl::InternalError(fmt::format("discoveryd token create {} failed ({}): {}{}",
                                           fmt::join(args, " "), result->status.ToString(),
                                           result->err, result->out));
  }
  return token;
}

absl::StatusOr<std::string> DiscoverydProcess::AdminToken() const {
  return CreateToken({"admin", "--admin"});
}

absl::StatusOr<std::string> DiscoverydProcess::MachineToken(std::string id,
                                                            std::vector<std::string> namespaces,
                                                            const std::string& expires) const {
  std::vector<std::string> args = {std::move(id)};
  if (!namespaces.empty()) {
    args.push_back(fmt::format("--namespaces={}", fmt::join(namespaces, ",")));
  }
  if (!expires.empty()) {
    args.push_back("--expires=" + expires);
  }
  return CreateToken(std::move(args));
}

absl::Status DiscoverydProcess::Stop(absl::Duration grace) {
  if (!IsRunning()) {
    return absl::FailedPreconditionError(fmt::format(
        "{} is not running{}", Describe(),
        process_ == nullptr ? "" : " (it ended with " + process_->exit_status()->ToString() + ")"));
  }
  if (absl::Status sent = process_->Signal(SIGTERM); !sent.ok()) {
    return sent;
  }
  const absl::Duration limit = grace + absl::Seconds(5);
  absl::StatusOr<ExitStatus> exit = process_->WaitExit(limit);
  if (!exit.ok()) {
    (void)process_->Kill();
    return absl::DeadlineExceededError(
        fmt::format("{} did not exit within {} of SIGTERM (killed); log tail:\n{}", Describe(),
                    absl::FormatDuration(limit), LogTail()));
  }
  if (!exit->success()) {
    return absl::InternalError(fmt::format("{} ended with {} after SIGTERM; log tail:\n{}",
                                           Describe(), exit->ToString(), LogTail()));
  }
  return absl::OkStatus();
}

absl::Status DiscoverydProcess::Kill() {
  if (process_ == nullptr) {
    return absl::OkStatus();
  }
  return process_->Kill();
}

absl::Status DiscoverydProcess::Restart() {
  if (IsRunning()) {
    if (absl::Status stopped = Stop(); !stopped.ok()) {
      return stopped;
    }
  }
  // The ports were released by the old process; a socket of it can linger for a moment, so a
  // start that loses its port is retried on the same ports until start_timeout.
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  while (true) {
    absl::Status status = Launch();
    if (status.ok() || IsRunning() || !LostPortRace(LogTail(10)) || absl::Now() >= deadline) {
      return status;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

std::string DiscoverydProcess::LogTail(int lines) const { return TailFile(log_path_, lines); }

}  // namespace discovery::testing
