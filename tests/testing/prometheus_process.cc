#include "testing/prometheus_process.h"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

#include "testing/http_client.h"
#include "testing/process.h"

namespace discovery::testing {
namespace {

constexpr int kStartAttempts = 3;

}  // namespace

PrometheusProcess::PrometheusProcess(PrometheusOptions options, std::string root)
    : options_(std::move(options)), root_(std::move(root)), log_path_(root_ + "/prometheus.log") {}

PrometheusProcess::~PrometheusProcess() {
  process_.reset();  // SIGKILLs and reaps a running server before its files go
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

absl::StatusOr<std::unique_ptr<PrometheusProcess>> PrometheusProcess::Start(
    PrometheusOptions options) {
  absl::StatusOr<std::string> root = MakeTempDir("discovery-prometheus");
  if (!root.ok()) {
    return root.status();
  }
  std::unique_ptr<PrometheusProcess> prometheus(
      new PrometheusProcess(std::move(options), *std::move(root)));
  const std::string config_path = prometheus->root_ + "/prometheus.yml";
  {
    std::ofstream config(config_path);
    config << prometheus->options_.config_yaml;
    if (!config.flush()) {
      return absl::InternalError("cannot write " + config_path);
    }
  }
  absl::Status status;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    absl::StatusOr<std::vector<int>> port = FreePorts(1);
    if (!port.ok()) {
      return port.status();
    }
    prometheus->port_ = (*port)[0];
    status = prometheus->Launch();
    // Another process can take the free port before Prometheus binds it; a new port fixes that.
    if (status.ok() || prometheus->IsRunning() ||
        !absl::StrContains(prometheus->LogTail(10), "address already in use")) {
      break;
    }
  }
  if (!status.ok()) {
    return status;
  }
  return prometheus;
}

std::string PrometheusProcess::url() const { return fmt::format("http://127.0.0.1:{}", port_); }

bool PrometheusProcess::IsRunning() const { return process_ != nullptr && process_->IsRunning(); }

absl::Status PrometheusProcess::Launch() {
  Command command;
  command.argv = {options_.binary, "--config.file=" + root_ + "/prometheus.yml",
                  "--storage.tsdb.path=" + root_ + "/data",
                  fmt::format("--web.listen-address=127.0.0.1:{}", port_)};
  command.argv.insert(command.argv.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  command.working_dir = root_;
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Start(command, log_path_);
  if (!process.ok()) {
    return process.status();
  }
  process_ = *std::move(process);

  const absl::Time deadline = absl::Now() + options_.start_timeout;
  std::string last_answer = "no answer";
  while (true) {
    if (!process_->IsRunning()) {
      return absl::UnavailableError(
          fmt::format("prometheus on {} exited during startup ({}); log tail:\n{}", url(),
                      process_->exit_status()->ToString(), LogTail()));
    }
    absl::StatusOr<HttpResult> answer = HttpGet(url() + "/-/ready", absl::Seconds(2));
    if (answer.ok() && answer->status == 200) {
      return absl::OkStatus();
    }
    last_answer = answer.ok() ? fmt::format("{} {}", answer->status, answer->body)
                              : std::string{answer.status().message()};
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          fmt::format("prometheus on {} not ready within {} (last: {}); log tail:\n{}", url(),
                      absl::FormatDuration(options_.start_timeout), last_answer, LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::StatusOr<nlohmann::json> PrometheusProcess::ActiveTargets() const {
  const std::string target_url = url() + "/api/v1/targets?state=active";
  absl::StatusOr<HttpResult> answer = HttpGet(target_url);
  if (!answer.ok()) {
    return answer.status();
  }
  nlohmann::json body = nlohmann::json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
  if (answer->status != 200 || !body.is_object() || body.value("status", "") != "success" ||
      !body.contains("data") || !body["data"].is_object() ||
      !body["data"].contains("activeTargets")) {
    return absl::InternalError(
        fmt::format("GET {}: {} {}", target_url, answer->status, answer->body));
  }
  return std::move(body["data"]["activeTargets"]);
}

absl::StatusOr<nlohmann::json> PrometheusProcess::AwaitActiveTargets(
    const std::function<bool(const nlohmann::json&)>& done, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "none";
  while (true) {
    absl::StatusOr<nlohmann::json> targets = ActiveTargets();
    if (targets.ok() && done(*targets)) {
      return targets;
    }
    last = targets.ok() ? targets->dump(2) : std::string{targets.status().message()};
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          fmt::format("prometheus on {}: active targets not as expected within {}; last seen:\n"
                      "{}\nlog tail:\n{}",
                      url(), absl::FormatDuration(timeout), last, LogTail()));
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

absl::Status PrometheusProcess::Stop(absl::Duration grace) {
  if (!IsRunning()) {
    return absl::FailedPreconditionError(fmt::format(
        "prometheus on {} is not running{}", url(),
        process_ == nullptr ? "" : " (it ended with " + process_->exit_status()->ToString() + ")"));
  }
  if (absl::Status sent = process_->Signal(SIGTERM); !sent.ok()) {
    return sent;
  }
  absl::StatusOr<ExitStatus> exit = process_->WaitExit(grace);
  if (!exit.ok()) {
    (void)process_->Kill();
    return absl::DeadlineExceededError(
        fmt::format("prometheus on {} did not exit within {} of SIGTERM (killed); log tail:\n{}",
                    url(), absl::FormatDuration(grace), LogTail()));
  }
  if (!exit->success()) {
    return absl::InternalError(
        fmt::format("prometheus on {} ended with {} after SIGTERM; log "
                    "tail:\n{}",
                    url(), exit->ToString(), LogTail()));
  }
  return absl::OkStatus();
}

std::string PrometheusProcess::LogTail(int lines) const { return TailFile(log_path_, lines); }

}  // namespace discovery::testing
