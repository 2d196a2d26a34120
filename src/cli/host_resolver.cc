#include "cli/host_resolver.h"

#include <netdb.h>

#include <algorithm>
#include <array>
#include <vector>

#include "fmt/format.h"

#include "common/status_macros.h"

namespace discovery::cli {

absl::StatusOr<std::set<std::string>> UnresolvedHosts(const std::set<std::string>& hosts,
                                                      absl::Duration timeout) {
  std::set<std::string> unresolved;
  if (hosts.empty()) {
    return unresolved;
  }
  const std::vector<std::string> names(hosts.begin(), hosts.end());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::vector<gaicb> requests(names.size());
  std::vector<gaicb*> pending;
  for (std::size_t i = 0; i < names.size(); ++i) {
    requests[i] = gaicb{.ar_name = names[i].c_str(), .ar_request = &hints};
    pending.push_back(&requests[i]);
  }
  if (const int error =
          getaddrinfo_a(GAI_NOWAIT, pending.data(), static_cast<int>(pending.size()), nullptr);
      error != 0) {
    return absl::InternalError(fmt::format("cannot start DNS lookups: {}", gai_strerror(error)));
  }

  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  for (gaicb* request : pending) {
    while (gai_error(request) == EAI_INPROGRESS) {
      const timespec left =
          absl::ToTimespec(std::max(deadline - absl::Now(), absl::ZeroDuration()));
      const std::array<const gaicb*, 1> wait_for = {request};
      if (gai_suspend(wait_for.data(), 1, timed_out ? nullptr : &left) == EAI_AGAIN) {
        // Out of time: cancel what has not finished; requests glibc cannot cancel any more are
        // waited for (without a deadline) because they still point into `requests`.
        timed_out = true;
        for (gaicb* other : pending) {
          gai_cancel(other);
        }
      }
    }
  }

  absl::Status failure;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const int error = gai_error(&requests[i]);
    if (error == 0) {
      freeaddrinfo(requests[i].ar_result);
    } else if (error == EAI_NONAME || error == EAI_NODATA) {
      unresolved.insert(names[i]);
    } else if (failure.ok()) {
      failure =
          error == EAI_CANCELED
              ? absl::DeadlineExceededError(fmt::format("DNS lookup of {} took longer than {}",
                                                        names[i], absl::FormatDuration(timeout)))
              : absl::UnavailableError(
                    fmt::format("DNS lookup of {} failed: {}", names[i], gai_strerror(error)));
    }
  }
  DISCOVERY_RETURN_IF_ERROR(failure);
  return unresolved;
}

}  // namespace discovery::cli
