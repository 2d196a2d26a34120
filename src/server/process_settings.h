// Process-wide settings both daemons (server and exporter) apply when they start.
#pragma once

namespace discovery::server {

// In release builds, turns off absl::Mutex's deadlock detection. It records every lock
// acquisition in one graph guarded by a global lock, which every thread of a busy daemon then
// contends for (about 3% of a registration's CPU in a profile of the fleet benchmark). Debug and
// sanitizer builds, which the tests run, keep it and so still catch lock-order inversions.
// Idempotent.
void ApplyProcessSettings();

}  // namespace discovery::server
