// The progress bar of the CLI's bulk commands, drawn on one terminal line that it redraws in
// place: done of total, percentage, rate and the time left at that rate.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include "absl/time/time.h"

namespace discovery::cli {

// "[#########...........]  4500/10000  45%  1520/s  ETA 4s  (3 failed)": the line for `done` of
// `total` calls, `failed` of them failed, after `elapsed`. Rate and ETA are left out until there
// is something to measure. At most `width` characters wide.
std::string ProgressLine(size_t done, size_t total, size_t failed, absl::Duration elapsed,
                         size_t width = 80);

// Draws ProgressLine on `out` (a terminal) at most ten times a second. Not thread-safe.
class ProgressBar {
 public:
  ProgressBar(std::ostream& out, size_t total, absl::Time start);

  // Redraws when the last drawing is older than a tenth of a second, or `force`.
  void Update(size_t done, size_t failed, absl::Time now, bool force = false);
  // Erases the line, so that what follows starts at the left margin.
  void Clear();

 private:
  std::ostream& out_;
  const size_t total_;
  const absl::Time start_;
  absl::Time last_drawn_ = absl::InfinitePast();
  bool drawn_ = false;
};

}  // namespace discovery::cli
