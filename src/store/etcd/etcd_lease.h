// The leases of renewal sets (Store::Renew on etcd). Internal to src/store/etcd.
//
// A KeepAlive renews a set of keys with one TTL. The set gets its own lease, whose id is derived
// from the set, so every replica (and every restart) renews the same set on the same lease
// without coordinating. Once the set's keys are on it, a renewal is one LeaseKeepAlive: no
// revision, no watch event. Keys put by a registration stay on the lease of their deadline
// second (etcd_store.cc); the two kinds of id are told apart by their top byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "store/etcd/etcd_client.h"

namespace discovery::store::etcd_internal {

// The lease of the set of `keys` (any order, duplicates allowed) renewed with `ttl_seconds`:
// positive, and never the id of a deadline-second lease.
int64_t SetLeaseId(std::vector<std::string> keys, int64_t ttl_seconds);

// Whether `lease` is the lease of a renewal set.
bool IsSetLease(int64_t lease);

// A key as it was at a revision.
struct KeyAt {
  std::string_view key;
  int64_t revision = 0;
};

// The lease each of `keys` was on at its revision (0: none, or the key did not exist then), in
// their order. Read-only transactions of up to kMaxRenewalKeys reads, served by the member
// asked (the past does not change).
absl::StatusOr<std::vector<int64_t>> LeasesAt(EtcdClient& client, const std::vector<KeyAt>& keys);

// The whole seconds etcd grants for `ttl` (at least 1).
int64_t LeaseSeconds(absl::Duration ttl);

// Resets `lease` to its granted TTL (one LeaseKeepAlive round trip). False when the lease is
// gone, and with it every key attached to it.
absl::StatusOr<bool> KeepLeaseAlive(EtcdClient& client, int64_t lease);

// The time `lease` has left, rounded up to the second; nullopt when it is gone (expired or never
// granted).
absl::StatusOr<std::optional<absl::Duration>> LeaseTimeLeft(EtcdClient& client, int64_t lease);

}  // namespace discovery::store::etcd_internal
