// The storage seam of discovery: a small, etcd-shaped key-value interface with revisions,
// prefix ranges, transactions with compare-on-revision, and ordered watches. Two backends
// implement it (store/embedded: SQLite on one machine; store/etcd: an etcd v3 cluster) and both
// pass one contract suite (tests/testing/store_contract.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery::store {

// One stored key with its value and etcd-style revision bookkeeping. Revisions are global to
// the store: every successful transaction that changes something advances the store revision
// by exactly one, and all its changes carry that revision.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;  // revision of the transaction that created the key
  int64_t mod_revision = 0;     // revision of the last change of the key
  int64_t version = 0;          // number of changes since creation (1 after create)
  // The etcd lease the key is attached to (0: none, and always 0 on other backends). Tells a
  // key on a renewal set's lease (Store::Renew) from one on the lease of its deadline second.
  int64_t lease = 0;

  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// Result of a prefix range read: keys in ascending byte order, and the store revision at which
// the read was taken (a watch from `revision + 1` sees every later change exactly once).
struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;
};

// A condition of a transaction: the key's current mod_revision equals `mod_revision`.
// mod_revision 0 means "the key does not exist".
struct Compare {
  std::string key;
  int64_t mod_revision = 0;
};

// One change of a transaction.
struct Op {
  enum class Type { kPut, kDelete, kDeletePrefix, kDeleteRange };
  Type type = Type::kPut;
  std::string key;        // the key, the prefix for kDeletePrefix, the first key for kDeleteRange
  std::string value;      // kPut only
  std::string range_end;  // kDeleteRange only: the keys in [key, range_end) go
  // kPut only. A finite time makes the key expire: unless it is put again, the store deletes it
  // (an ordinary delete at its own revision, seen by watches) at a time in [expires,
  // expires + kExpiryGranularity + the backend's own lag]. Deliberately a deadline rather than a
  // per-key lease: expiring keys share one etcd lease per second of deadline, so a million keys
  // do not mean a million leases. Putting the key again replaces its expiry.
  absl::Time expires = absl::InfiniteFuture();

  static Op Put(std::string key, std::string value) {
    return {.type = Type::kPut, .key = std::move(key), .value = std::move(value)};
  }
  static Op PutExpiring(std::string key, std::string value, absl::Time expires) {
    return {
        .type = Type::kPut, .key = std::move(key), .value = std::move(value), .expires = expires};
  }
  static Op Delete(std::string key) { return {.type = Type::kDelete, .key = std::move(key)}; }
  static Op DeletePrefix(std::string prefix) {
    return {.type = Type::kDeletePrefix, .key = std::move(prefix)};
  }
  // Deletes the keys in [from, to); `from` not empty, `to` after it.
  static Op DeleteRange(std::string from, std::string to) {
    return {.type = Type::kDeleteRange, .key = std::move(from), .range_end = std::move(to)};
  }
};

// Keys with the same deadline rounded up to this share their expiry (one etcd lease).
inline constexpr absl::Duration kExpiryGranularity = absl::Seconds(1);

// One key of a renewal (Store::Renew): as the caller last read it.
struct RenewKey {
  std::string key;
  int64_t mod_revision = 0;  // the record renewed: a key changed since is not renewed
  int64_t lease = 0;         // KeyValue::lease as read
  // The record with its new deadline. Written where the renewal writes the record (the etcd
  // store when it moves the key to its set's lease; the embedded store in place).
  std::string value;
};

// The most keys one Renewal holds: the etcd store moves a set onto its lease in one transaction,
// and etcd allows 128 operations in one (its --max-txn-ops default), which is also what lets its
// watch tell a set's expiry from a deletion by the number of keys a revision deletes. The etcd
// store refuses larger renewals.
inline constexpr size_t kMaxRenewalKeys = 128;

// A renewal of keys put with an expiry, all with the same TTL: each expires `ttl` after the
// renewal unless renewed again. The keys are a renewal set: renewing the same keys again is
// what the stores make cheap. At most kMaxRenewalKeys keys.
struct Renewal {
  std::vector<RenewKey> keys;
  absl::Duration ttl = absl::ZeroDuration();  // what a lease is granted for (etcd)
  absl::Time expires = absl::InfinitePast();  // the new deadline, what stores that keep one record
};

struct RenewResult {
  // false: some key was changed (or deleted) since the caller read it and nothing was renewed;
  // the caller reads again.
  bool succeeded = true;
  // Keys that are gone: their expiry passed before the renewal (a renewal never revives a key).
  std::vector<std::string> gone;
  // The store revision the renewal wrote, 0 when it wrote none (the usual case).
  int64_t revision = 0;
};

// A key that RenewsInPlace, for Store::Deadlines.
struct LeasedKey {
  std::string key;
  int64_t lease = 0;  // KeyValue::lease as read
};

// All compares must hold for the ops to apply; the ops then apply atomically at one revision.
struct Txn {
  std::vector<Compare> compares;
  std::vector<Op> ops;
};

struct TxnResult {
  bool succeeded = false;  // false: a compare failed and nothing was changed
  int64_t revision = 0;    // store revision after the transaction
  int64_t deleted = 0;     // number of keys removed by delete ops
};

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For kPut the new key-value. For kDelete: key, and mod_revision = the deleting revision;
  // the value is empty.
  KeyValue kv;
  // kDelete only: the store deleted a key that RenewsInPlace because its expiry passed (so the
  // deletion is an expiration, not an unregistration). False for every other delete.
  bool expired = false;

  friend bool operator==(const WatchEvent&, const WatchEvent&) = default;
};

// One delivery of a watch. Events are in revision order and a transaction's events are never
// split across deliveries. If `compact_revision` is non-zero the requested start revision is no
// longer available: no events follow and the watch has ended; the consumer re-reads with Range
// and watches again from the range's revision + 1.
struct WatchResponse {
  std::vector<WatchEvent> events;
  int64_t revision = 0;  // store revision this response is current to
  int64_t compact_revision = 0;
};

using WatchCallback = std::function<void(const WatchResponse&)>;

// Owns a running watch. Destroying it cancels the watch and waits until no callback runs, so a
// callback never outlives its owner.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // Returns the key, NotFound if it does not exist, Unavailable/DeadlineExceeded when the store
  // cannot be reached.
  virtual absl::StatusOr<KeyValue> Get(std::string_view key) = 0;

  // Returns every key starting with `prefix` (all keys for ""), in ascending key order.
  virtual absl::StatusOr<RangeResult> Range(std::string_view prefix) = 0;

  // Range in parts: hands `consume` the keys Range(prefix) would return, in the same order and
  // from one snapshot, at most `batch_size` at a time, and returns the snapshot's revision. A
  // reader of a million keys can work on the first ones while the store reads the rest, and
  // neither side holds the whole answer twice. `consume` runs on the calling thread, maybe
  // while the store holds a lock of its own, so it must not call the store. This default reads
  // the whole Range and hands it on in parts.
  using ConsumeBatch = std::function<void(std::vector<KeyValue> batch)>;
  virtual absl::StatusOr<int64_t> RangeInBatches(std::string_view prefix, size_t batch_size,
                                                 const ConsumeBatch& consume);

  // Applies `txn` atomically. A failed compare is not an error (succeeded = false).
  virtual absl::StatusOr<TxnResult> Commit(const Txn& txn) = 0;

  // Commit without waiting: `done` gets what Commit would return. Backends with a group commit
  // call it on their committer thread once the batch holding `txn` is applied, so it must not
  // block for long; this default commits on the caller's thread and calls it there.
  using CommitCallback = absl::AnyInvocable<void(absl::StatusOr<TxnResult>) &&>;
  // NOLINTNEXTLINE(performance-unnecessary-value-param): by value, for stores that queue it
  virtual void CommitAsync(Txn txn, CommitCallback done) { std::move(done)(Commit(txn)); }

  // Watches keys starting with `prefix` for changes at revisions >= start_revision
  // (start_revision 0: from now on). Callbacks run on a thread owned by the handle, one at a
  // time, never under the store's locks; they must not destroy the handle. Backends that lose
  // their connection resume from the last delivered revision on their own.
  virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                             int64_t start_revision,
                                                             WatchCallback callback) = 0;

  // The current store revision; Unavailable when the store cannot be reached.
  virtual absl::StatusOr<int64_t> CurrentRevision() = 0;

  // Renews keys put with an expiry (Op::PutExpiring). Renewals must not grow the store: renewing
  // the same set of keys again creates no revision (etcd: a LeaseKeepAlive of the set's lease;
  // embedded: the expiry is updated in place, with no watch event). A key renewed so may then
  // live past the `expires` its stored record says (RenewsInPlace). The first renewal of a set
  // may write one revision (etcd: it moves the keys onto the set's lease). This default puts
  // each key again with its new deadline (one revision per renewal), for stores without
  // renewals of their own.
  virtual absl::StatusOr<RenewResult> Renew(const Renewal& renewal);

  // Whether `kv`, a key put with an expiry, may have been renewed by Renew without a new
  // revision: then its stored record's deadline is stale and only the store's delete (a watch
  // event with `expired` set) ends it; a reader must not drop it at that deadline itself. A
  // function of `kv` alone: it may be called from any thread, also while RangeInBatches runs.
  virtual bool RenewsInPlace(const KeyValue& kv) const {
    (void)kv;
    return false;
  }

  // The deadlines in force of keys that RenewsInPlace, in the order given (possibly past, until
  // the store deletes the key); nullopt for a key that is gone. One round trip per distinct
  // etcd lease.
  virtual absl::StatusOr<std::vector<std::optional<absl::Time>>> Deadlines(
      const std::vector<LeasedKey>& keys);
};

// The smallest key greater than every key starting with `prefix` ("" when there is none), as
// etcd's range_end for a prefix.
std::string PrefixEnd(std::string_view prefix);

// InvalidArgument for a RangeInBatches batch size of 0, which could never hand anything on.
absl::Status CheckBatchSize(size_t batch_size);

// InvalidArgument for a kDeleteRange op of `txn` whose range holds no key: an empty first key
// or an end not after it (to etcd an empty end would mean the first key alone).
absl::Status CheckDeleteRanges(const Txn& txn);

// Range through RangeInBatches, as one batch of everything: for backends whose Range is their
// batched read without the batches.
absl::StatusOr<RangeResult> RangeInOneBatch(Store& store, std::string_view prefix);

// Convenience wrappers over Commit.
absl::StatusOr<TxnResult> Put(Store& store, std::string key, std::string value);
absl::StatusOr<TxnResult> Delete(Store& store, std::string key);

}  // namespace discovery::store
