#include "metrics/collectors.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

#include "common/file.h"

namespace discovery::metrics {
namespace {

prometheus::MetricFamily Single(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return {std::move(name), std::move(help), type, {std::move(metric)}};
}

// The fields of /proc/<pid>/stat that the Go collector reads (proc(5) numbering).
struct ProcStat {
  std::uint64_t utime_ticks = 0;      // 14
  std::uint64_t stime_ticks = 0;      // 15
  std::uint64_t starttime_ticks = 0;  // 22, since boot
  std::uint64_t vsize_bytes = 0;      // 23
  std::int64_t rss_pages = 0;         // 24
};

std::optional<ProcStat> ParseProcStat(absl::string_view text) {
  // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
  const std::size_t comm_end = text.rfind(')');
  if (comm_end == absl::string_view::npos) {
    return std::nullopt;
  }
  const std::vector<absl::string_view> fields =
      absl::StrSplit(text.substr(comm_end + 1), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  // fields[0] is field 3 (state).
  constexpr std::size_t kFirst = 3;
  if (fields.size() <= 24 - kFirst) {
    return std::nullopt;
  }
  ProcStat stat;
  if (!absl::SimpleAtoi(fields[14 - kFirst], &stat.utime_ticks) ||
      !absl::SimpleAtoi(fields[15 - kFirst], &stat.stime_ticks) ||
      !absl::SimpleAtoi(fields[22 - kFirst], &stat.starttime_ticks) ||
      !absl::SimpleAtoi(fields[23 - kFirst], &stat.vsize_bytes) ||
      !absl::SimpleAtoi(fields[24 - kFirst], &stat.rss_pages)) {
    return std::nullopt;
  }
  return stat;
}

// Returns the soft limit of the /proc/<pid>/limits row named `row`. "unlimited" becomes
// 2^64-1, the value Go's procfs reports for it.
std::optional<double> SoftLimit(absl::string_view limits, absl::string_view row) {
  for (absl::string_view line : absl::StrSplit(limits, '\n')) {
    if (!absl::StartsWith(line, row)) {
      continue;
    }
    const std::vector<absl::string_view> columns =
        absl::StrSplit(line.substr(row.size()), ' ', absl::SkipEmpty());
    if (columns.empty()) {
      return std::nullopt;
    }
    if (columns[0] == "unlimited") {
      return static_cast<double>(std::numeric_limits<std::uint64_t>::max());
    }
    std::uint64_t value = 0;
    if (!absl::SimpleAtoi(columns[0], &value)) {
      return std::nullopt;
    }
    return static_cast<double>(value);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> BootTimeSeconds(absl::string_view proc_stat) {
  constexpr absl::string_view kPrefix = "btime ";
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    std::uint64_t seconds = 0;
    if (absl::StartsWith(line, kPrefix) &&
        absl::SimpleAtoi(line.substr(kPrefix.size()), &seconds)) {
      return seconds;
    }
  }
  return std::nullopt;
}

std::optional<double> CountOpenFds(const std::string& fd_dir) {
  std::error_code error;
  std::filesystem::directory_iterator it(fd_dir, error);
  double count = 0;
  for (; !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++count;
  }
  if (error) {
    return std::nullopt;
  }
  return count;
}

}  // namespace

ProcessCollector::ProcessCollector(std::string proc_dir, std::string stat_file)
    : proc_dir_(std::move(proc_dir)), stat_file_(std::move(stat_file)) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  const auto ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));

  const absl::StatusOr<std::string> stat_text = ReadFile(proc_dir_ + "/stat");
  const std::optional<ProcStat> stat = stat_text.ok() ? ParseProcStat(*stat_text) : std::nullopt;
  if (stat.has_value()) {
    families.push_back(
        Single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               MetricType::Counter,
               static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks_per_second));
    families.push_back(Single("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                              MetricType::Gauge, static_cast<double>(stat->vsize_bytes)));
    families.push_back(
        Single("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
               static_cast<double>(stat->rss_pages) * static_cast<double>(sysconf(_SC_PAGESIZE))));
    const absl::StatusOr<std::string> kernel_stat = ReadFile(stat_file_);
    const std::optional<std::uint64_t> boot_time =
        kernel_stat.ok() ? BootTimeSeconds(*kernel_stat) : std::nullopt;
    if (boot_time.has_value()) {
      families.push_back(Single("process_start_time_seconds",
                                "Start time of the process since unix epoch in seconds.",
                                MetricType::Gauge,
                                static_cast<double>(*boot_time) +
                                    static_cast<double>(stat->starttime_ticks) / ticks_per_second));
    }
  }

  if (const std::optional<double> open_fds = CountOpenFds(proc_dir_ + "/fd")) {
    families.push_back(Single("process_open_fds", "Number of open file descriptors.",
                              MetricType::Gauge, *open_fds));
  }

  if (const absl::StatusOr<std::string> limits = ReadFile(proc_dir_ + "/limits"); limits.ok()) {
    if (const std::optional<double> max_fds = SoftLimit(*limits, "Max open files")) {
      families.push_back(Single("process_max_fds", "Maximum number of open file descriptors.",
                                MetricType::Gauge, *max_fds));
    }
    if (const std::optional<double> max_vsize = SoftLimit(*limits, "Max address space")) {
      families.push_back(Single("process_virtual_memory_max_bytes",
                                "Maximum amount of virtual memory available in bytes.",
                                MetricType::Gauge, *max_vsize));
    }
  }
  return families;
}

GaugeSnapshot::GaugeSnapshot(std::string name, std::string help,
                             std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

void GaugeSnapshot::Replace(std::vector<Series> series) {
  absl::MutexLock lock(&mutex_);
  series_ = std::move(series);
}

std::vector<prometheus::MetricFamily> GaugeSnapshot::Collect() const {
  prometheus::MetricFamily family{name_, help_, prometheus::MetricType::Gauge, {}};
  absl::MutexLock lock(&mutex_);
  family.metric.reserve(series_.size());
  for (const auto& [label_values, value] : series_) {
    prometheus::ClientMetric metric;
    for (std::size_t i = 0; i < label_names_.size() && i < label_values.size(); ++i) {
      metric.label.push_back({label_names_[i], label_values[i]});
    }
    // Registry families print labels sorted by name; keep the exposition uniform.
    std::sort(metric.label.begin(), metric.label.end());
    metric.gauge.value = value;
    family.metric.push_back(std::move(metric));
  }
  return {std::move(family)};
}

}  // namespace discovery::metrics
