// Machine tokens that passed verification, so that a client presenting the same bearer token
// on every request (Prometheus refreshing http_sd) does not pay for an HMAC and two JSON parses
// each time. Only successes are kept: a token that fails is verified again on every request.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "auth/principal.h"

namespace discovery::auth {

class VerifiedTokenCache {
 public:
  // Tokens longer than this are never kept, which bounds the memory to
  // capacity * kMaxTokenBytes plus the principals.
  static constexpr size_t kMaxTokenBytes = 4096;

  // Holds at most `capacity` tokens; 0 keeps none.
  explicit VerifiedTokenCache(size_t capacity) : capacity_(capacity) {}

  // The principal of `token` when it was verified at or before `now` and is still unexpired at
  // `now`; nullopt otherwise (the caller verifies it in full). A clock that went back to before
  // the verification misses too, since `nbf` and `iat` were only checked against that moment.
  std::optional<Principal> Find(std::string_view token, absl::Time now) const;

  // Remembers that `token` verified at `verified_at` as `principal` and stays valid until
  // `expires` (exclusive; nullopt: never). When full, expired tokens are dropped first, then
  // arbitrary ones.
  void Insert(std::string_view token, const Principal& principal, absl::Time verified_at,
              std::optional<absl::Time> expires);

  size_t size() const;

 private:
  struct Entry {
    Principal principal;
    absl::Time verified_at;
    absl::Time expires;  // InfiniteFuture when the token has no `exp`
  };

  void MakeRoom(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace discovery::auth
