#include "repo/view.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "fmt/format.h"

#include "common/format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repo/codec.h"

namespace discovery::repo {

// Watch responses handed from the store's watch thread to the view's thread.
struct View::Pending {
  absl::Mutex mu;
  std::deque<store::WatchResponse> queue ABSL_GUARDED_BY(mu);
  bool stopped ABSL_GUARDED_BY(mu) = false;
};

namespace {

// Reasons quote what was stored (an endpoint may be megabytes); logs and answers get the start.
constexpr size_t kMaxReasonBytes = 1024;

std::string BoundedReason(std::string_view reason) {
  if (reason.size() <= kMaxReasonBytes) {
    return std::string{reason};
  }
  size_t size = kMaxReasonBytes;
  while (size > 0 && (static_cast<unsigned char>(reason[size]) & 0xc0) == 0x80) {
    --size;
  }
  return fmt::format("{}... ({} bytes)", reason.substr(0, size), reason.size());
}

std::string KindName(Keys::Parsed::Kind kind) {
  switch (kind) {
    case Keys::Parsed::Kind::kNamespace:
      return "namespace";
    case Keys::Parsed::Kind::kServer:
      return "server";
    case Keys::Parsed::Kind::kService:
      return "service";
    case Keys::Parsed::Kind::kPlacementSettings:
      return "settings";
    case Keys::Parsed::Kind::kRevokedToken:
      return "revoked-token";
    case Keys::Parsed::Kind::kOther:
      break;
  }
  return "other";
}

// The one place where a stored service is accepted or classified invalid. Returns the service,
// or the reason it is left out: it does not decode, does not match its key, or cannot be served
// (model CheckStoredService: endpoint does not parse, over a record limit). `shown` receives
// what an operator is shown of an invalid record: as far as it decoded, clamped to the limits,
// under its key's namespace and id, placed nowhere.
absl::StatusOr<Service> ClassifyService(const Keys::Parsed& parsed, std::string_view value,
                                        Service& shown) {
  absl::StatusOr<Service> service = DecodeService(value);
  absl::Status problem = service.status();
  if (service.ok()) {
    if (service->namespace_name != parsed.name || service->id != parsed.id) {
      problem = absl::DataLossError(fmt::format(
          "service record names namespace '{}' and id '{}', which does not match its key",
          service->namespace_name, service->id));
    } else {
      problem = CheckStoredService(*service);
    }
  }
  if (problem.ok()) {
    return service;
  }
  shown = service.ok() ? ClampToLimits(*std::move(service)) : Service{};
  shown.namespace_name = parsed.name;
  shown.id = parsed.id;
  shown.servers.clear();
  return absl::Status(problem.code(), BoundedReason(std::string{problem.message()}));
}

// A service record classified ahead of the Applier: on a load, by several threads at once.
struct Classified {
  ServicePtr service;    // accepted, or
  absl::Status problem;  // the reason it is left out,
  ServicePtr shown;      // with what an operator is shown of it
};

Classified Classify(const Keys::Parsed& parsed, std::string_view value) {
  Service shown;
  absl::StatusOr<Service> service = ClassifyService(parsed, value, shown);
  if (service.ok()) {
    return {.service = std::make_shared<const Service>(*std::move(service))};
  }
  return {.problem = service.status(), .shown = std::make_shared<const Service>(std::move(shown))};
}

// Below this many records a load is classified on the view's thread alone.
constexpr size_t kMinParallelRecords = 4096;
constexpr unsigned kMaxClassifyThreads = 8;

// The service records of a loaded range classified in parallel (decoding them is most of a
// load's work and independent per record); entries of other kinds stay empty. Only the
// classification runs on the extra threads: the Applier still takes the records in key order,
// so what is logged and stored does not depend on the threads.
std::vector<std::optional<Classified>> ClassifyServices(const Keys& keys,
                                                        const std::vector<store::KeyValue>& kvs) {
  std::vector<std::optional<Classified>> classified(kvs.size());
  auto classify = [&keys, &kvs, &classified](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const Keys::Parsed parsed = keys.Parse(kvs[i].key);
      if (parsed.kind == Keys::Parsed::Kind::kService) {
        classified[i] = Classify(parsed, kvs[i].value);
      }
    }
  };
  const size_t threads =
      kvs.size() < kMinParallelRecords
          ? 1
          : std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxClassifyThreads);
  const size_t chunk = (kvs.size() + threads - 1) / threads;
  {
    std::vector<std::jthread> workers;
    for (size_t t = 1; t < threads; ++t) {
      workers.emplace_back(classify, std::min(kvs.size(), t * chunk),
                           std::min(kvs.size(), (t + 1) * chunk));
    }
    classify(0, std::min(kvs.size(), chunk));
  }  // joins the workers
  return classified;
}

// Applies store changes to a working snapshot: each service put or delete is one O(log n)
// update of its namespace's persistent map, so snapshots already handed out stay untouched.
// An initial load (`bulk`) instead collects each namespace's services in key order and builds
// its map at once in O(n). `known` is the last published snapshot, if any: records it already held
// as invalid at the same revision are not logged again when the whole prefix is loaded anew.
class Applier {
 public:
  Applier(const Keys& keys, Snapshot& working, bool bulk = false, const Snapshot* known = nullptr)
      : keys_(keys), working_(working), bulk_(bulk), known_(known) {}
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;
  Applier(Applier&&) = delete;
  Applier& operator=(Applier&&) = delete;

  ~Applier() {
    for (auto& [ns, entries] : loaded_) {
      if (!entries.empty()) {
        working_.services[ns] = ServiceMap::FromSorted(std::move(entries));
      }
    }
  }

  // `classified`: the record already classified (a service on a load), or nullptr.
  void Put(const store::KeyValue& kv, std::optional<Classified>* classified = nullptr) {
    const Keys::Parsed parsed = keys_.Parse(kv.key);
    switch (parsed.kind) {
      case Keys::Parsed::Kind::kNamespace:
        Store(kv, DecodeNamespace(kv.value), [&](Namespace ns) {
          working_.namespaces[parsed.name] = std::move(ns);
          working_.namespace_revisions[parsed.name] = kv.mod_revision;
        });
        return;
      case Keys::Parsed::Kind::kServer:
        Store(kv, DecodeServer(kv.value),
              [&](Server server) { working_.servers[parsed.name] = std::move(server); });
        return;
      case Keys::Parsed::Kind::kService: {
        Classified service = classified != nullptr && classified->has_value()
                                 ? *std::move(*classified)
                                 : Classify(parsed, kv.value);
        if (!service.problem.ok()) {
          EraseService(parsed.name, parsed.id);
          SetInvalid(kv, std::string{service.problem.message()}, std::move(service.shown));
          return;
        }
        working_.invalid.erase(kv.key);
        PutService(parsed.name, std::move(service.service));
        return;
      }
      case Keys::Parsed::Kind::kPlacementSettings:
        Store(kv, DecodePlacementSettings(kv.value),
              [&](placement::Settings settings) { working_.placement = settings; });
        return;
      case Keys::Parsed::Kind::kRevokedToken:
        // The key names the token: a record naming another id must not revoke that one.
        Store(kv, DecodeRevocation(kv.value), [&](TokenRevocation revocation) {
          revocation.id = parsed.name;
          working_.revoked_tokens[parsed.name] = std::move(revocation);
        });
        return;
      case Keys::Parsed::Kind::kOther:
        return;
    }
  }

  void Delete(const std::string& key) {
    working_.invalid.erase(key);
    const Keys::Parsed parsed = keys_.Parse(key);
    switch (parsed.kind) {
      case Keys::Parsed::Kind::kNamespace:
        working_.namespaces.erase(parsed.name);
        working_.namespace_revisions.erase(parsed.name);
        return;
      case Keys::Parsed::Kind::kServer:
        working_.servers.erase(parsed.name);
        return;
      case Keys::Parsed::Kind::kService:
        EraseService(parsed.name, parsed.id);
        return;
      case Keys::Parsed::Kind::kPlacementSettings:
        working_.placement.reset();
        return;
      case Keys::Parsed::Kind::kRevokedToken:
        working_.revoked_tokens.erase(parsed.name);
        return;
      case Keys::Parsed::Kind::kOther:
        return;
    }
  }

 private:
  template <typename T, typename Insert>
  void Store(const store::KeyValue& kv, absl::StatusOr<T> record, Insert insert) {
    if (!record.ok()) {
      SetInvalid(kv, std::string{record.status().message()}, nullptr);
      return;
    }
    working_.invalid.erase(kv.key);
    insert(*std::move(record));
  }

  // Logged once per key and revision: not again for every answer, nor on a reload.
  void SetInvalid(const store::KeyValue& kv, std::string reason, ServicePtr shown) {
    auto seen = [&kv](const Snapshot& snapshot) {
      auto it = snapshot.invalid.find(kv.key);
      return it != snapshot.invalid.end() && it->second.mod_revision == kv.mod_revision;
    };
    if (!seen(working_) && (known_ == nullptr || !seen(*known_))) {
      LogWarn("stored record left out: it cannot be used; fix or remove it",
              {{"key", kv.key}, {"revision", std::to_string(kv.mod_revision)}, {"reason", reason}});
    }
    working_.invalid[kv.key] = InvalidRecord{.kind = KindName(keys_.Parse(kv.key).kind),
                                             .reason = std::move(reason),
                                             .mod_revision = kv.mod_revision,
                                             .service = std::move(shown)};
  }

  void PutService(const std::string& ns, ServicePtr service) {
    const std::string_view id = service->id;
    if (service->HasTtl()) {
      ++working_.services_with_ttl;
    }
    if (bulk_) {
      // A range comes in key order, so a namespace's ids arrive ascending.
      loaded_[ns].emplace_back(id, std::move(service));
      return;
    }
    ServiceMap& services = working_.services[ns];
    if (const ServicePtr* old = services.Find(id); old != nullptr && (*old)->HasTtl()) {
      --working_.services_with_ttl;
    }
    services = services.Insert(id, std::move(service));
  }

  void EraseService(const std::string& ns, const std::string& id) {
    if (bulk_) {
      return;  // a range holds each key once: nothing of it was loaded
    }
    auto it = working_.services.find(ns);
    if (it == working_.services.end()) {
      return;
    }
    if (const ServicePtr* old = it->second.Find(std::string_view{id});
        old != nullptr && (*old)->HasTtl()) {
      --working_.services_with_ttl;
      // Gone at or after its expiry: the store expired it (an unregistration comes earlier).
      if (absl::Now() >= (*old)->expires) {
        ++working_.expired_services;
      }
    }
    it->second = it->second.Erase(std::string_view{id});
    if (it->second.empty()) {
      working_.services.erase(it);
    }
  }

  const Keys& keys_;
  Snapshot& working_;
  const bool bulk_;
  const Snapshot* known_;
  std::map<std::string, std::vector<std::pair<std::string_view, ServicePtr>>> loaded_;
};

// A load frees as much as it keeps (the whole range as read, the decoding's and the first
// placement's temporaries), scattered between the records it keeps. glibc returns free memory
// to the system only from the top of a heap, so without this those pages would stay resident
// for the life of the process: at a million services, some hundred MiB.
void ReleaseFreedMemory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace

const ServiceMap* Snapshot::ServicesIn(std::string_view ns) const {
  auto it = services.find(ns);
  return it == services.end() ? nullptr : &it->second;
}

const Service* Snapshot::FindService(std::string_view ns, std::string_view id) const {
  const ServiceMap* map = ServicesIn(ns);
  const ServicePtr* service = map == nullptr ? nullptr : map->Find(id);
  return service == nullptr ? nullptr : service->get();
}

std::map<std::pair<std::string, std::string>, int64_t> InvalidRecordCounts(
    const Snapshot& snapshot) {
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  for (const auto& [key, record] : snapshot.invalid) {
    ++counts[{record.kind, record.service ? record.service->namespace_name : std::string{}}];
  }
  return counts;
}

size_t Snapshot::ServiceCount() const {
  size_t count = 0;
  for (const auto& [ns, map] : services) {
    count += map.size();
  }
  return count;
}

View::View(store::Store& store, Keys keys, ViewOptions options, Listener listener)
    : store_(store),
      keys_(std::move(keys)),
      options_(options),
      listener_(std::move(listener)),
      health_(absl::UnavailableError("the view has not loaded the store yet")),
      pending_(std::make_unique<Pending>()),
      thread_([this](const std::stop_token& stop) { Run(stop); }) {}

View::~View() {
  thread_.request_stop();
  thread_.join();
}

std::shared_ptr<const Snapshot> View::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

bool View::WaitForRevision(int64_t revision, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, revision]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return current_ != nullptr && current_revision_ >= revision;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

absl::Status View::Health() const {
  absl::MutexLock lock(&mu_);
  // A deep copy: a shared status payload would be released by the view's thread while the
  // caller still reads its message, which TSan flags (absl's refcount is not visible to it).
  return {health_.code(), health_.message()};
}

void View::SetHealth(absl::Status status) {
  absl::MutexLock lock(&mu_);
  health_ = std::move(status);
}

void View::ProbeStore() {
  absl::StatusOr<int64_t> revision = store_.CurrentRevision();
  SetHealth(revision.ok() ? absl::OkStatus() : revision.status());
}

void View::Publish(const Snapshot& working) {
  auto snapshot = std::make_shared<const Snapshot>(working);
  {
    absl::MutexLock lock(&mu_);
    current_ = snapshot;
    current_revision_ = snapshot->revision;
    health_ = absl::OkStatus();
  }
  if (listener_) {
    listener_(snapshot);
  }
}

void View::Run(const std::stop_token& stop) {
  Pending& pending = *pending_;
  std::stop_callback wake(stop, [&pending] {
    absl::MutexLock lock(&pending.mu);
    pending.stopped = true;
  });
  absl::Duration backoff = options_.retry_backoff;
  while (!stop.stop_requested()) {
    absl::Status status = FollowOnce(stop);
    if (stop.stop_requested()) {
      return;
    }
    if (status.ok()) {  // the watch ended on compaction: load again at once
      backoff = options_.retry_backoff;
      continue;
    }
    SetHealth(std::move(status));
    absl::MutexLock lock(&pending.mu);
    auto stopped = [&pending]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending.mu) { return pending.stopped; };
    pending.mu.AwaitWithTimeout(absl::Condition(&stopped), backoff);
    backoff = std::min(backoff * 2, options_.max_retry_backoff);
  }
}

absl::Status View::FollowOnce(const std::stop_token& stop) {
  DISCOVERY_ASSIGN_OR_RETURN(store::RangeResult range, store_.Range(keys_.All()));
  Snapshot working;
  working.revision = range.revision;
  {
    const std::shared_ptr<const Snapshot> known = Current();
    // A counter: it goes on across reloads.
    working.expired_services = known != nullptr ? known->expired_services : 0;
    std::vector<std::optional<Classified>> classified = ClassifyServices(keys_, range.kvs);
    Applier applier(keys_, working, /*bulk=*/true, known.get());
    for (size_t i = 0; i < range.kvs.size(); ++i) {
      applier.Put(range.kvs[i], &classified[i]);
    }
  }
  range.kvs.clear();
  range.kvs.shrink_to_fit();
  Publish(working);
  ReleaseFreedMemory();

  Pending& pending = *pending_;
  {
    absl::MutexLock lock(&pending.mu);
    pending.queue.clear();
  }
  // Held, not read: the watch runs until this handle is destroyed on return.
  DISCOVERY_ASSIGN_OR_RETURN(
      const std::unique_ptr<store::WatchHandle> watch,
      store_.Watch(keys_.All(), range.revision + 1, [&pending](const store::WatchResponse& r) {
        absl::MutexLock lock(&pending.mu);
        pending.queue.push_back(r);
      }));

  while (!stop.stop_requested()) {
    std::deque<store::WatchResponse> batch;
    {
      absl::MutexLock lock(&pending.mu);
      auto ready = [&pending]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending.mu) {
        return pending.stopped || !pending.queue.empty();
      };
      pending.mu.AwaitWithTimeout(absl::Condition(&ready), options_.store_probe_interval);
      if (pending.stopped) {
        return absl::OkStatus();
      }
      batch.swap(pending.queue);
    }
    if (batch.empty()) {
      ProbeStore();
      continue;
    }
    bool compacted = false;
    {
      Applier applier(keys_, working);
      for (const store::WatchResponse& response : batch) {
        if (response.compact_revision != 0) {
          compacted = true;
          break;
        }
        for (const store::WatchEvent& event : response.events) {
          if (event.type == store::WatchEvent::Type::kPut) {
            applier.Put(event.kv);
          } else {
            applier.Delete(event.kv.key);
          }
        }
        working.revision = std::max(working.revision, response.revision);
      }
    }
    if (compacted) {
      return absl::OkStatus();
    }
    Publish(working);
  }
  return absl::OkStatus();
}

}  // namespace discovery::repo
