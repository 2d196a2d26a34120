// Retrying calls that failed transiently (Unavailable, DeadlineExceeded): the server was
// unreachable or slow, so the same request may succeed later. Every other failure is final, so a
// refused or invalid request is reported at once.
#pragma once

#include <functional>
#include <span>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace discovery::cli {

// Whether retrying a failed call can help.
bool IsTransient(const absl::Status& status);

// Calls `call`; while it fails transiently and `delays` has entries left, calls `before_retry`
// with the failure and the next delay (which is expected to wait that long) and calls again.
// Returns the last status.
absl::Status RetryTransient(
    const std::function<absl::Status()>& call, std::span<const absl::Duration> delays,
    const std::function<void(const absl::Status& failure, absl::Duration delay)>& before_retry);

}  // namespace discovery::cli
