// What a failed call means for the operator: the gRPC library's transport errors ("failed to
// connect to all addresses", "Ssl handshake failed", "Deadline Exceeded") turned into one line
// naming the address and the likely cause and what to do.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace discovery::cli {

// The limit a call ran under: --timeout, or what was left of the command's --deadline.
struct CallLimit {
  absl::Duration duration;
  bool overall = false;  // what was left of the command's --deadline, not --timeout
};

// `status` of a call to `address` explained. Answers of the server itself (a refusal, an unknown
// namespace) and OK are returned unchanged.
absl::Status DescribeCallError(const absl::Status& status, std::string_view address,
                               const CallLimit& limit);

}  // namespace discovery::cli
