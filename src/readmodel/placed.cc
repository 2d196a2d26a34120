#include "readmodel/placed.h"

#include <algorithm>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "fmt/format.h"

#include "compress/gzip.h"
#include "hash/crc64.h"
#include "model/endpoint.h"
#include "selector/selector.h"
#include "targetgroup/targetgroup.h"

namespace discovery::readmodel {
namespace {

// Servers as far as placement is concerned: `modified` does not matter.
bool SamePlacementInputs(const repo::Snapshot& a, const repo::Snapshot& b) {
  return std::equal(a.servers.begin(), a.servers.end(), b.servers.begin(), b.servers.end(),
                    [](const auto& x, const auto& y) {
                      return x.first == y.first && x.second.labels == y.second.labels &&
                             x.second.Enabled() == y.second.Enabled();
                    });
}

// Builds placements. Server lists come from `lists`, so services placed alike share one list
// (a million services over a few servers hold a handful of lists).
class Placer {
 public:
  Placer(CandidateCache& candidates, ServerListPool& lists, const placement::Settings& settings)
      : candidates_(candidates), lists_(lists), settings_(settings) {}

  PlacedPtr Place(const repo::ServicePtr& service) { return Make(service, Servers(*service)); }

  // The servers of `service`, not yet interned: a re-placement compares them with the current
  // list and makes a PlacedService only for the services that move.
  std::vector<std::string> Servers(const Service& service) {
    // Services placed one after another mostly share their selector: asking the shared cache
    // (a lock, a hash of the text, a reference count) only when it changes saves a good part of
    // re-placing a million services.
    if (last_candidates_ == nullptr || service.selector != last_selector_) {
      last_candidates_ = candidates_.For(service.selector);
      last_selector_ = service.selector;
    }
    return placement::Place(service.endpoint, *last_candidates_, settings_.replicas,
                            settings_.algorithm);
  }

  PlacedPtr Make(const repo::ServicePtr& service, std::vector<std::string> servers) {
    return std::make_shared<const PlacedService>(
        PlacedService{.service = service, .servers = Intern(std::move(servers))});
  }

  // `current`'s service on other servers, keeping what it has rendered.
  PlacedPtr Move(const PlacedService& current, std::vector<std::string> servers) {
    return std::make_shared<const PlacedService>(
        PlacedService{.service = current.service,
                      .servers = Intern(std::move(servers)),
                      .rendered = RenderedGroupSlot::CopyOf(current.rendered)});
  }

  // A placer for another thread: it shares the caches but not the memos.
  Placer Fork() const { return {candidates_, lists_, settings_}; }

 private:
  CandidateCache& candidates_;
  ServerListPool& lists_;
  const placement::Settings& settings_;
  // The few lists placed most recently, looked at before the shared pool, whose lock two
  // threads placing a million services would otherwise take turns on.
  std::shared_ptr<const std::vector<std::string>> Intern(std::vector<std::string> servers) {
    for (const auto& list : recent_lists_) {
      if (*list == servers) {
        return list;
      }
    }
    std::shared_ptr<const std::vector<std::string>> list = lists_.Intern(std::move(servers));
    if (recent_lists_.size() < kRecentLists) {
      recent_lists_.push_back(list);
    }
    return list;
  }

  static constexpr size_t kRecentLists = 16;

  std::string last_selector_;
  std::shared_ptr<const std::vector<std::string>> last_candidates_;
  std::vector<std::shared_ptr<const std::vector<std::string>>> recent_lists_;
};

// Namespaces smaller than this are placed on one thread: starting threads costs more.
constexpr size_t kMinParallelServices = 20000;
constexpr size_t kMaxPlacementThreads = 4;

size_t PlacementThreads(size_t services) {
  return services < kMinParallelServices
             ? 1
             : std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxPlacementThreads);
}

// Runs work(part, begin, end) over [0, n) cut into `parts` consecutive ranges, one per thread
// (this one included), and returns when all are done. Placing every service of a namespace is
// independent per service; a load or a server join at a million services is otherwise bound
// by one core.
template <typename Work>
void InParallel(size_t n, size_t parts, const Work& work) {
  const size_t chunk = (n + parts - 1) / parts;
  std::vector<std::jthread> workers;
  for (size_t part = 1; part < parts; ++part) {
    workers.emplace_back([&work, part, chunk, n] {
      work(part, std::min(n, part * chunk), std::min(n, (part + 1) * chunk));
    });
  }
  work(0, 0, std::min(n, chunk));
}

}  // namespace

// Builds and updates NamespacePlacements (a friend: it writes their maps).
class PlacementBuilder {
 public:
  // A namespace's placement being updated: a copy of the previous one (persistent maps, so the
  // copy costs one pointer per server) changed by a batch of services. The changes are collected
  // and made by Commit as one batch per map, so a server join that moves a tenth of the services
  // copies each tree node once instead of once per moved service. Each id changes at most once
  // per Update.
  class Update {
   public:
    explicit Update(NamespacePlacement& target) : target_(target) {}

    // Removing an id the namespace does not hold does nothing.
    void Remove(std::string_view id) {
      all_.emplace_back(id, std::nullopt);
      servers_left_known_ = false;
    }

    void Put(PlacedPtr placed) {
      PutOnServers(placed);
      all_.emplace_back(placed->service->id, std::move(placed));
      servers_left_known_ = false;
    }

    // A service placed anew whose placement until now is `before`: the servers it leaves are
    // known here, so Commit need not learn them from the map of all.
    void Move(PlacedPtr placed, const PlacedService& before) {
      const std::string_view id = placed->service->id;
      for (const std::string& server : *before.servers) {
        if (!std::binary_search(placed->servers->begin(), placed->servers->end(), server)) {
          by_server_[server].emplace_back(id, std::nullopt);
        }
      }
      PutOnServers(placed);
      all_.emplace_back(id, std::move(placed));
    }

    void Commit() {
      const PlacedMap all_before = target_.all_;
      const size_t puts = Puts(all_);
      if (servers_left_known_ && PlacementThreads(all_.size()) > 1) {
        // Every tree's changes are known: the map of all is updated on a thread of its own
        // while this one updates the slices (a server join at a million services moves a
        // tenth of them, and each side is a tenth of a second).
        PlacedMap all;
        {
          std::jthread updating_all(
              [&all, &all_before, this] { all = all_before.Apply(Sorted(std::move(all_))); });
          UpdateSlices(all_before, puts);
        }
        target_.all_ = std::move(all);
      } else {
        // The servers an id leaves are known once the map of all says where it was: as the
        // batch replaces it, rather than by a lookup per id beforehand.
        auto left_servers = [this](const PlacedMap::Change& change, const PlacedPtr& old) {
          for (const std::string& server : *old->servers) {
            if (!change.second.has_value() ||
                !std::binary_search((*change.second)->servers->begin(),
                                    (*change.second)->servers->end(), server)) {
              by_server_[server].emplace_back(change.first, std::nullopt);
            }
          }
        };
        target_.all_ = target_.all_.Apply(Sorted(std::move(all_)), left_servers);
        UpdateSlices(all_before, puts);
      }
      // What needs the new map of all: slices that share it, and slices left empty.
      for (const std::string& server : share_all_) {
        target_.by_server_[server] = target_.all_;
      }
      for (auto& [server, changes] : by_server_) {
        auto it = target_.by_server_.find(server);
        ShareIfAll(it->second);
        if (it->second.empty()) {
          target_.by_server_.erase(it);
        }
      }
      all_.clear();
      by_server_.clear();
      share_all_.clear();
      servers_left_known_ = true;
    }

   private:
    using Changes = std::vector<PlacedMap::Change>;

    void PutOnServers(const PlacedPtr& placed) {
      for (const std::string& server : *placed->servers) {
        by_server_[server].emplace_back(placed->service->id, placed);
      }
    }

    // Applies each server's changes to its slice, except where the slice will share the new map
    // of all: a server that held every service and gets every one put still holds all of them
    // (the batch's removals leave it too). Reads nothing of the new map of all.
    void UpdateSlices(const PlacedMap& all_before, size_t puts) {
      for (auto& [server, changes] : by_server_) {
        auto it = target_.by_server_.try_emplace(server).first;
        if (it->second.SameAs(all_before) && Puts(changes) == puts) {
          share_all_.push_back(server);
        } else {
          it->second = it->second.Apply(Sorted(std::move(changes)));
        }
      }
    }

    static size_t Puts(const Changes& changes) {
      return std::count_if(changes.begin(), changes.end(),
                           [](const PlacedMap::Change& c) { return c.second.has_value(); });
    }

    // A server's slice that has every service of the namespace (its ids are a subset, and
    // both hold the same placed records) becomes the map of all itself: one Prometheus, or a
    // pair that both scrape everything, then costs no tree of its own to keep or update.
    void ShareIfAll(PlacedMap& slice) const {
      if (slice.size() == target_.all_.size()) {
        slice = target_.all_;
      }
    }

    static Changes Sorted(Changes changes) {
      const auto by_id = [](const PlacedMap::Change& a, const PlacedMap::Change& b) {
        return a.first < b.first;
      };
      if (!std::is_sorted(changes.begin(), changes.end(), by_id)) {
        std::sort(changes.begin(), changes.end(), by_id);
      }
      return changes;
    }

    NamespacePlacement& target_;
    Changes all_;
    std::map<std::string, Changes, std::less<>> by_server_;
    // Servers whose slice becomes the new map of all (UpdateSlices).
    std::vector<std::string> share_all_;
    // Every change so far came through Move: by_server_ holds every slice's changes already.
    bool servers_left_known_ = true;
  };

  // The whole namespace at once, in O(n): the first placement after a load.
  static std::shared_ptr<NamespacePlacement> PlaceAll(const repo::ServiceMap& services,
                                                      Placer& placer) {
    auto result = std::make_shared<NamespacePlacement>();
    // The map iterates by id, so every list comes out ascending as FromSorted wants it.
    std::vector<std::pair<std::string_view, const repo::ServicePtr*>> input;
    input.reserve(services.size());
    services.ForEach([&](std::string_view id, const repo::ServicePtr& service) {
      input.emplace_back(id, &service);
    });
    std::vector<PlacedPtr> placed(input.size());
    // The ids' tree priorities too, while each thread has the service at hand: hashed later, by
    // one thread, every id is a cache miss, twice (the map of all and the server's).
    std::vector<PlacedMap::priority_type> priorities(input.size());
    const size_t parts = PlacementThreads(input.size());
    InParallel(input.size(), parts, [&](size_t /*part*/, size_t begin, size_t end) {
      Placer own = placer.Fork();
      for (size_t i = begin; i < end; ++i) {
        placed[i] = own.Place(*input[i].second);
        priorities[i] = PlacedMap::KeyPriority(input[i].first);
      }
    });
    struct Entries {
      std::vector<std::pair<std::string_view, PlacedPtr>> entries;
      std::vector<PlacedMap::priority_type> priorities;
    };
    Entries all;
    std::map<std::string, Entries, std::less<>> by_server;
    all.entries.reserve(input.size());
    for (size_t i = 0; i < input.size(); ++i) {
      for (const std::string& server : *placed[i]->servers) {
        Entries& of_server = by_server[server];
        of_server.entries.emplace_back(input[i].first, placed[i]);
        of_server.priorities.push_back(priorities[i]);
      }
      all.entries.emplace_back(input[i].first, std::move(placed[i]));
    }
    result->services_ = services;
    result->all_ = PlacedMap::FromSorted(std::move(all.entries), priorities);
    for (auto& [server, of_server] : by_server) {
      // A server with every service shares the map of all (Update::ShareIfAll).
      result->by_server_.emplace(
          server, of_server.entries.size() == result->all_.size()
                      ? result->all_
                      : PlacedMap::FromSorted(std::move(of_server.entries), of_server.priorities));
    }
    return result;
  }

  // The namespace placed again from `previous`: only the services that differ are placed anew;
  // with `replace_all` (servers or settings changed) every service is placed again, and only those
  // whose servers moved are rewritten.
  static std::shared_ptr<NamespacePlacement> PlaceChanges(const NamespacePlacement& previous,
                                                          const repo::ServiceMap& services,
                                                          Placer& placer, bool replace_all) {
    auto result = std::make_shared<NamespacePlacement>(previous);
    {
      Update update(*result);
      repo::ServiceMap::Diff(
          previous.services_, services,
          [&](std::string_view id, const repo::ServicePtr&) { update.Remove(id); },
          [&](std::string_view, const repo::ServicePtr& added) { update.Put(placer.Place(added)); },
          [&](std::string_view, const repo::ServicePtr&, const repo::ServicePtr& changed) {
            update.Put(placer.Place(changed));
          });
      update.Commit();
    }
    result->services_ = services;
    if (replace_all) {
      // A second batch: it sees the services the first one changed.
      std::vector<const PlacedService*> current;
      current.reserve(result->all_.size());
      result->all_.ForEach(
          [&](std::string_view, const PlacedPtr& placed) { current.push_back(placed.get()); });
      const size_t parts = PlacementThreads(current.size());
      // Each moved service with its placement until now, which the map of all holds until the
      // update is committed.
      std::vector<std::vector<std::pair<PlacedPtr, const PlacedService*>>> moved(parts);
      InParallel(current.size(), parts, [&](size_t part, size_t begin, size_t end) {
        Placer own = placer.Fork();
        for (size_t i = begin; i < end; ++i) {
          std::vector<std::string> servers = own.Servers(*current[i]->service);
          if (servers != *current[i]->servers) {
            moved[part].emplace_back(own.Move(*current[i], std::move(servers)), current[i]);
          }
        }
      });
      Update update(*result);
      for (auto& part : moved) {
        for (auto& [placed, before] : part) {
          update.Move(std::move(placed), *before);
        }
      }
      update.Commit();
    }
    return result;
  }
};

namespace {

// Byte order fixed, so that replicas on any machine tag the same answer alike.
void AppendLittleEndian(uint64_t value, std::string& out) {
  for (int byte = 0; byte < 8; ++byte) {
    out.push_back(static_cast<char>((value >> (8 * byte)) & 0xFF));
  }
}

RenderedGroup RenderGroup(const Service& service, ExportConfig config) {
  RenderedGroup rendered{.config = config};
  absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(service.endpoint);
  if (endpoint.ok()) {
    rendered.endpoint = endpoint->String();
    // "[{...}]" without its brackets.
    std::string json =
        targetgroup::ToHttpSdJson({targetgroup::FromService(service, *endpoint, config)});
    rendered.json = json.substr(1, json.size() - 2);
    rendered.hash = hash::Crc64Xz(rendered.json);
  }
  return rendered;
}

}  // namespace

const RenderedGroup& RenderedGroupSlot::Get(
    const Service& service, ExportConfig config,
    std::vector<std::unique_ptr<RenderedGroup>>& uncached) const {
  const RenderedGroup* group = group_.load(std::memory_order_acquire);
  if (group == nullptr) {
    auto made = std::make_unique<const RenderedGroup>(RenderGroup(service, config));
    // Two answers rendering at once may both make it; the first one stored is kept.
    if (group_.compare_exchange_strong(group, made.get(), std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      group = made.release();
    }
  }
  if (group->config == config) {
    return *group;
  }
  uncached.push_back(std::make_unique<RenderedGroup>(RenderGroup(service, config)));
  return *uncached.back();
}

HttpSdBody::HttpSdBody(std::string json, std::string etag)
    : HttpSdBody(std::make_shared<const std::string>(std::move(json)), std::move(etag)) {}

HttpSdBody::HttpSdBody(std::shared_ptr<const std::string> json, std::string etag)
    : json_(std::move(json)),
      etag_(std::move(etag)),
      // "<crc>-<length>" becomes "<crc>-<length>-gzip".
      gzip_etag_(etag_.size() >= 2 ? etag_.substr(0, etag_.size() - 1) + "-gzip\"" : etag_) {}

std::shared_ptr<const std::string> HttpSdBody::Gzipped() const {
  absl::MutexLock lock(&mu_);
  if (gzip_ == nullptr) {
    // Under the lock: concurrent first requests wait for one compression instead of each
    // doing it.
    gzip_ = std::make_shared<const std::string>(compress::Gzip(*json_));
  }
  return gzip_;
}

std::shared_ptr<const std::string> HttpSdBody::GzippedIfReady() const {
  // A compression in progress holds the lock for milliseconds; the caller must not wait.
  if (!mu_.TryLock()) {
    return nullptr;
  }
  std::shared_ptr<const std::string> gzip = gzip_;
  mu_.Unlock();
  return gzip;
}

const PlacedService* NamespacePlacement::Find(std::string_view id) const {
  const PlacedPtr* placed = all_.Find(id);
  return placed == nullptr ? nullptr : placed->get();
}

const PlacedMap& NamespacePlacement::On(std::string_view server) const {
  static const PlacedMap no_services;
  auto it = by_server_.find(server);
  return it == by_server_.end() ? no_services : it->second;
}

std::map<std::string, int64_t> NamespacePlacement::Counts() const {
  std::map<std::string, int64_t> counts;
  for (const auto& [server, services] : by_server_) {
    counts[server] = static_cast<int64_t>(services.size());
  }
  return counts;
}

// The order of groups in an answer: targetgroup::FromServices' order (by canonical endpoint; in
// one namespace, ties by name and id), so the bytes equal ToHttpSdJson(FromServices(services of
// the slice)).
bool HttpSdCache::InAnswerOrder(const Part& a, const Part& b) {
  return std::tie(a.group->endpoint, a.placed->service->name, a.placed->service->id) <
         std::tie(b.group->endpoint, b.placed->service->name, b.placed->service->id);
}

// Services that cannot be rendered are left out, as targetgroup::FromServices does: the view
// sets stored records that cannot be served aside before placement, and nothing else may fail a
// whole answer.
HttpSdCache::Rendered HttpSdCache::Render(const PlacedMap& slice, ExportConfig config,
                                          const Entry* previous, BufferPool& buffers) {
  std::shared_ptr<const Parts> parts;
  std::vector<std::unique_ptr<RenderedGroup>> uncached;
  if (config != ExportConfig::kDisabled) {
    if (previous != nullptr && previous->parts != nullptr) {
      parts = MergeChanges(slice, config, *previous);
    }
    if (parts == nullptr) {
      auto all = std::make_shared<Parts>();
      all->reserve(slice.size());
      slice.ForEach([&](std::string_view, const PlacedPtr& placed) {
        const RenderedGroup& group = placed->rendered.Get(*placed->service, config, uncached);
        if (!group.json.empty()) {
          all->push_back({&group, placed.get()});
        }
      });
      std::sort(all->begin(), all->end(), InAnswerOrder);
      parts = std::move(all);
    }
  }
  size_t bytes = 2;
  if (parts != nullptr) {
    for (const Part& part : *parts) {
      bytes += part.group->json.size() + 1;
    }
  }
  std::string json = buffers.Take(bytes);
  // The ETag hashes the groups' hashes, 8 bytes a group, instead of every byte of the answer
  // (a tenth of rendering one): the same groups in the same order, the same answer and tag.
  std::string group_hashes;
  json.push_back('[');
  if (parts != nullptr) {
    group_hashes.reserve(parts->size() * sizeof(uint64_t));
    for (size_t i = 0; i < parts->size(); ++i) {
      if (i > 0) {
        json.push_back(',');
      }
      const RenderedGroup& group = *(*parts)[i].group;
      json += group.json;
      AppendLittleEndian(group.hash, group_hashes);
    }
  }
  json.push_back(']');
  std::string etag = fmt::format("\"{:016x}-{:x}\"", hash::Crc64Xz(group_hashes), json.size());
  return {
      .body = std::make_shared<const HttpSdBody>(buffers.Share(std::move(json)), std::move(etag)),
      // Groups rendered for another config than their slot's die with this call.
      .parts = uncached.empty() ? std::move(parts) : nullptr};
}

// The parts of `slice` from those of the previous version: the groups that left are dropped,
// the ones that came are sorted and merged in. nullptr when too much changed for that to pay.
std::shared_ptr<const HttpSdCache::Parts> HttpSdCache::MergeChanges(const PlacedMap& slice,
                                                                    ExportConfig config,
                                                                    const Entry& previous) {
  std::vector<const PlacedService*> gone;
  std::vector<const PlacedService*> came;
  PlacedMap::Diff(
      previous.slice, slice,
      [&](std::string_view, const PlacedPtr& old) { gone.push_back(old.get()); },
      [&](std::string_view, const PlacedPtr& added) { came.push_back(added.get()); },
      [&](std::string_view, const PlacedPtr& old, const PlacedPtr& changed) {
        gone.push_back(old.get());
        came.push_back(changed.get());
      });
  if (gone.size() + came.size() > slice.size() / 4 + 16) {
    return nullptr;
  }
  std::vector<std::unique_ptr<RenderedGroup>> uncached;
  Parts added;
  added.reserve(came.size());
  for (const PlacedService* placed : came) {
    const RenderedGroup& group = placed->rendered.Get(*placed->service, config, uncached);
    if (!group.json.empty()) {
      added.push_back({&group, placed});
    }
  }
  if (!uncached.empty()) {
    return nullptr;
  }
  std::sort(added.begin(), added.end(), InAnswerOrder);
  std::sort(gone.begin(), gone.end());
  auto parts = std::make_shared<Parts>();
  parts->reserve(previous.parts->size() + added.size());
  auto next_added = added.begin();
  for (const Part& part : *previous.parts) {
    if (std::binary_search(gone.begin(), gone.end(), part.placed)) {
      continue;
    }
    for (; next_added != added.end() && InAnswerOrder(*next_added, part); ++next_added) {
      parts->push_back(*next_added);
    }
    parts->push_back(part);
  }
  parts->insert(parts->end(), next_added, added.end());
  return parts;
}

absl::StatusOr<std::shared_ptr<const HttpSdBody>> HttpSdCache::Get(std::string_view server,
                                                                   std::string_view ns,
                                                                   ExportConfig config,
                                                                   const PlacedMap& slice) {
  const std::tuple<std::string, std::string, ExportConfig> key{server, ns, config};
  // Rendering happens outside the lock, from a copy of the previous entry (which keeps the
  // services its parts point to alive); two requests racing for the same version render the
  // same bytes and either may be kept.
  Entry previous;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      if (it->second.slice.SameAs(slice)) {
        return it->second.body;
      }
      previous = it->second;
    }
  }
  Rendered rendered =
      Render(slice, config, previous.body == nullptr ? nullptr : &previous, *buffers_);
  absl::MutexLock lock(&mu_);
  Entry& entry = entries_[key];
  entry.slice = slice;
  entry.body = rendered.body;
  entry.parts = std::move(rendered.parts);
  return rendered.body;
}

std::shared_ptr<const HttpSdBody> HttpSdCache::Find(std::string_view server, std::string_view ns,
                                                    ExportConfig config, const PlacedMap& slice) {
  const std::tuple<std::string, std::string, ExportConfig> key{server, ns, config};
  absl::MutexLock lock(&mu_);
  if (auto it = entries_.find(key); it != entries_.end() && it->second.slice.SameAs(slice)) {
    return it->second.body;
  }
  return nullptr;
}

void HttpSdCache::Retain(const repo::Snapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  std::erase_if(entries_, [&snapshot](const auto& entry) {
    const auto& [server, ns, config] = entry.first;
    return !snapshot.servers.contains(server) || !snapshot.services.contains(ns);
  });
}

std::shared_ptr<const std::vector<std::string>> ServerListPool::Intern(
    std::vector<std::string> servers) {
  absl::MutexLock lock(&mu_);
  auto it = lists_.find(servers);
  if (it != lists_.end()) {
    if (std::shared_ptr<const std::vector<std::string>> list = it->second.lock()) {
      return list;
    }
  }
  auto list = std::make_shared<const std::vector<std::string>>(servers);
  if (it != lists_.end()) {
    it->second = list;
  } else {
    lists_.emplace(std::move(servers), list);
  }
  // Lists of server sets no longer in use go once the pool has doubled since the last sweep.
  if (lists_.size() >= 2 * swept_size_) {
    std::erase_if(lists_, [](const auto& entry) { return entry.second.expired(); });
    swept_size_ = std::max<size_t>(lists_.size(), 16);
  }
  return list;
}

CandidateCache::CandidateCache(const repo::Snapshot& snapshot) {
  servers_.reserve(snapshot.servers.size());
  for (const auto& [name, server] : snapshot.servers) {
    servers_.push_back(server);
  }
}

std::shared_ptr<const std::vector<std::string>> CandidateCache::For(
    const std::string& selector_text) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = cache_.find(selector_text); it != cache_.end()) {
      return it->second;
    }
  }
  std::vector<std::string> candidates;
  if (absl::StatusOr<selector::Selector> parsed = selector::Selector::Parse(selector_text);
      parsed.ok()) {
    candidates = placement::Candidates(servers_, *parsed);
  }
  auto shared = std::make_shared<const std::vector<std::string>>(std::move(candidates));
  absl::MutexLock lock(&mu_);
  return cache_.try_emplace(selector_text, std::move(shared)).first->second;
}

std::shared_ptr<const Placed> Placed::Compute(std::shared_ptr<const repo::Snapshot> snapshot,
                                              const Placed* previous,
                                              const placement::Settings& fallback) {
  std::shared_ptr<Placed> placed(new Placed());
  placed->settings_ = snapshot->placement.value_or(fallback);
  const bool same_inputs = previous != nullptr && previous->settings_ == placed->settings_ &&
                           SamePlacementInputs(*previous->snapshot_, *snapshot);
  placed->candidates_ =
      same_inputs ? previous->candidates_ : std::make_shared<CandidateCache>(*snapshot);
  placed->http_sd_ = previous != nullptr ? previous->http_sd_ : std::make_shared<HttpSdCache>();
  placed->server_lists_ =
      previous != nullptr ? previous->server_lists_ : std::make_shared<ServerListPool>();
  Placer placer(*placed->candidates_, *placed->server_lists_, placed->settings_);
  for (const auto& [ns, services] : snapshot->services) {
    const NamespacePlacement* before = previous == nullptr ? nullptr : previous->In(ns);
    if (before == nullptr) {
      placed->namespaces_.emplace(ns, PlacementBuilder::PlaceAll(services, placer));
    } else if (same_inputs && before->services_.SameAs(services)) {
      placed->namespaces_.emplace(ns, previous->namespaces_.find(ns)->second);
    } else {
      placed->namespaces_.emplace(
          ns, PlacementBuilder::PlaceChanges(*before, services, placer, !same_inputs));
    }
  }
  if (previous != nullptr &&
      (!same_inputs || previous->snapshot_->services.size() != snapshot->services.size())) {
    placed->http_sd_->Retain(*snapshot);
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
  const PlacedService* placed = placement == nullptr ? nullptr : placement->Find(service.id);
  result.servers = placed == nullptr ? std::vector<std::string>{} : *placed->servers;
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

std::shared_ptr<const std::vector<std::string>> Placed::CandidatesFor(
    const std::string& selector) const {
  return candidates_->For(selector);
}

absl::StatusOr<std::shared_ptr<const HttpSdBody>> Placed::HttpSd(std::string_view server,
                                                                 std::string_view ns,
                                                                 ExportConfig config) const {
  const NamespacePlacement* placement = In(ns);
  static const PlacedMap no_services;
  return http_sd_->Get(server, ns, config,
                       placement == nullptr ? no_services : placement->On(server));
}

std::shared_ptr<const HttpSdBody> Placed::CachedHttpSd(std::string_view server, std::string_view ns,
                                                       ExportConfig config) const {
  const NamespacePlacement* placement = In(ns);
  static const PlacedMap no_services;
  return http_sd_->Find(server, ns, config,
                        placement == nullptr ? no_services : placement->On(server));
}

}  // namespace discovery::readmodel
