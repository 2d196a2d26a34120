// Metric families that prometheus-cpp's Registry cannot express: values computed at scrape time
// and series sets replaced as a whole. Internal to the metrics module; Metrics collects them
// next to its registry.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace discovery::metrics {

// Reads the process_* metrics of Go's process collector from /proc at every Collect:
// process_cpu_seconds_total, process_open_fds, process_max_fds, process_virtual_memory_bytes,
// process_virtual_memory_max_bytes, process_resident_memory_bytes and
// process_start_time_seconds. A value that cannot be read is left out of that scrape rather
// than failing it. Thread-safe (it keeps no state).
class ProcessCollector final : public prometheus::Collectable {
 public:
  // `proc_dir` is the process's /proc directory and `stat_file` the kernel's /proc/stat;
  // tests may point them at fixtures.
  explicit ProcessCollector(std::string proc_dir = "/proc/self",
                            std::string stat_file = "/proc/stat");

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string proc_dir_;
  const std::string stat_file_;
};

// A gauge family whose whole set of series is replaced at once, so a scrape never sees half of
// an update (the registry's families add and remove series one at a time). Thread-safe.
class GaugeSnapshot final : public prometheus::Collectable {
 public:
  // One series: its label values, in the order of the label names, and its value.
  using Series = std::pair<std::vector<std::string>, double>;

  GaugeSnapshot(std::string name, std::string help, std::vector<std::string> label_names);

  // Replaces all series. Each series must have one value per label name.
  void Replace(std::vector<Series> series);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  mutable absl::Mutex mutex_;
  std::vector<Series> series_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace discovery::metrics
