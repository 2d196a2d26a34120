#include "server/process_settings.h"

#include "absl/synchronization/mutex.h"

namespace discovery::server {

void ApplyProcessSettings() {
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace discovery::server
