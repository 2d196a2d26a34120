// The effective placement of every service, derived from one view snapshot. Placement is a
// pure function of the stored servers, the stored placement settings and each service's
// endpoint and selector, so it is computed in memory instead of being rewritten into every
// service record when a server joins or leaves (the Go original did that, docs/decisions.md D5).
// Every discoveryd replica and every exporter derives the same answer from the same snapshot.
//
// A new snapshot is placed incrementally from the placement of an earlier one: only the
// services that differ between the two (found by diffing persistent maps) are placed again, so
// a write costs O(log n) whatever the size of its namespace. When servers or settings change,
// every service is placed again but only those whose servers moved are rewritten, and each
// server's slice (the services placed on it) changes only when its content does.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "common/persistent_map.h"
#include "model/model.h"
#include "placement/placement.h"
#include "readmodel/buffer_pool.h"
#include "repo/view.h"

namespace discovery::readmodel {

// A rendered http_sd answer, shared by every request that asks for the same thing, with its
// gzip encoding made on the first request that accepts it.
class HttpSdBody {
 public:
  HttpSdBody(std::string json, std::string etag);
  HttpSdBody(std::shared_ptr<const std::string> json, std::string etag);
  HttpSdBody(const HttpSdBody&) = delete;
  HttpSdBody& operator=(const HttpSdBody&) = delete;
  HttpSdBody(HttpSdBody&&) = delete;
  HttpSdBody& operator=(HttpSdBody&&) = delete;
  ~HttpSdBody() = default;

  const std::string& json() const { return *json_; }
  // The JSON as a buffer to send without copying.
  const std::shared_ptr<const std::string>& json_buffer() const { return json_; }
  // Quoted, as it goes into the ETag header.
  const std::string& etag() const { return etag_; }
  // The ETag of the gzip encoding: another representation needs another tag.
  const std::string& gzip_etag() const { return gzip_etag_; }
  // The JSON gzipped, compressed once (on the first call) and then shared. Thread-safe.
  std::shared_ptr<const std::string> Gzipped() const;
  // The gzipped JSON when it has been made already; nullptr while it has not (or is being made
  // right now). Never waits for a compression. Thread-safe.
  std::shared_ptr<const std::string> GzippedIfReady() const;

 private:
  const std::shared_ptr<const std::string> json_;
  const std::string etag_;
  const std::string gzip_etag_;
  mutable absl::Mutex mu_;
  mutable std::shared_ptr<const std::string> gzip_ ABSL_GUARDED_BY(mu_);
};

// One service's part of an http_sd answer.
struct RenderedGroup {
  ExportConfig config = ExportConfig::kDisabled;
  std::string endpoint;  // canonical; answers list their groups in this order
  std::string json;      // the group's JSON object; empty when the endpoint does not parse
  uint64_t hash = 0;     // Crc64Xz of `json`: an answer's ETag is made of its groups' hashes
};

// A service's RenderedGroup, made on first use and then shared by every answer that lists the
// service: after a change to a server's slice only the changed services are rendered again, the
// answer is put together from the parts. Copies start empty. Thread-safe.
class RenderedGroupSlot {
 public:
  RenderedGroupSlot() = default;
  RenderedGroupSlot(const RenderedGroupSlot& /*other*/) {}
  // Moves keep the group: a PlacedService is built as a temporary and moved into its place.
  RenderedGroupSlot(RenderedGroupSlot&& other) noexcept
      : group_(other.group_.exchange(nullptr, std::memory_order_acq_rel)) {}
  // A slot that starts with a copy of what `other` has rendered so far, for the same service
  // placed on other servers: a server join then renders only the services it changed, not
  // every one that moved.
  static RenderedGroupSlot CopyOf(const RenderedGroupSlot& other) {
    const RenderedGroup* group = other.group_.load(std::memory_order_acquire);
    return RenderedGroupSlot(group == nullptr ? nullptr : new RenderedGroup(*group));
  }
  RenderedGroupSlot& operator=(const RenderedGroupSlot&) = delete;
  RenderedGroupSlot& operator=(RenderedGroupSlot&&) = delete;
  ~RenderedGroupSlot() { delete group_.load(std::memory_order_acquire); }

  // The group of `service` (which must be the service of this slot) under `config`, which is
  // not kDisabled. Only the first config asked for is kept (a namespace's export setting rarely
  // changes); another one is rendered into `uncached`, which must outlive the reference.
  const RenderedGroup& Get(const Service& service, ExportConfig config,
                           std::vector<std::unique_ptr<RenderedGroup>>& uncached) const;
  // The group when it is rendered already; nullptr otherwise. Never renders.
  const RenderedGroup* IfRendered() const { return group_.load(std::memory_order_acquire); }

 private:
  explicit RenderedGroupSlot(const RenderedGroup* group) : group_(group) {}

  mutable std::atomic<const RenderedGroup*> group_{nullptr};
};

// A service with the servers it is placed on.
struct PlacedService {
  repo::ServicePtr service;
  // Ascending; shared by every service placed on the same servers.
  std::shared_ptr<const std::vector<std::string>> servers;
  RenderedGroupSlot rendered;
};
using PlacedPtr = std::shared_ptr<const PlacedService>;
// Placed services by id; each key views the id of the service it maps to.
using PlacedMap = persistent::Map<std::string_view, PlacedPtr>;

// Placement of the services of one namespace. Immutable once built.
class NamespacePlacement {
 public:
  // The service with `id` and its servers, or nullptr for an unknown id.
  const PlacedService* Find(std::string_view id) const;
  // Every service of the namespace, ascending by id.
  const PlacedMap& All() const { return all_; }
  // The services placed on `server`, ascending by id; empty for an unknown server. A server's
  // slice is the same version (PlacedMap::SameAs) for as long as nothing on it changed.
  const PlacedMap& On(std::string_view server) const;
  // Service counts per server.
  std::map<std::string, int64_t> Counts() const;

 private:
  friend class Placed;
  friend class PlacementBuilder;

  // The view's services this was placed from, to diff the next version against.
  repo::ServiceMap services_;
  PlacedMap all_;
  std::map<std::string, PlacedMap, std::less<>> by_server_;
};

// http_sd answers rendered from server slices, kept across placements: an answer is rendered at
// most once per version of its slice, and a write elsewhere leaves it cached. Thread-safe.
class HttpSdCache {
 public:
  absl::StatusOr<std::shared_ptr<const HttpSdBody>> Get(std::string_view server,
                                                        std::string_view ns, ExportConfig config,
                                                        const PlacedMap& slice);
  // The answer Get would return when it is rendered already for this version of `slice`;
  // nullptr otherwise. Never renders.
  std::shared_ptr<const HttpSdBody> Find(std::string_view server, std::string_view ns,
                                         ExportConfig config, const PlacedMap& slice);
  // Drops the answers of servers and namespaces that no longer exist.
  void Retain(const repo::Snapshot& snapshot);

 private:
  // A group of an answer, in the answer's order. The pointers stay valid while the slice they
  // come from is held.
  struct Part {
    const RenderedGroup* group;
    const PlacedService* placed;
  };
  using Parts = std::vector<Part>;
  struct Entry {
    PlacedMap slice;  // the version `body` was rendered from
    std::shared_ptr<const HttpSdBody> body;
    // The groups of `body` in order, so that the next version of the slice is rendered by
    // merging its few changes in rather than sorting every group again; nullptr when a group
    // was not a cached one (the namespace's export setting changed).
    std::shared_ptr<const Parts> parts;
  };
  struct Rendered {
    std::shared_ptr<const HttpSdBody> body;
    std::shared_ptr<const Parts> parts;
  };
  static bool InAnswerOrder(const Part& a, const Part& b);
  static Rendered Render(const PlacedMap& slice, ExportConfig config, const Entry* previous,
                         BufferPool& buffers);
  static std::shared_ptr<const Parts> MergeChanges(const PlacedMap& slice, ExportConfig config,
                                                   const Entry& previous);

  // Room for four answers of 100,000 targets: enough for the answers of a server join rendered
  // one after another, and for a few requests in flight.
  const std::shared_ptr<BufferPool> buffers_ =
      std::make_shared<BufferPool>(size_t{1} << 20, size_t{64} << 20);
  absl::Mutex mu_;
  std::map<std::tuple<std::string, std::string, ExportConfig>, Entry, std::less<>> entries_
      ABSL_GUARDED_BY(mu_);
};

// Candidate servers per selector text, valid for one set of servers. Most services share a
// handful of selectors, so parsing and matching once per selector keeps placement cheap.
// Thread-safe.
class CandidateCache {
 public:
  explicit CandidateCache(const repo::Snapshot& snapshot);
  // The name-sorted servers `selector_text` matches; none for a selector that does not parse
  // (written by another tool: it places nowhere rather than everywhere).
  std::shared_ptr<const std::vector<std::string>> For(const std::string& selector_text);

 private:
  std::vector<Server> servers_;
  absl::Mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const std::vector<std::string>>> cache_
      ABSL_GUARDED_BY(mu_);
};

// Interned server lists: every service placed on the same servers shares one list. Lists no
// service holds any more are swept now and then. Thread-safe.
class ServerListPool {
 public:
  std::shared_ptr<const std::vector<std::string>> Intern(std::vector<std::string> servers);

 private:
  absl::Mutex mu_;
  std::map<std::vector<std::string>, std::weak_ptr<const std::vector<std::string>>> lists_
      ABSL_GUARDED_BY(mu_);
  size_t swept_size_ ABSL_GUARDED_BY(mu_) = 16;
};

// The placement of every service of one snapshot. Immutable once built; thread-safe.
class Placed {
 public:
  // Computes the placement of `snapshot` with its stored settings, or `fallback` when none are
  // stored, incrementally from `previous` (any earlier placement of the same view, or nullptr).
  static std::shared_ptr<const Placed> Compute(std::shared_ptr<const repo::Snapshot> snapshot,
                                               const Placed* previous,
                                               const placement::Settings& fallback);

  const repo::Snapshot& snapshot() const { return *snapshot_; }
  const std::shared_ptr<const repo::Snapshot>& snapshot_ptr() const { return snapshot_; }
  const placement::Settings& settings() const { return settings_; }

  // nullptr when the namespace has no services.
  const NamespacePlacement* In(std::string_view ns) const;
  // `service` with its effective servers.
  Service WithServers(const Service& service) const;
  // Service counts per (server, namespace), for discovery_services_count.
  std::map<std::pair<std::string, std::string>, int64_t> Counts() const;
  // The candidate servers of a selector under this placement's servers.
  std::shared_ptr<const std::vector<std::string>> CandidatesFor(const std::string& selector) const;

  // The http_sd answer of `server` for namespace `ns` under `config`, rendered on first use
  // and cached until the server's slice of the namespace changes. Always OK: a service that
  // cannot be rendered is left out of the answer instead of failing it.
  absl::StatusOr<std::shared_ptr<const HttpSdBody>> HttpSd(std::string_view server,
                                                           std::string_view ns,
                                                           ExportConfig config) const;
  // That answer when it is rendered already; nullptr when HttpSd would have to render it.
  std::shared_ptr<const HttpSdBody> CachedHttpSd(std::string_view server, std::string_view ns,
                                                 ExportConfig config) const;

 private:
  Placed() = default;

  std::shared_ptr<const repo::Snapshot> snapshot_;
  placement::Settings settings_;
  std::map<std::string, std::shared_ptr<const NamespacePlacement>, std::less<>> namespaces_;
  std::shared_ptr<CandidateCache> candidates_;
  std::shared_ptr<ServerListPool> server_lists_;
  std::shared_ptr<HttpSdCache> http_sd_;
};

}  // namespace discovery::readmodel
