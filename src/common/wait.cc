#include "common/wait.h"

#include <condition_variable>
#include <mutex>

namespace discovery {

bool SleepUnlessStopped(const std::stop_token& stop, absl::Duration timeout) {
  std::mutex mu;
  std::condition_variable_any woken;
  std::unique_lock lock(mu);
  // Nothing else notifies `woken`: only the stop request (through the stop_token overload) or
  // the timeout ends the wait.
  woken.wait_for(lock, stop, absl::ToChronoNanoseconds(timeout), [] { return false; });
  return !stop.stop_requested();
}

}  // namespace discovery
