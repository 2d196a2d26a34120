#include "registry/placed.h"

#include <algorithm>
#include <utility>

#include "fmt/format.h"

#include "hash/crc64.h"
#include "selector/selector.h"
#include "targetgroup/targetgroup.h"

namespace discovery::registry {
namespace {

// Candidate lists per selector text: most services share a handful of selectors, and parsing
// and matching once per selector instead of once per service keeps a full recompute cheap.
class CandidateCache {
 public:
  explicit CandidateCache(const repo::Snapshot& snapshot) {
    servers_.reserve(snapshot.servers.size());
    for (const auto& [name, server] : snapshot.servers) {
      servers_.push_back(server);
    }
  }

  const std::vector<std::string>& For(const std::string& selector_text) {
    auto it = cache_.find(selector_text);
    if (it != cache_.end()) {
      return it->second;
    }
    std::vector<std::string> candidates;
    // A stored selector that does not parse (written by another tool) places nowhere rather
    // than everywhere.
    if (absl::StatusOr<selector::Selector> parsed = selector::Selector::Parse(selector_text);
        parsed.ok()) {
      candidates = placement::Candidates(servers_, *parsed);
    }
    return cache_.emplace(selector_text, std::move(candidates)).first->second;
  }

 private:
  std::vector<Server> servers_;
  std::unordered_map<std::string, std::vector<std::string>> cache_;
};

// Servers as far as placement is concerned: `modified` does not matter.
bool SamePlacementInputs(const repo::Snapshot& a, const repo::Snapshot& b) {
  return std::equal(a.servers.begin(), a.servers.end(), b.servers.begin(), b.servers.end(),
                    [](const auto& x, const auto& y) {
                      return x.first == y.first && x.second.labels == y.second.labels &&
                             x.second.Enabled() == y.second.Enabled();
                    });
}

}  // namespace

const std::vector<std::string>* NamespacePlacement::ServersOf(std::string_view id) const {
  auto it = servers_of_.find(std::string{id});
  return it == servers_of_.end() ? nullptr : &it->second;
}

const std::vector<const Service*>& NamespacePlacement::ServicesOn(std::string_view server) const {
  static const std::vector<const Service*> kNone;
  auto it = by_server_.find(server);
  return it == by_server_.end() ? kNone : it->second;
}

std::map<std::string, int64_t> NamespacePlacement::Counts() const {
  std::map<std::string, int64_t> counts;
  for (const auto& [server, services] : by_server_) {
    counts[server] = static_cast<int64_t>(services.size());
  }
  return counts;
}

absl::StatusOr<std::shared_ptr<const HttpSdBody>> NamespacePlacement::HttpSd(
    std::string_view server, ExportConfig config) const {
  const std::pair<std::string, ExportConfig> key{std::string{server}, config};
  {
    absl::MutexLock lock(&mu_);
    if (auto it = rendered_.find(key); it != rendered_.end()) {
      return it->second;
    }
  }
  // Rendering happens outside the lock; two requests racing for the same key render the same
  // bytes and the first one stored wins.
  std::vector<targetgroup::TargetGroup> groups;
  if (config != ExportConfig::kDisabled) {
    std::vector<Service> services;
    const std::vector<const Service*>& placed = ServicesOn(server);
    services.reserve(placed.size());
    for (const Service* service : placed) {
      services.push_back(*service);
    }
    absl::StatusOr<std::vector<targetgroup::TargetGroup>> built =
        targetgroup::FromServices(services, config);
    if (!built.ok()) {
      return built.status();
    }
    groups = *std::move(built);
  }
  auto body = std::make_shared<HttpSdBody>();
  body->json = targetgroup::ToHttpSdJson(groups);
  body->etag = fmt::format("\"{:016x}-{:x}\"", hash::Crc64Xz(body->json), body->json.size());
  absl::MutexLock lock(&mu_);
  return rendered_.try_emplace(key, std::move(body)).first->second;
}

std::shared_ptr<const Placed> Placed::Compute(std::shared_ptr<const repo::Snapshot> snapshot,
                                              const Placed* previous,
                                              const placement::Settings& fallback) {
  std::shared_ptr<Placed> placed(new Placed());
  placed->settings_ = snapshot->placement.value_or(fallback);
  const bool reusable = previous != nullptr && previous->settings_ == placed->settings_ &&
                        SamePlacementInputs(*previous->snapshot_, *snapshot);
  CandidateCache candidates(*snapshot);
  for (const auto& [ns, services] : snapshot->services) {
    if (reusable) {
      auto it = previous->namespaces_.find(ns);
      if (it != previous->namespaces_.end() && it->second->services_ == services) {
        placed->namespaces_.emplace(ns, it->second);
        continue;
      }
    }
    auto placement = std::make_shared<NamespacePlacement>();
    placement->services_ = services;
    placement->servers_of_.reserve(services->size());
    for (const auto& [id, service] : *services) {
      std::vector<std::string> servers =
          placement::Place(service.endpoint, candidates.For(service.selector),
                           placed->settings_.replicas, placed->settings_.algorithm);
      for (const std::string& server : servers) {
        // The map iterates by id, so every per-server list comes out ascending by id.
        placement->by_server_[server].push_back(&service);
      }
      placement->servers_of_.emplace(id, std::move(servers));
    }
    placed->namespaces_.emplace(ns, std::move(placement));
  }
  placed->snapshot_ = std::move(snapshot);
  return placed;
}

const NamespacePlacement* Placed::In(std::string_view ns) const {
  auto it = namespaces_.find(ns);
  return it == namespaces_.end() ? nullptr : it->second.get();
}

Service Placed::WithServers(const Service& service) const {
  Service result = service;
  const NamespacePlacement* placement = In(service.namespace_name);
  const std::vector<std::string>* servers =
      placement == nullptr ? nullptr : placement->ServersOf(service.id);
  result.servers = servers == nullptr ? std::vector<std::string>{} : *servers;
  return result;
}

std::map<std::pair<std::string, std::string>, int64_t> Placed::Counts() const {
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  for (const auto& [ns, placement] : namespaces_) {
    for (const auto& [server, count] : placement->Counts()) {
      counts[{server, ns}] = count;
    }
  }
  return counts;
}

}  // namespace discovery::registry
