// Many calls of one kind with a bounded number in flight, for the CLI's bulk commands
// (`service import`, `service unregister` of many services): each call is started without
// waiting for the ones before it, as long as fewer than a maximum are unanswered, and a call that
// failed transiently is started again after a jittered wait.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cli/progress.h"

namespace discovery::cli {

struct BulkOptions {
  size_t max_in_flight = 64;  // at least 1
  // The waits before the retries of a call that failed transiently (see IsTransient).
  std::span<const absl::Duration> retry_delays;
  // Redrawn as answers come; nullptr draws nothing.
  ProgressBar* progress = nullptr;
};

// Starts call i by `start(i, done)`; `done` must be called exactly once with the call's outcome,
// on any thread. `finished(i, status)` gets each call's final outcome, and `retrying(i, failure,
// delay)` each retry, both on the calling thread. Returns once every call has its final outcome:
// the number of those that failed.
size_t RunBulk(
    size_t count, const BulkOptions& options,
    const std::function<void(size_t index, std::function<void(absl::Status)> done)>& start,
    const std::function<void(size_t index, const absl::Status& status)>& finished,
    const std::function<void(size_t index, const absl::Status& failure, absl::Duration delay)>&
        retrying);

}  // namespace discovery::cli
