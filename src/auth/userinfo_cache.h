// The provider's userinfo answers for access tokens that lack the username or roles claim: a
// refreshed glewlwyd access token carries neither, so without this a user would
// lose their roles at the CLI's first refresh. Answers are kept until the token expires, and
// concurrent requests with one token share one call to the provider (a CLI batch or a
// dashboard must not fan out into as many userinfo requests).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "auth/principal.h"

namespace discovery::auth {

class UserinfoCache {
 public:
  // Asks the provider; runs without any lock held.
  using Fetch = std::function<absl::StatusOr<Principal>()>;

  // Tokens longer than this are fetched for every request but never kept, which bounds the
  // memory to capacity * kMaxTokenBytes plus the principals.
  static constexpr size_t kMaxTokenBytes = 8192;

  // Keeps at most `capacity` answers; 0 keeps none (concurrent requests still share a call).
  explicit UserinfoCache(size_t capacity) : capacity_(capacity) {}

  // The answer for `token`: the kept one while `now` is before the expiry it was kept with,
  // else the result of `fetch`, which is kept until `expires` when it succeeded. Requests for
  // the same token while a fetch runs wait for it and share its result, failures included;
  // failures are never kept, so the next request after a failed one fetches again.
  // Thread-safe.
  absl::StatusOr<Principal> Get(std::string_view token, absl::Time now, absl::Time expires,
                                const Fetch& fetch);

  size_t size() const;

 private:
  struct Entry {
    Principal principal;
    absl::Time expires;
  };
  // One fetch in progress and the requests waiting for it.
  struct Flight {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<Principal> result ABSL_GUARDED_BY(mu);
  };

  void MakeRoom(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace discovery::auth
