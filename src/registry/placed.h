// The effective placement of every service, derived from one view snapshot. Placement is a
// pure function of the stored servers, the stored placement settings and each service's
// endpoint and selector, so it is computed in memory instead of being rewritten into every
// service record when a server joins or leaves (the Go original did that, B21). Every
// discoveryd replica and every exporter derives the same answer from the same snapshot.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

#include "model/model.h"
#include "placement/placement.h"
#include "repo/view.h"

namespace discovery::registry {

// A rendered http_sd answer, shared by every request that asks for the same thing.
struct HttpSdBody {
  std::string json;
  std::string etag;  // quoted, as it goes into the ETag header
};

// Placement of the services of one namespace.
class NamespacePlacement {
 public:
  // The servers of the service with `id` (ascending), or nullptr for an unknown id.
  const std::vector<std::string>* ServersOf(std::string_view id) const;
  // The services placed on `server`, ascending by id; empty for an unknown server.
  const std::vector<const Service*>& ServicesOn(std::string_view server) const;
  // Service counts per server.
  std::map<std::string, int64_t> Counts() const;

  // The http_sd answer for `server` under `config`, rendered on first use and kept for as
  // long as this placement is current. InvalidArgument when a stored endpoint does not parse.
  absl::StatusOr<std::shared_ptr<const HttpSdBody>> HttpSd(std::string_view server,
                                                           ExportConfig config) const;

 private:
  friend class Placed;

  std::shared_ptr<const repo::ServiceMap> services_;  // keeps the pointees below alive
  std::unordered_map<std::string, std::vector<std::string>> servers_of_;
  std::map<std::string, std::vector<const Service*>, std::less<>> by_server_;

  mutable absl::Mutex mu_;
  mutable std::map<std::pair<std::string, ExportConfig>, std::shared_ptr<const HttpSdBody>>
      rendered_ ABSL_GUARDED_BY(mu_);
};

// The placement of every service of one snapshot. Immutable once built; thread-safe.
class Placed {
 public:
  // Computes the placement of `snapshot` with its stored settings, or `fallback` when none are
  // stored. Namespaces whose services did not change are taken over from `previous` when the
  // servers and settings are the same, so a single registration costs one namespace, not all.
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

 private:
  Placed() = default;

  std::shared_ptr<const repo::Snapshot> snapshot_;
  placement::Settings settings_;
  std::map<std::string, std::shared_ptr<const NamespacePlacement>, std::less<>> namespaces_;
};

}  // namespace discovery::registry
