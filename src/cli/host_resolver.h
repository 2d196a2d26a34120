// Finds which host names do not resolve, for `service list -u` and `service unregister -u`:
// services whose host has been removed from DNS are candidates for clean-up.
#pragma once

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery::cli {

// Looks up every host of `hosts` concurrently (getaddrinfo_a) and returns those DNS reports as
// nonexistent. Any other outcome for any host (resolver unreachable, no answer within
// `timeout`) is an error naming that host, so a DNS outage never marks live services
// unresolved.
absl::StatusOr<std::set<std::string>> UnresolvedHosts(const std::set<std::string>& hosts,
                                                      absl::Duration timeout);

}  // namespace discovery::cli
