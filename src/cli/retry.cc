#include "cli/retry.h"

#include "absl/random/distributions.h"
#include "absl/time/clock.h"

namespace discovery::cli {

bool IsTransient(const absl::Status& status) {
  // ResourceExhausted is what a gRPC server answers when it has no thread left for the call
  // (the synchronous servers of earlier releases did so beyond 64 calls at once).
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsResourceExhausted(status);
}

absl::Duration Jittered(absl::Duration delay, absl::BitGenRef random) {
  // Whole milliseconds, which the retry log prints readably; a multiple of 2 ms keeps the bounds.
  return absl::Floor(delay * absl::Uniform(absl::IntervalClosedClosed, random, 0.5, 1.5),
                     absl::Milliseconds(1));
}

absl::Status RetryTransient(
    const std::function<absl::Status()>& call, std::span<const absl::Duration> delays,
    absl::BitGenRef random,
    const std::function<void(const absl::Status& failure, absl::Duration delay)>& before_retry,
    absl::Time deadline) {
  absl::Status status = call();
  for (const absl::Duration delay : delays) {
    if (!IsTransient(status)) {
      break;
    }
    const absl::Duration jittered = Jittered(delay, random);
    if (absl::Now() + jittered >= deadline) {
      break;
    }
    before_retry(status, jittered);
    status = call();
  }
  return status;
}

}  // namespace discovery::cli
