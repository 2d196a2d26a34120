// Retrying calls that failed transiently (Unavailable, DeadlineExceeded, ResourceExhausted): the
// server was unreachable, slow or busy, so the same request may succeed later. Every other
// failure is final, so a refused or invalid request is reported at once.
//
// The waits between attempts are jittered: when a fleet's hosts register at once and a busy
// server turns many away, their retries spread out instead of arriving together again.
#pragma once

#include <functional>
#include <span>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace discovery::cli {

// Whether retrying a failed call can help.
bool IsTransient(const absl::Status& status);

// `delay` scaled by a factor drawn uniformly from [0.5, 1.5] with `random`, in whole
// milliseconds.
absl::Duration Jittered(absl::Duration delay, absl::BitGenRef random);

// Calls `call`; while it fails transiently and `delays` has entries left, calls `before_retry`
// with the failure and the next delay, jittered with `random` (`before_retry` is expected to
// wait that long), and calls again. No retry starts at or after `deadline` (the command's
// overall deadline): the failure is returned instead of waiting. Returns the last status.
absl::Status RetryTransient(
    const std::function<absl::Status()>& call, std::span<const absl::Duration> delays,
    absl::BitGenRef random,
    const std::function<void(const absl::Status& failure, absl::Duration delay)>& before_retry,
    absl::Time deadline = absl::InfiniteFuture());

}  // namespace discovery::cli
