#include "cli/retry.h"

namespace discovery::cli {

bool IsTransient(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status);
}

absl::Status RetryTransient(
    const std::function<absl::Status()>& call, std::span<const absl::Duration> delays,
    const std::function<void(const absl::Status& failure, absl::Duration delay)>& before_retry) {
  absl::Status status = call();
  for (const absl::Duration delay : delays) {
    if (!IsTransient(status)) {
      break;
    }
    before_retry(status, delay);
    status = call();
  }
  return status;
}

}  // namespace discovery::cli
