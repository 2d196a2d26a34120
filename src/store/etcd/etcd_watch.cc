#include "store/etcd/etcd_watch.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

#include "common/thread_name.h"
#include "store/etcd/etcd_lease.h"

namespace discovery::store::etcd_internal {
namespace {

// Questions about ended leases a watch has in flight at once.
constexpr size_t kLeaseQuestions = 8;

// Watch reconnect backoff. Capped low enough that a restarted etcd is picked up quickly, with
// jitter so many watchers of one process do not reconnect in lockstep.
constexpr absl::Duration kWatchBackoffMin = absl::Milliseconds(100);
constexpr absl::Duration kWatchBackoffMax = absl::Seconds(5);

// ---------------------------------------------------------------------------------------------
// EtcdWatch: one Watch bidi stream on its own thread, re-opened after failures.

class EtcdWatch final : public WatchHandle {
 public:
  // Starts watching `prefix` from `start_revision` (> 0) right away.
  EtcdWatch(std::shared_ptr<EtcdClient> client, std::string_view prefix, int64_t start_revision,
            WatchCallback callback)
      : client_(std::move(client)),
        range_(PrefixRange(prefix)),
        callback_(std::move(callback)),
        next_revision_(start_revision) {
    thread_ = std::jthread([this] {
      NameThisThread("etcd-watch");
      Run();
    });
  }

  ~EtcdWatch() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (context_ != nullptr) {
        context_->TryCancel();
      }
    }
    thread_.join();
  }

  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;
  EtcdWatch(EtcdWatch&&) = delete;
  EtcdWatch& operator=(EtcdWatch&&) = delete;

 private:
  enum class StreamEnd { kFailed, kCompacted, kStopped };

  void Run();
  // Runs one stream until it fails, the watch is compacted away, or the handle is destroyed.
  // `established` is set once etcd confirmed the watch (resets the backoff).
  StreamEnd RunStream(grpc::ClientContext& context, Endpoint& endpoint, bool& established);
  // Sets each lease of `ended` that etcd no longer has. etcd expires leases in bursts (every
  // 500 ms, all those due), so the questions go out several at once: the delivery waits for them.
  void AskWhichEnded(std::map<int64_t, bool>& ended) {
    std::vector<std::pair<const int64_t, bool>*> leases;
    leases.reserve(ended.size());
    for (auto& entry : ended) {
      leases.push_back(&entry);
    }
    std::atomic<size_t> next = 0;
    auto ask = [&] {
      for (size_t i = next++; i < leases.size(); i = next++) {
        // Unanswered (etcd unreachable right now): counted as a deletion, not an expiry.
        absl::StatusOr<std::optional<absl::Duration>> left =
            LeaseTimeLeft(*client_, leases[i]->first);
        leases[i]->second = left.ok() && !left->has_value();
      }
    };
    std::vector<std::jthread> askers;
    for (size_t t = 1; t < std::min<size_t>(kLeaseQuestions, leases.size()); ++t) {
      askers.emplace_back(ask);
    }
    ask();
  }  // joins the askers

  // The revisions of `response` in which etcd expired a renewal set's lease. etcd expires a lease
  // in a revision of its own that deletes exactly that lease's keys, so a revision with a put or
  // with more deletes than a set has keys is no expiry and costs no question. For the others the
  // leases their keys were on just before are read (one request per 128 keys): a revision whose
  // keys were all on one set's lease is an expiry when that lease has ended by now (an
  // unregistration leaves it running); keys of several leases (a small namespace deleted) or of
  // none are not. Unanswered questions (etcd unreachable right now, or the revision compacted)
  // count as a deletion, not an expiry.
  std::set<int64_t> ExpiriesOf(const pb::WatchResponse& response) {
    std::map<int64_t, std::vector<std::string_view>> deleted;  // revision -> its keys
    std::set<int64_t> not_expiries;
    for (const mvccpb::Event& event : response.events()) {
      const int64_t revision = event.kv().mod_revision();
      if (event.type() != mvccpb::Event::DELETE) {
        not_expiries.insert(revision);
      } else if (!not_expiries.contains(revision)) {
        std::vector<std::string_view>& keys = deleted[revision];
        keys.push_back(event.kv().key());
        if (keys.size() > kMaxRenewalKeys) {
          not_expiries.insert(revision);
        }
      }
    }
    std::vector<KeyAt> questions;
    std::vector<int64_t> revisions;  // of each question
    for (const auto& [revision, keys] : deleted) {
      if (not_expiries.contains(revision)) {
        continue;
      }
      for (const std::string_view key : keys) {
        questions.push_back({.key = key, .revision = revision - 1});
        revisions.push_back(revision);
      }
    }
    std::set<int64_t> expiries;
    if (questions.empty()) {
      return expiries;
    }
    const absl::StatusOr<std::vector<int64_t>> leases = LeasesAt(*client_, questions);
    if (!leases.ok()) {
      return expiries;
    }
    std::map<int64_t, int64_t> lease_of;  // revision -> the one set lease its keys were on
    for (size_t i = 0; i < questions.size(); ++i) {
      const int64_t lease = (*leases)[i];
      auto [it, first] = lease_of.emplace(revisions[i], lease);
      if (!IsSetLease(lease) || (!first && it->second != lease)) {
        not_expiries.insert(revisions[i]);
      }
    }
    std::erase_if(lease_of, [&](const auto& entry) { return not_expiries.contains(entry.first); });
    std::map<int64_t, bool> ended;  // lease -> ended: one question per lease and response
    for (const auto& [revision, lease] : lease_of) {
      ended.emplace(lease, false);
    }
    AskWhichEnded(ended);
    for (const auto& [revision, lease] : lease_of) {
      if (ended.at(lease)) {
        expiries.insert(revision);
      }
    }
    return expiries;
  }

  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }
  // Returns false when the handle is being destroyed.
  bool SleepUnlessStopping(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    return !mu_.AwaitWithTimeout(absl::Condition(&stopping_), duration);
  }

  const std::shared_ptr<EtcdClient> client_;
  const std::pair<std::string, std::string> range_;
  const WatchCallback callback_;
  // Only touched by the watch thread: the first revision not yet delivered.
  int64_t next_revision_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The running stream's context, so the destructor can cancel a blocked Read.
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;

  // Last member: started after everything it uses is initialised.
  std::jthread thread_;
};

void EtcdWatch::Run() {
  absl::BitGen random;
  absl::Duration backoff = kWatchBackoffMin;
  // The token the last failed stream used, when it should be replaced before the next one.
  std::optional<std::string> stale_token;
  while (true) {
    const EndpointPtr ready =
        client_->WaitForReady(absl::InfiniteFuture(), [this] { return Stopping(); });
    if (ready == nullptr) {
      return;
    }
    Endpoint& endpoint = *ready;
    if (stale_token) {
      // Failure here only means the next stream fails too and we come back with backoff.
      (void)client_->Reauthenticate(endpoint, *stale_token);
      stale_token.reset();
    }
    grpc::ClientContext context;
    const std::string token = client_->Token();
    if (!token.empty()) {
      context.AddMetadata(std::string{kTokenMetadata}, token);
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        return;
      }
      context_ = &context;
    }
    bool established = false;
    const StreamEnd end = RunStream(context, endpoint, established);
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stopping_ || end != StreamEnd::kFailed) {
        return;
      }
    }
    if (established) {
      backoff = kWatchBackoffMin;
    }
    if (client_->UsesAuth()) {
      // etcd 3.4 refuses a watch with an unknown token as "permission denied", so any failure
      // may be an expired or forgotten token; a refresh costs one RPC per failed stream.
      stale_token = token;
    }
    client_->EndpointFailed(ready.get());
    if (!SleepUnlessStopping(backoff * absl::Uniform(random, 0.8, 1.2))) {
      return;
    }
    backoff = std::min(backoff * 2, kWatchBackoffMax);
  }
}

EtcdWatch::StreamEnd EtcdWatch::RunStream(grpc::ClientContext& context, Endpoint& endpoint,
                                          bool& established) {
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream =
      endpoint.watch->Watch(&context);
  pb::WatchRequest request;
  pb::WatchCreateRequest& create = *request.mutable_create_request();
  create.set_key(range_.first);
  create.set_range_end(range_.second);
  create.set_start_revision(next_revision_);
  // No prev_kv: etcd 3.4 then reads each deleted key's previous version on its own, and the
  // events of one revision deleting a namespace of 20,000 services took it three minutes to
  // send (0.2 s without). The few deletes that may be an expiry are asked about instead
  // (ExpiriesOf).
  StreamEnd end = StreamEnd::kFailed;
  if (stream->Write(request)) {
    pb::WatchResponse response;
    while (stream->Read(&response)) {
      if (response.compact_revision() != 0) {
        callback_(WatchResponse{.revision = response.header().revision(),
                                .compact_revision = response.compact_revision()});
        end = StreamEnd::kCompacted;
        context.TryCancel();
        break;
      }
      if (response.canceled()) {
        // Not a compaction (e.g. a permission or token problem): the stream is retried.
        break;
      }
      if (response.created()) {
        established = true;
      }
      WatchResponse delivery{.revision = response.header().revision()};
      const std::set<int64_t> expiries = ExpiriesOf(response);
      for (const mvccpb::Event& event : response.events()) {
        // After a reconnect etcd replays from next_revision_; anything older was delivered.
        if (event.kv().mod_revision() < next_revision_) {
          continue;
        }
        const bool is_delete = event.type() == mvccpb::Event::DELETE;
        delivery.events.push_back(
            {.type = is_delete ? WatchEvent::Type::kDelete : WatchEvent::Type::kPut,
             .kv = FromProto(event.kv()),
             .expired = is_delete && expiries.contains(event.kv().mod_revision())});
      }
      // etcd never splits one revision's events over two messages (it batches whole
      // revisions), so one message is one delivery and a transaction stays together.
      if (!delivery.events.empty()) {
        next_revision_ = delivery.events.back().kv.mod_revision + 1;
        callback_(delivery);
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && end == StreamEnd::kFailed) {
      end = StreamEnd::kStopped;
    }
  }
  context.TryCancel();
  pb::WatchResponse ignored;
  while (stream->Read(&ignored)) {
  }
  (void)stream->Finish();
  return end;
}

}  // namespace

std::unique_ptr<WatchHandle> StartEtcdWatch(std::shared_ptr<EtcdClient> client,
                                            std::string_view prefix, int64_t start_revision,
                                            WatchCallback callback) {
  return std::make_unique<EtcdWatch>(std::move(client), prefix, start_revision,
                                     std::move(callback));
}

}  // namespace discovery::store::etcd_internal
