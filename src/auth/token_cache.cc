#include "auth/token_cache.h"

#include <utility>

#include "common/format.h"

namespace discovery::auth {

std::optional<Principal> VerifiedTokenCache::Find(std::string_view token, absl::Time now) const {
  if (capacity_ == 0) {
    return std::nullopt;
  }
  absl::ReaderMutexLock lock(&mu_);
  const auto it = entries_.find(ToAbsl(token));
  if (it == entries_.end() || now < it->second.verified_at || !(now < it->second.expires)) {
    return std::nullopt;
  }
  return it->second.principal;
}

void VerifiedTokenCache::Insert(std::string_view token, const Principal& principal,
                                absl::Time verified_at, std::optional<absl::Time> expires) {
  if (capacity_ == 0 || token.size() > kMaxTokenBytes) {
    return;
  }
  absl::MutexLock lock(&mu_);
  if (!entries_.contains(ToAbsl(token)) && entries_.size() >= capacity_) {
    MakeRoom(verified_at);
  }
  entries_.insert_or_assign(std::string(token),
                            Entry{.principal = principal,
                                  .verified_at = verified_at,
                                  .expires = expires.value_or(absl::InfiniteFuture())});
}

void VerifiedTokenCache::MakeRoom(absl::Time now) {
  absl::erase_if(entries_, [now](const auto& entry) { return !(now < entry.second.expires); });
  // Still full: many live tokens in use at once, beyond what is worth remembering. Which one
  // goes does not matter for correctness; it is verified in full again when it comes back.
  if (entries_.size() >= capacity_) {
    entries_.erase(entries_.begin());
  }
}

size_t VerifiedTokenCache::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace discovery::auth
