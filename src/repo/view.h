// An in-memory view of every namespace, server and service under one prefix, kept current by a
// store watch. Readers (lists, http_sd, placement) take an immutable snapshot and never touch
// the store; writers go to the store and may wait until the view has caught up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "common/persistent_map.h"
#include "model/model.h"
#include "placement/placement.h"
#include "repo/repo.h"
#include "store/store.h"

namespace discovery::repo {

// A stored service, shared by every snapshot (and placement) that holds it unchanged.
using ServicePtr = std::shared_ptr<const Service>;

// Services of one namespace by id. Persistent: applying a write makes a new version in
// O(log n) and shares everything else with the version before, so a write costs the same in a
// namespace of a million services as in an empty one. Each key views the id of the service it
// maps to (the node holding the key also holds the service).
using ServiceMap = persistent::Map<std::string_view, ServicePtr>;

// A service with a TTL and the mod_revision of its record.
struct TtlService {
  ServicePtr service;
  int64_t mod_revision = 0;
  int64_t lease = 0;  // store::KeyValue::lease of the record
  // store::Store::RenewsInPlace: renewals may have moved the deadline past the record's
  // `expires` without a revision, so the view leaves its expiry to the store's delete.
  bool renews_in_place = false;
};

// The services with a TTL of one namespace by id, keyed like ServiceMap.
using TtlServiceMap = persistent::Map<std::string_view, TtlService>;

// A stored record the view leaves out, with the reason.
struct InvalidRecord {
  // What the key names: "namespace", "server", "service", "settings" or "revoked-token".
  std::string kind;
  std::string reason;
  int64_t mod_revision = 0;  // of the record as stored
  // Service records only: what an operator is shown of it (model InvalidService::service).
  ServicePtr service;

  friend bool operator==(const InvalidRecord&, const InvalidRecord&) = default;
};

// One consistent state of the store at `revision`. Immutable once published; consecutive
// snapshots share every service they have in common.
struct Snapshot {
  int64_t revision = 0;
  std::map<std::string, Namespace, std::less<>> namespaces;
  // The mod_revision of each namespace's key: a write into a namespace is guarded on it, so a
  // namespace deleted meanwhile (with its services) does not get a service back.
  std::map<std::string, int64_t, std::less<>> namespace_revisions;
  std::map<std::string, Server, std::less<>> servers;
  // Namespaces without services have no entry.
  std::map<std::string, ServiceMap, std::less<>> services;
  // The stored placement settings; nullopt until some discoveryd has written them.
  std::optional<placement::Settings> placement;
  // Revoked machine tokens by id.
  std::map<std::string, TokenRevocation, std::less<>> revoked_tokens;
  // Keys under the prefix whose record cannot be used, with the reason; they are left out of
  // everything above, so that no answer (http_sd, ListTargetGroup, file_sd) depends on them. A
  // record is invalid when it does not decode; a service also when it does not match its key or
  // fails model CheckStoredService (endpoint does not parse, over a record limit).
  std::map<std::string, InvalidRecord, std::less<>> invalid;
  // The services of `services` that have a TTL, with the mod_revision of their record: a renewal
  // is written only if the record is still the one the view saw, so that it cannot bring back a
  // service unregistered (or replace one registered again) in between.
  std::map<std::string, TtlServiceMap, std::less<>> ttl_services;
  // Services (of `services`) registered with a TTL.
  int64_t services_with_ttl = 0;
  // Services with a TTL this view removed at their expiry, or saw deleted at or after it, since
  // it started (counted by every replica). A service the view removed is counted once: the
  // store's later delete of its record changes nothing. One that renews in place is counted
  // when the store deletes it at its expiry (a watch event marked `expired`).
  int64_t expired_services = 0;

  // The services of `ns`, or nullptr when it has none.
  const ServiceMap* ServicesIn(std::string_view ns) const;
  // The service `id` of `ns`, or nullptr.
  const Service* FindService(std::string_view ns, std::string_view id) const;
  size_t ServiceCount() const;
  // The mod_revision of the record of service `id` of `ns` when it has a TTL, else nullopt.
  std::optional<int64_t> TtlServiceRevision(std::string_view ns, std::string_view id) const;
  // The TTL bookkeeping of service `id` of `ns` when it has a TTL, else nullptr.
  const TtlService* FindTtlService(std::string_view ns, std::string_view id) const;
};

// The number of invalid records per (kind, namespace); the namespace is "" for kinds other than
// "service". For discovery_invalid_records.
std::map<std::pair<std::string, std::string>, int64_t> InvalidRecordCounts(
    const Snapshot& snapshot);

struct ViewOptions {
  // Pause before retrying after the store failed (doubles up to max_retry_backoff).
  absl::Duration retry_backoff = absl::Milliseconds(100);
  absl::Duration max_retry_backoff = absl::Seconds(5);
  // After this long without a watch event the view asks the store for its revision. A watch
  // resumes on its own and says nothing while the store is unreachable, so without the probe a
  // view would report itself healthy through a whole outage.
  absl::Duration store_probe_interval = absl::Seconds(1);
  // What `expires` of a service is compared with. The view removes a service with a TTL from
  // its snapshots once the clock passes its `expires`, as if the store had deleted it: the
  // store's own expiry comes later (etcd leases end on whole seconds and are checked every
  // 500 ms), and readers must not serve a service past its deadline meanwhile. Not a service
  // whose record renews in place (store::Store::RenewsInPlace): its `expires` may be stale, and
  // only the store's delete ends it.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Removals due to expiry alone are published at most this often (on the real clock), so
  // that a mass expiry makes a few snapshots rather than one per service. A watch event
  // publishes whatever expired with it at once.
  absl::Duration expiry_interval = absl::Milliseconds(100);
};

class View {
 public:
  using Listener = std::function<void(const std::shared_ptr<const Snapshot>&)>;

  // Starts following `keys.All()` in `store` on a thread owned by the view. Returns at once;
  // Current() is nullptr until the first load succeeded. `store` must outlive the view.
  // `listener`, if set, runs on the view's thread after each published snapshot.
  View(store::Store& store, Keys keys, ViewOptions options = {}, Listener listener = nullptr);
  // Stops following and joins the thread.
  ~View();
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  View(View&&) = delete;
  View& operator=(View&&) = delete;

  // The latest snapshot, or nullptr before the first load. Thread-safe.
  std::shared_ptr<const Snapshot> Current() const;

  // Waits until a snapshot at `revision` or later is published. False on timeout.
  bool WaitForRevision(int64_t revision, absl::Duration timeout) const;

  // OK while the view follows the store; the last store error while it is retrying or while
  // the store does not answer its probe (the last published snapshot stays available).
  absl::Status Health() const;

  // True from the start until the first snapshot is published, except between a failed read of
  // the store and the next attempt: the store is being read, which takes seconds for a million
  // services.
  bool Loading() const;

  // How many reads of the store have failed since the view started. A caller that saw the count
  // grow while it waited knows the store failed, whatever Loading() says the instant it asks.
  int64_t FailedReads() const;

 private:
  struct Pending;

  void Run(const std::stop_token& stop);
  // Loads the whole prefix and follows it until the watch ends or `stop` is requested.
  absl::Status FollowOnce(const std::stop_token& stop);
  void Publish(const Snapshot& working);
  // Asks the store for its revision and records in the health whether it answered.
  void ProbeStore();
  void SetHealth(absl::Status status);

  store::Store& store_;
  const Keys keys_;
  const ViewOptions options_;
  const Listener listener_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> current_ ABSL_GUARDED_BY(mu_);
  // current_'s revision: WaitForRevision's condition runs inside absl::Mutex, where TSan cannot
  // see the lock, so it must not read through current_ into a snapshot another thread frees.
  int64_t current_revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  bool read_failed_ ABSL_GUARDED_BY(mu_) = false;  // the last read failed; none began since
  int64_t failed_reads_ ABSL_GUARDED_BY(mu_) = 0;

  std::unique_ptr<Pending> pending_;
  std::jthread thread_;  // last: starts after every member above is ready
};

}  // namespace discovery::repo
