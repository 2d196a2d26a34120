// The one interruptible wait: threads that pause between attempts wake as soon as their stop is
// requested, so shutdown never waits out a backoff.
#pragma once

#include <stop_token>

#include "absl/time/time.h"

namespace discovery {

// Blocks for `timeout` or until a stop is requested on `stop`, whichever comes first. Returns
// true when the whole timeout passed, false when a stop was requested (also before the call).
// Thread-safe.
bool SleepUnlessStopped(const std::stop_token& stop, absl::Duration timeout);

}  // namespace discovery
