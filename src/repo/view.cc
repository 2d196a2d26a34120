#include "repo/view.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "fmt/format.h"

#include "common/format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
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
  // The accepted service's id hashed as the maps hash it, while the id is at hand: a load
  // builds its maps from these (ServiceMap::FromSorted) instead of hashing a million cold ids.
  ServiceMap::priority_type priority = 0;
};

Classified Classify(const Keys::Parsed& parsed, std::string_view value) {
  Service shown;
  absl::StatusOr<Service> service = ClassifyService(parsed, value, shown);
  if (service.ok()) {
    auto accepted = std::make_shared<const Service>(*std::move(service));
    const ServiceMap::priority_type priority = ServiceMap::KeyPriority(accepted->id);
    return {.service = std::move(accepted), .priority = priority};
  }
  return {.problem = service.status(), .shown = std::make_shared<const Service>(std::move(shown))};
}

// A load reads the store in batches of this many records. A load of one batch is classified on
// the view's thread alone.
constexpr size_t kLoadBatch = 4096;
constexpr unsigned kMaxClassifyThreads = 8;

// The records of a load, classified by several threads while the store still reads later ones
// and applied in key order as soon as they are: decoding is most of a load's work and
// independent per record, and a range read of a million records alone would leave the other
// cores idle for a second. Only the classification runs on the extra threads; the Applier takes
// the records in key order on one applying thread, so what is logged and stored does not depend
// on the threads.
class LoadClassifier {
 public:
  struct Batch {
    std::vector<store::KeyValue> kvs;
    std::vector<std::optional<Classified>> classified;  // per record; empty if not a service
    bool done = false;                                  // classified
  };

  explicit LoadClassifier(const Keys& keys) : keys_(keys) {}
  ~LoadClassifier() {
    Abandon();
    workers_.clear();  // joins
  }
  LoadClassifier(const LoadClassifier&) = delete;
  LoadClassifier& operator=(const LoadClassifier&) = delete;
  LoadClassifier(LoadClassifier&&) = delete;
  LoadClassifier& operator=(LoadClassifier&&) = delete;

  // The next batch of the range, from the reading thread. The second one starts the workers.
  void Add(std::vector<store::KeyValue> kvs) {
    size_t added = 0;
    {
      absl::MutexLock lock(&mu_);
      batches_.push_back({.kvs = std::move(kvs)});
      added = batches_.size();
    }
    if (added == 2) {
      const size_t threads =
          std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxClassifyThreads);
      for (size_t i = 0; i < threads; ++i) {
        workers_.emplace_back([this] {
          NameThisThread("view-load");
          while (ClassifyNext(/*wait=*/true)) {
          }
        });
      }
    }
  }

  // The range is read: no batch follows. A single batch is classified here, on this thread.
  void Close() {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    if (workers_.empty()) {
      ClassifyNext(/*wait=*/false);
    }
  }

  // The read failed half-way: classifies nothing more, and NextClassified returns nullopt from
  // now on; the batches left behind go with this.
  void Abandon() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    abandoned_ = true;
    next_ = batches_.size();
  }

  // From the applying thread, while the range is still read: the next batch in the order added
  // once it is classified; nullopt after the last one once the range is read (or abandoned).
  // The applying thread decodes nothing: the records it frees as it applies them are what the
  // reading thread's next batches are read into, so a load holds a few batches as read at a
  // time rather than the whole range.
  std::optional<Batch> NextClassified() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](LoadClassifier* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->abandoned_ ||
                 (self->taken_ < self->batches_.size() && self->batches_[self->taken_].done) ||
                 (self->closed_ && self->taken_ == self->batches_.size());
        },
        this));
    if (abandoned_ || taken_ == batches_.size()) {
      return std::nullopt;
    }
    // Its worker is done with it; the others work on later batches, which stay where they are.
    return std::move(batches_[taken_++]);
  }

 private:
  // Takes the next batch nobody took and classifies it outside the lock. With `wait`, waits for
  // one to be added until the range is read. False when there is none left.
  bool ClassifyNext(bool wait) {
    Batch* batch = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (wait) {
        mu_.Await(absl::Condition(
            +[](LoadClassifier* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->closed_ || self->next_ < self->batches_.size();
            },
            this));
      }
      if (next_ == batches_.size()) {
        return false;
      }
      // A deque's elements stay where they are while others are appended.
      batch = &batches_[next_++];
    }
    std::vector<std::optional<Classified>> classified(batch->kvs.size());
    for (size_t i = 0; i < batch->kvs.size(); ++i) {
      const Keys::Parsed parsed = keys_.Parse(batch->kvs[i].key);
      if (parsed.kind == Keys::Parsed::Kind::kService) {
        classified[i] = Classify(parsed, batch->kvs[i].value);
      }
    }
    absl::MutexLock lock(&mu_);
    batch->classified = std::move(classified);
    batch->done = true;
    return true;
  }

  const Keys& keys_;
  absl::Mutex mu_;
  std::deque<Batch> batches_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;   // the first batch no thread took to classify yet
  size_t taken_ ABSL_GUARDED_BY(mu_) = 0;  // the first batch NextClassified did not return yet
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::jthread> workers_;  // only the reading thread starts and joins them
};

// The services with a TTL of a working snapshot in the order of their deadline, so that the view
// finds what has expired without looking at the others: O(log n) per change, a few dozen bytes
// per service. Entries point at the services the working snapshot holds; the Applier keeps the
// two in step.
class ExpiryIndex {
 public:
  using Entry = std::pair<absl::Time, const Service*>;

  void Add(const Service& service) {
    if (service.HasTtl()) {
      entries_.insert({service.expires, &service});
    }
  }
  void Remove(const Entry& entry) { entries_.erase(entry); }
  // The earliest deadline; InfiniteFuture when there is none.
  absl::Time Next() const {
    return entries_.empty() ? absl::InfiniteFuture() : entries_.begin()->first;
  }
  // The entry of the earliest deadline when it is at or before `now`.
  std::optional<Entry> Due(absl::Time now) const {
    if (entries_.empty() || entries_.begin()->first > now) {
      return std::nullopt;
    }
    return *entries_.begin();
  }

 private:
  struct Before {
    bool operator()(const Entry& a, const Entry& b) const {
      if (a.first != b.first) {
        return a.first < b.first;
      }
      return std::less<>()(a.second, b.second);
    }
  };
  absl::btree_set<Entry, Before> entries_;
};

// Applies store changes to a working snapshot: each service put or delete is one O(log n)
// update of its namespace's persistent map, so snapshots already handed out stay untouched.
// An initial load (`bulk`) instead collects each namespace's services in key order and builds
// its map at once in O(n). `known` is the last published snapshot, if any: records it already held
// as invalid at the same revision are not logged again when the whole prefix is loaded anew.
// `expiry` holds the working snapshot's services with a TTL; `clock` is what their deadlines are
// compared with.
class Applier {
 public:
  Applier(const Keys& keys, const store::Store& store, Snapshot& working, ExpiryIndex& expiry,
          const std::function<absl::Time()>& clock, bool bulk = false,
          const Snapshot* known = nullptr)
      : keys_(keys),
        store_(store),
        working_(working),
        expiry_(expiry),
        clock_(clock),
        bulk_(bulk),
        known_(known) {}
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;
  Applier(Applier&&) = delete;
  Applier& operator=(Applier&&) = delete;

  ~Applier() {
    ApplyDeferredPuts();
    // Both maps are keyed by the id as a string_view, so the priorities are the same.
    static_assert(std::is_same_v<ServiceMap::key_type, TtlServiceMap::key_type>);
    for (auto& [ns, loaded] : loaded_) {
      if (!loaded.entries.empty()) {
        working_.services[ns] =
            ServiceMap::FromSorted(std::move(loaded.entries), loaded.priorities);
      }
    }
    for (auto& [ns, loaded] : loaded_ttl_) {
      working_.ttl_services[ns] =
          TtlServiceMap::FromSorted(std::move(loaded.entries), loaded.priorities);
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
        PutService(parsed.name, std::move(service.service), kv, service.priority);
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

  // `expired`: the store deleted the key at its expiry (store::WatchEvent::expired).
  void Delete(const std::string& key, bool expired = false) {
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
        EraseService(parsed.name, parsed.id, /*count_expiry=*/true, expired);
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

  // Removes every service whose deadline is at or before `now` from the working snapshot, as
  // the store's delete of its record would (the store still holds the record until its own
  // expiry deletes it; that delete then finds nothing). Counted as expired unless
  // `count_only_shown_in` is set and did not show the service: a reload finds again what an
  // earlier snapshot had already removed.
  void Expire(absl::Time now, const Snapshot* count_only_shown_in = nullptr) {
    ApplyDeferredPuts();
    while (std::optional<ExpiryIndex::Entry> due = expiry_.Due(now)) {
      const std::string ns = due->second->namespace_name;
      const std::string id = due->second->id;
      if (working_.FindService(ns, id) != due->second) {
        expiry_.Remove(*due);  // cannot happen: the index follows the snapshot
        continue;
      }
      const bool count =
          count_only_shown_in == nullptr || count_only_shown_in->FindService(ns, id) != nullptr;
      EraseService(ns, id, count);
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

  // `priority`: the id's ServiceMap::KeyPriority.
  void PutService(const std::string& ns, ServicePtr service, const store::KeyValue& kv,
                  ServiceMap::priority_type priority) {
    const std::string_view id = service->id;
    std::optional<TtlService> ttl;
    if (service->HasTtl()) {
      ttl = TtlService{.service = service,
                       .mod_revision = kv.mod_revision,
                       .lease = kv.lease,
                       .renews_in_place = store_.RenewsInPlace(kv)};
      ++working_.services_with_ttl;
      if (!ttl->renews_in_place) {
        expiry_.Add(*service);
      }
    }
    if (bulk_) {
      // A range comes in key order, so a namespace's ids arrive ascending.
      if (ttl.has_value()) {
        Loaded<TtlService>& loaded = loaded_ttl_[ns];
        loaded.entries.emplace_back(id, *std::move(ttl));
        loaded.priorities.push_back(priority);
      }
      Loaded<ServicePtr>& loaded = loaded_[ns];
      loaded.entries.emplace_back(id, std::move(service));
      loaded.priorities.push_back(priority);
      return;
    }
    if (!ttl.has_value()) {
      // A batch of a fleet's registrations: the namespace's tree is updated once for all of
      // them, each node on their paths copied once rather than once per registration.
      deferred_puts_[ns].emplace_back(id, std::move(service));
      return;
    }
    ApplyDeferredPuts(ns);
    ServiceMap& services = working_.services[ns];
    std::optional<ServicePtr> old;
    services = services.Insert(id, std::move(service), &old);
    if (old.has_value()) {
      ForgetTtl(ns, **old);
    }
    if (ttl.has_value()) {
      TtlServiceMap& ttl_services = working_.ttl_services[ns];
      ttl_services = ttl_services.Insert(id, *std::move(ttl));
    }
  }

  // `count_expiry`: count the service as expired when it is gone at or after its deadline, or,
  // when it renews in place, when the store says it deleted it at its expiry (`expired`).
  void EraseService(const std::string& ns, const std::string& id, bool count_expiry = true,
                    bool expired = false) {
    if (bulk_) {
      return;  // a range holds each key once: nothing of it was loaded
    }
    ApplyDeferredPuts(ns);
    auto it = working_.services.find(ns);
    if (it == working_.services.end()) {
      return;
    }
    std::optional<ServicePtr> old;
    it->second = it->second.Erase(std::string_view{id}, &old);
    if (!old.has_value()) {
      return;  // never held, or already removed at its expiry
    }
    // An unregistration comes before the deadline; at or after it, the service expired. The
    // deadline of a record renewed in place is the store's to know.
    if ((*old)->HasTtl() && count_expiry) {
      const TtlService* ttl = working_.FindTtlService(ns, id);
      const bool in_place = ttl != nullptr && ttl->renews_in_place;
      if (in_place ? expired : clock_() >= (*old)->expires) {
        ++working_.expired_services;
      }
    }
    ForgetTtl(ns, **old);
    if (it->second.empty()) {
      working_.services.erase(it);
    }
  }

  // Makes the deferred puts of services without a TTL (of every namespace, or of `ns`) before
  // anything reads those services or changes them otherwise.
  void ApplyDeferredPuts() {
    while (!deferred_puts_.empty()) {
      ApplyDeferredPuts(deferred_puts_.begin());
    }
  }
  void ApplyDeferredPuts(const std::string& ns) {
    if (auto it = deferred_puts_.find(ns); it != deferred_puts_.end()) {
      ApplyDeferredPuts(it);
    }
  }
  void ApplyDeferredPuts(std::map<std::string, std::vector<ServiceMap::Change>>::iterator it) {
    const std::string& ns = it->first;
    std::vector<ServiceMap::Change>& puts = it->second;
    // Apply wants ascending ids without duplicates: of an id put twice, the later put wins.
    std::stable_sort(puts.begin(), puts.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<ServiceMap::Change> changes;
    changes.reserve(puts.size());
    for (ServiceMap::Change& put : puts) {
      if (!changes.empty() && changes.back().first == put.first) {
        changes.back() = std::move(put);
      } else {
        changes.push_back(std::move(put));
      }
    }
    ServiceMap& services = working_.services[ns];
    services = services.Apply(
        std::move(changes),
        [&](const ServiceMap::Change&, const ServicePtr& old) { ForgetTtl(ns, *old); });
    deferred_puts_.erase(it);
  }

  // Takes `old`, which leaves the working snapshot, out of the TTL bookkeeping.
  void ForgetTtl(const std::string& ns, const Service& old) {
    if (!old.HasTtl()) {
      return;
    }
    --working_.services_with_ttl;
    expiry_.Remove({old.expires, &old});
    auto it = working_.ttl_services.find(ns);
    if (it == working_.ttl_services.end()) {
      return;
    }
    it->second = it->second.Erase(std::string_view{old.id});
    if (it->second.empty()) {
      working_.ttl_services.erase(it);
    }
  }

  const Keys& keys_;
  const store::Store& store_;
  Snapshot& working_;
  ExpiryIndex& expiry_;
  const std::function<absl::Time()>& clock_;
  const bool bulk_;
  const Snapshot* known_;
  template <typename V>
  struct Loaded {
    std::vector<std::pair<std::string_view, V>> entries;
    std::vector<ServiceMap::priority_type> priorities;  // of the ids, one per entry
  };
  std::map<std::string, Loaded<ServicePtr>> loaded_;
  std::map<std::string, Loaded<TtlService>> loaded_ttl_;
  // Puts of services without a TTL not yet made in the working snapshot, by namespace.
  std::map<std::string, std::vector<ServiceMap::Change>> deferred_puts_;
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

// A load allocates about a kilobyte per service from several threads at once. glibc grows a
// thread's heap by what each allocation needs, a page or so, and every step is an mprotect that
// holds the address space's lock, which the other threads' page faults then wait for: 141,000
// of them in a start at a million services. Padded to the heap's 64 MiB maximum, each heap is
// mapped whole once (204 mprotects in the same start). The padding ends with the load, so the
// free top of a heap goes back to the system again. Setting it also fixes glibc's mmap and trim
// thresholds at their defaults (128 KiB) for the life of the process instead of letting them
// grow with the largest block freed. What allocates the most after a load (a join's answers,
// listing or unregistering a million services) measured the same within its noise.
class PadHeapGrowth {
 public:
  PadHeapGrowth() { SetTopPad(kLoadTopPad); }
  ~PadHeapGrowth() { SetTopPad(kGlibcTopPad); }
  PadHeapGrowth(const PadHeapGrowth&) = delete;
  PadHeapGrowth& operator=(const PadHeapGrowth&) = delete;
  PadHeapGrowth(PadHeapGrowth&&) = delete;
  PadHeapGrowth& operator=(PadHeapGrowth&&) = delete;

 private:
  static constexpr int kLoadTopPad = 64 << 20;    // a thread heap's largest size
  static constexpr int kGlibcTopPad = 128 << 10;  // glibc's own default
  static void SetTopPad([[maybe_unused]] int bytes) {
#ifdef __GLIBC__
    // glibc's mallopt sets its parameters under the main arena's lock.
    mallopt(M_TOP_PAD, bytes);  // NOLINT(concurrency-mt-unsafe)
#endif
  }
};

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

const TtlService* Snapshot::FindTtlService(std::string_view ns, std::string_view id) const {
  auto it = ttl_services.find(ns);
  return it == ttl_services.end() ? nullptr : it->second.Find(id);
}

std::optional<int64_t> Snapshot::TtlServiceRevision(std::string_view ns,
                                                    std::string_view id) const {
  auto it = ttl_services.find(ns);
  if (it == ttl_services.end()) {
    return std::nullopt;
  }
  const TtlService* found = it->second.Find(id);
  return found == nullptr ? std::nullopt : std::optional<int64_t>(found->mod_revision);
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
      options_(std::move(options)),
      listener_(std::move(listener)),
      health_(absl::UnavailableError("the view has not loaded the store yet")),
      pending_(std::make_unique<Pending>()),
      thread_([this](const std::stop_token& stop) {
        NameThisThread("view");
        Run(stop);
      }) {}

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

bool View::Loading() const {
  absl::MutexLock lock(&mu_);
  return current_ == nullptr && !read_failed_;
}

int64_t View::FailedReads() const {
  absl::MutexLock lock(&mu_);
  return failed_reads_;
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
    {
      absl::MutexLock lock(&mu_);
      read_failed_ = true;
      ++failed_reads_;
      health_ = std::move(status);
    }
    absl::MutexLock lock(&pending.mu);
    auto stopped = [&pending]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending.mu) { return pending.stopped; };
    pending.mu.AwaitWithTimeout(absl::Condition(&stopped), backoff);
    backoff = std::min(backoff * 2, options_.max_retry_backoff);
  }
}

absl::Status View::FollowOnce(const std::stop_token& stop) {
  {
    absl::MutexLock lock(&mu_);
    read_failed_ = false;
  }
  std::optional<PadHeapGrowth> pad_heap_growth(std::in_place);
  Snapshot working;
  ExpiryIndex expiry;
  int64_t loaded = 0;  // the revision read
  {
    const std::shared_ptr<const Snapshot> known = Current();
    // A counter: it goes on across reloads.
    working.expired_services = known != nullptr ? known->expired_services : 0;
    LoadClassifier classifier(keys_);
    auto apply = [&] {
      Applier applier(keys_, store_, working, expiry, options_.clock, /*bulk=*/true, known.get());
      while (std::optional<LoadClassifier::Batch> batch = classifier.NextClassified()) {
        for (size_t i = 0; i < batch->kvs.size(); ++i) {
          applier.Put(batch->kvs[i], &batch->classified[i]);
        }
      }  // frees each batch's records once applied
    };   // builds the maps
    // Batches are applied in key order while later ones are still read and classified: held
    // until the whole range was read, every record as read stayed in memory until then, and
    // the apply followed the read instead of running beside it. The thread starts with the
    // first batch, so a read that fails at once costs no thread.
    std::jthread applying;
    absl::StatusOr<int64_t> read =
        store_.RangeInBatches(keys_.All(), kLoadBatch, [&](std::vector<store::KeyValue> kvs) {
          classifier.Add(std::move(kvs));
          if (!applying.joinable()) {
            applying = std::jthread([&apply] {
              NameThisThread("view-apply");
              apply();
            });
          }
        });
    if (read.ok()) {
      classifier.Close();
    } else {
      classifier.Abandon();
    }
    if (applying.joinable()) {
      applying.join();
    } else if (read.ok()) {
      apply();  // an empty range
    }
    DISCOVERY_ASSIGN_OR_RETURN(loaded, std::move(read));
    working.revision = loaded;
    // A record past its deadline that the store has not deleted yet (a restart, a reload) is not
    // served even once.
    Applier(keys_, store_, working, expiry, options_.clock).Expire(options_.clock(), known.get());
  }  // joins the classifying threads, all done by now
  // The listener places the load, allocating on threads of its own too: still padded.
  Publish(working);
  pad_heap_growth.reset();
  ReleaseFreedMemory();

  Pending& pending = *pending_;
  {
    absl::MutexLock lock(&pending.mu);
    pending.queue.clear();
  }
  // Held, not read: the watch runs until this handle is destroyed on return.
  DISCOVERY_ASSIGN_OR_RETURN(
      const std::unique_ptr<store::WatchHandle> watch,
      store_.Watch(keys_.All(), loaded + 1, [&pending](const store::WatchResponse& r) {
        absl::MutexLock lock(&pending.mu);
        pending.queue.push_back(r);
      }));

  // On the real clock: when the store last said something, and when expiry alone last
  // published a snapshot.
  absl::Time quiet_since = absl::Now();
  absl::Time last_expiry = absl::InfinitePast();
  while (!stop.stop_requested()) {
    // Sleep until a watch event, the next probe, or the next deadline (but not sooner than
    // expiry_interval after the last removal by expiry alone).
    const absl::Time wall = absl::Now();
    absl::Duration wait = quiet_since + options_.store_probe_interval - wall;
    if (const absl::Time next = expiry.Next(); next != absl::InfiniteFuture()) {
      wait = std::min(
          wait, std::max(next - options_.clock(), last_expiry + options_.expiry_interval - wall));
    }
    std::deque<store::WatchResponse> batch;
    {
      absl::MutexLock lock(&pending.mu);
      auto ready = [&pending]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending.mu) {
        return pending.stopped || !pending.queue.empty();
      };
      pending.mu.AwaitWithTimeout(absl::Condition(&ready), std::max(wait, absl::ZeroDuration()));
      if (pending.stopped) {
        return absl::OkStatus();
      }
      batch.swap(pending.queue);
    }
    if (batch.empty()) {
      const absl::Time now = options_.clock();
      if (expiry.Next() <= now && absl::Now() >= last_expiry + options_.expiry_interval) {
        Applier(keys_, store_, working, expiry, options_.clock).Expire(now);
        last_expiry = absl::Now();
        Publish(working);
      }
      if (absl::Now() >= quiet_since + options_.store_probe_interval) {
        ProbeStore();
        quiet_since = absl::Now();
      }
      continue;
    }
    quiet_since = absl::Now();
    bool compacted = false;
    {
      Applier applier(keys_, store_, working, expiry, options_.clock);
      for (const store::WatchResponse& response : batch) {
        if (response.compact_revision != 0) {
          compacted = true;
          break;
        }
        for (const store::WatchEvent& event : response.events) {
          if (event.type == store::WatchEvent::Type::kPut) {
            applier.Put(event.kv);
          } else {
            applier.Delete(event.kv.key, event.expired);
          }
        }
        working.revision = std::max(working.revision, response.revision);
      }
      if (!compacted) {
        applier.Expire(options_.clock());
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
