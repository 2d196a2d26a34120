#include "auth/userinfo_cache.h"

#include <memory>
#include <string>
#include <utility>

#include "common/format.h"

namespace discovery::auth {

absl::StatusOr<Principal> UserinfoCache::Get(std::string_view token, absl::Time now,
                                             absl::Time expires, const Fetch& fetch) {
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&mu_);
    if (const auto it = entries_.find(ToAbsl(token));
        it != entries_.end() && now < it->second.expires) {
      return it->second.principal;
    }
    if (const auto it = flights_.find(ToAbsl(token)); it != flights_.end()) {
      flight = it->second;
    } else {
      flight = std::make_shared<Flight>();
      flights_.emplace(std::string(token), flight);
      leader = true;
    }
  }
  if (!leader) {
    absl::MutexLock lock(&flight->mu);
    flight->mu.Await(absl::Condition(&flight->done));
    return flight->result;
  }
  absl::StatusOr<Principal> result = fetch();
  {
    absl::MutexLock lock(&mu_);
    flights_.erase(ToAbsl(token));
    if (result.ok() && capacity_ > 0 && token.size() <= kMaxTokenBytes && now < expires) {
      if (!entries_.contains(ToAbsl(token)) && entries_.size() >= capacity_) {
        MakeRoom(now);
      }
      entries_.insert_or_assign(std::string(token),
                                Entry{.principal = *result, .expires = expires});
    }
  }
  absl::MutexLock lock(&flight->mu);
  flight->result = result;
  flight->done = true;
  return result;
}

void UserinfoCache::MakeRoom(absl::Time now) {
  absl::erase_if(entries_, [now](const auto& entry) { return !(now < entry.second.expires); });
  // Still full: which answer goes does not matter for correctness, it is fetched again.
  if (entries_.size() >= capacity_) {
    entries_.erase(entries_.begin());
  }
}

size_t UserinfoCache::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace discovery::auth
