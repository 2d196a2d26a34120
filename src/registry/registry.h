// The registry: namespaces, Prometheus servers and services (docs/decisions.md D5, D27).
// Reads come from a watch-fed view of the store and the placement derived from it (placed.h);
// writes go to the store as transactions and return once the view shows them, so a caller
// that lists right after a write sees it.
//
// Fixes of the Go original's registry (docs/decisions.md): deleting a namespace deletes exactly
// its services (D2); an unknown namespace is NotFound (D3); a server join or leave rewrites
// nothing and cannot get stuck half-way (D5); unregistering by endpoint canonicalises it (D9);
// every name and id is validated before it becomes a key (D10); a malformed selector is
// InvalidArgument (D11); http_sd takes an exact server name and honours the namespace's export
// config (D15).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "model/model.h"
#include "placement/placement.h"
#include "readmodel/placed.h"
#include "repo/repo.h"
#include "repo/view.h"
#include "store/store.h"
#include "targetgroup/targetgroup.h"

namespace discovery::registry {

using ServiceCounts = std::map<std::pair<std::string, std::string>, int64_t>;
// Invalid stored records per (kind, namespace), see repo::InvalidRecordCounts.
using InvalidCounts = std::map<std::pair<std::string, std::string>, int64_t>;

// A service of one snapshot by reference: for a caller that looks at many services and copies
// only some (a page of a sorted list).
struct ServiceRef {
  const Service* service = nullptr;
  // Its effective servers; none for a record that cannot be served. Never null.
  const std::vector<std::string>* servers = nullptr;
  // Why the record cannot be served; nullptr for a served service.
  const std::string* invalid_reason = nullptr;
  // The expiry in force when it is not the record's (a service renewed in place).
  std::optional<absl::Time> expires;

  // The service as ListServices (or ListInvalidServices) answers it.
  Service Copy() const;
};

// ServiceRefs into the snapshot they keep alive.
struct ServiceRefs {
  std::shared_ptr<const readmodel::Placed> placed;
  std::vector<ServiceRef> refs;
};

struct RegistryOptions {
  // The placement this process was configured with. When set, Initialize() stores it if the
  // store holds something else; when unset, the stored settings apply and the defaults are
  // stored only if there are none, so a replica started without placement flags never
  // overrides one that was started with them.
  std::optional<placement::Settings> placement;
  // How long a write waits for the view to show it before returning anyway.
  absl::Duration view_wait = absl::Seconds(10);
  // Sets `modified` and `expires`, and is what the view compares `expires` with (it overrides
  // view.clock).
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Called on the view's thread with the service counts of every new placement.
  std::function<void(const ServiceCounts&)> on_counts;
  // Called on the view's thread with the invalid-record counts of every new snapshot.
  std::function<void(const InvalidCounts&)> on_invalid;
  // Called on the view's thread with the number of services that have a TTL and the number of
  // expirations this replica has seen since it started (a counter).
  std::function<void(int64_t with_ttl, int64_t expired)> on_ttl;
  // Called with the number of services a registration or keepalive renewed.
  std::function<void(int64_t renewed)> on_renewals;
  // Bounds of the TTL a client asks for (--min-ttl, --max-ttl): a TTL outside them is raised or
  // lowered to the bound, and the answer shows the TTL in effect. The minimum keeps renewals of
  // a misconfigured client from flooding the store; the maximum bounds how long a dead host
  // stays a target.
  absl::Duration min_ttl = absl::Seconds(5);
  absl::Duration max_ttl = absl::Hours(24);
  // A namespace being unregistered goes in store transactions of about this many services (as
  // the view holds them): etcd took over 7 s to delete a million keys in one, past its own
  // request timeout and ours, while 10,000 take it well under a second.
  size_t services_per_deletion = 10'000;
  repo::ViewOptions view;
};

// What KeepAlive renewed.
struct KeepAliveResult {
  // The services found, with their new expiry (those without a TTL unchanged).
  std::vector<Service> renewed;
  // The ids or endpoints asked for that name no service of the namespace (expired,
  // unregistered, or never registered): a client registers them again.
  std::vector<std::string> not_found;
};

// A RegisterService request, as it comes from a client.
struct ServiceRegistration {
  std::string name;
  std::string endpoint;        // any form Endpoint::Parse accepts; stored canonical
  std::string namespace_name;  // "" means "default"
  std::string selector;
  Labels labels;
  std::string description;
  // Zero: no TTL, the service stays until it is unregistered (the Go original's behaviour).
  absl::Duration ttl = absl::ZeroDuration();
};

class Registry {
 public:
  // Starts following the store under `keys`. Returns at once; reads answer Unavailable until
  // the first load. `store` must outlive the registry.
  Registry(store::Store& store, repo::Keys keys, RegistryOptions options);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  Registry(Registry&&) = delete;
  Registry& operator=(Registry&&) = delete;

  // Waits up to `timeout` for the first load, stores the placement settings (see
  // RegistryOptions::placement) and creates namespace `default` (standard) when it is missing.
  // DeadlineExceeded when the store answers but its load is not done yet (wait again),
  // Unavailable with the reason when the store cannot be read.
  absl::Status Initialize(absl::Duration timeout);

  // OK once Initialize succeeded while the view follows the store; Unavailable with the reason
  // otherwise (before Initialize a client could miss namespace `default`).
  absl::Status Ready() const;
  // The current placement, or nullptr before the first load.
  std::shared_ptr<const readmodel::Placed> Current() const;
  // Waits until the placement reflects store revision `revision`; false on timeout.
  bool WaitForRevision(int64_t revision, absl::Duration timeout) const;

  // Creates or replaces a namespace (to change its export config). InvalidArgument for an
  // invalid name or an export config other than disabled, standard or blackbox.
  absl::StatusOr<Namespace> RegisterNamespace(std::string name, ExportConfig export_config);
  // Deletes the namespace and exactly its services. NotFound when absent; FailedPrecondition for
  // `default`, which registrations without a namespace need.
  absl::Status UnregisterNamespace(std::string_view name);
  absl::StatusOr<std::vector<Namespace>> ListNamespaces() const;

  // Creates or replaces a server (active at once; placement follows from the view).
  absl::StatusOr<Server> RegisterServer(std::string name, Labels labels);
  // Deletes a server; its services move to the remaining candidates or wait, unplaced, for a
  // matching server to join. NotFound when absent.
  absl::Status UnregisterServer(std::string_view name);
  absl::StatusOr<std::vector<Server>> ListServers() const;

  // Stores the revocation of machine token `id` by `revoked_by` and waits (briefly) for this
  // replica's view to show it; every replica's view follows the store, so all refuse the token
  // within the view's lag. InvalidArgument for an id repo::ValidateTokenId refuses.
  absl::StatusOr<repo::TokenRevocation> RevokeToken(std::string id, std::string revoked_by);
  // Whether the current view holds a revocation of `id`; false before the first load. Never
  // blocks for long (a snapshot pointer copy): it runs for every request of a machine token.
  bool IsTokenRevoked(std::string_view id) const;
  // The revocations of the current view, by id.
  absl::StatusOr<std::vector<repo::TokenRevocation>> ListRevokedTokens() const;

  // Creates or replaces the service of the registration's endpoint in its namespace.
  // InvalidArgument for a bad name, endpoint, namespace name, label, description or selector, or
  // one over a record limit (model.h); NotFound for an unknown namespace or when no server
  // matches the selector.
  absl::StatusOr<Service> RegisterService(const ServiceRegistration& registration);

  // RegisterService without holding the caller's thread while the write commits and reaches the
  // view: `done` gets the same answer, on this thread for a request refused before anything is
  // written, otherwise on the store's committer or the view's thread (or the view-wait timer's,
  // see RegistryOptions::view_wait). `done` must not block for long.
  using RegisterCallback = absl::AnyInvocable<void(absl::StatusOr<Service>) &&>;
  void RegisterServiceAsync(const ServiceRegistration& registration, RegisterCallback done);
  // RegisterServiceAsync for a thread that must not block (gRPC's callback threads): takes the
  // registration, and returns an empty callback, only when starting it needs nothing but memory
  // (the view knows the namespace; no TTL, whose lease the store may have to grant first).
  // Otherwise nothing is done and `done` comes back, for RegisterServiceAsync on a thread that
  // may wait for the store.
  RegisterCallback RegisterServiceFromMemory(const ServiceRegistration& registration,
                                             RegisterCallback done);
  // `id_or_endpoint` is a service id or, when it contains ':', an endpoint (canonicalised
  // first). `namespace_name` "" means "default". NotFound when absent. Removes invalid records
  // too: the stored record is not read.
  absl::Status UnregisterService(std::string_view id_or_endpoint, std::string_view namespace_name);
  // Renews the services `ids_or_endpoints` (ids, or endpoints when they contain ':') of
  // `namespace_name` ("" = "default"): each with a TTL expires its TTL from now. The services of
  // one call with one TTL are a renewal set (store::Store::Renew): renewing the same set again
  // creates no store revision. A service past its deadline is not found, even while the store
  // still holds its record; a renewal applies only over the record the view saw.
  // InvalidArgument for a bad name, id or endpoint, or more than kMaxKeepAliveIds; NotFound for
  // an unknown namespace.
  absl::StatusOr<KeepAliveResult> KeepAlive(const std::vector<std::string>& ids_or_endpoints,
                                            std::string_view namespace_name);
  // Services of `namespace_name` ("" = all), with their effective servers, by namespace and id.
  // Stored records that cannot be served are not among them: see ListInvalidServices.
  absl::StatusOr<std::vector<Service>> ListServices(std::string_view namespace_name) const;
  // The stored service records of `namespace_name` ("" = all) that are left out of every answer,
  // by namespace and id, with the reason (see repo::Snapshot::invalid).
  absl::StatusOr<std::vector<InvalidService>> ListInvalidServices(
      std::string_view namespace_name) const;
  enum class Listed { kServed, kInvalid, kBoth };
  // ListServices, ListInvalidServices or both (served first) by reference, without copying a
  // service: the same services in the same order, with the same errors.
  absl::StatusOr<ServiceRefs> ListServiceRefs(std::string_view namespace_name, Listed listed) const;

  // The target groups of the services of `namespace_name` placed on `server`. `config` is
  // "standard", "blackbox" or "" for the namespace's own export config (disabled gives none).
  // InvalidArgument for a bad config or name, NotFound for an unknown server or namespace.
  absl::StatusOr<std::vector<targetgroup::TargetGroup>> TargetGroups(
      std::string_view server, std::string_view namespace_name, std::string_view config) const;
  // The same as the rendered http_sd body with its ETag, cached until the namespace or the
  // servers change.
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> HttpSd(
      std::string_view server, std::string_view namespace_name, std::string_view config) const;
  // HttpSd when it can answer without rendering (the body is cached, or there is none to
  // render); OK(nullptr) when it would have to render. The same errors as HttpSd. Never blocks
  // for long: it is meant for the HTTP server's I/O thread.
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> CachedHttpSd(
      std::string_view server, std::string_view namespace_name, std::string_view config) const;

 private:
  struct Selection {
    std::shared_ptr<const readmodel::Placed> placed;
    const readmodel::NamespacePlacement* placement =
        nullptr;  // nullptr: the namespace has no services
    ExportConfig config = ExportConfig::kStandard;
  };
  absl::StatusOr<Selection> Select(std::string_view server, std::string_view namespace_name,
                                   std::string_view config) const;
  absl::StatusOr<std::shared_ptr<const readmodel::Placed>> Loaded() const;
  // Sets the expiry in force of the served services of `refs` renewed in place, and drops
  // those that have expired but are not deleted yet.
  void SetCurrentDeadlines(ServiceRefs& listed) const;
  void OnSnapshot(const std::shared_ptr<const repo::Snapshot>& snapshot);
  // Waits for the view to show a committed write; a timeout is logged, not an error, because
  // the write itself succeeded.
  void AwaitView(int64_t revision) const;
  // AwaitView without waiting: runs `then` once the view shows `revision` (on the view's
  // thread, or on this one when it already does), or once view_wait has passed (on the timer's
  // thread, logged).
  void WhenViewShows(int64_t revision, absl::AnyInvocable<void() &&> then);
  void RunViewWaitTimer(const std::stop_token& stop);
  struct PendingRegistration;
  // One attempt of a registration whose request is valid; retries itself when the namespace
  // changed under it. Without `may_read_store`, a registration that would have to read the
  // namespace from the store is handed back untouched; otherwise nullptr is returned.
  std::unique_ptr<PendingRegistration> TryRegister(std::unique_ptr<PendingRegistration> pending,
                                                   int attempt, bool may_read_store = true);
  void OnRegisterCommitted(std::unique_ptr<PendingRegistration> pending, int attempt,
                           absl::StatusOr<store::TxnResult> result);
  absl::Status StorePlacementSettings();
  absl::Status EnsureDefaultNamespace();

  store::Store& store_;
  repo::Repository repo_;
  const RegistryOptions options_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const readmodel::Placed> placed_ ABSL_GUARDED_BY(mu_);
  // What placed_ shows, under a lock of its own for the writers waiting to see their write: an
  // unlock of a mutex with waiters evaluates their conditions, and mu_ is taken by every read, so
  // waiting on mu_ made every read pay for every waiting writer. The revision is copied out of
  // the placement so that the condition (which absl::Mutex evaluates in code TSan cannot see
  // synchronise) never reads through placed_ into a snapshot the view thread may free.
  mutable absl::Mutex published_mu_;
  bool published_ ABSL_GUARDED_BY(published_mu_) = false;
  int64_t published_revision_ ABSL_GUARDED_BY(published_mu_) = 0;
  // Continuations of writes waiting for the view to show their revision, by revision.
  struct ViewWaiter {
    absl::Time deadline;  // view_wait after the write was acknowledged
    absl::AnyInvocable<void() &&> then;
  };
  std::multimap<int64_t, ViewWaiter> view_waiters_ ABSL_GUARDED_BY(published_mu_);
  bool stopping_ ABSL_GUARDED_BY(published_mu_) = false;
  std::atomic<bool> initialized_{false};

  std::jthread view_wait_timer_;      // answers the waiters the view did not reach in time
  std::unique_ptr<repo::View> view_;  // last: its thread calls OnSnapshot
};

// The most services one KeepAlive call renews: one store renewal.
inline constexpr size_t kMaxKeepAliveIds = store::kMaxRenewalKeys;

// The namespace of a request: "" means "default".
std::string_view NamespaceOrDefault(std::string_view namespace_name);

}  // namespace discovery::registry
