#include "store/etcd/etcd_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
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
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "store/commit_queue.h"
#include "store/etcd/etcd_client.h"
#include "store/etcd/etcd_lease.h"
#include "store/etcd/etcd_watch.h"
#include "store/etcd/range_windows.h"

namespace discovery::store {
namespace {

namespace pb = ::etcdserverpb;
using etcd_internal::Endpoint;
using etcd_internal::EtcdClient;
using etcd_internal::FromProto;
using etcd_internal::IsSetLease;
using etcd_internal::PrefixRange;

// ---------------------------------------------------------------------------------------------
// EtcdStore

class EtcdStore final : public Store {
 public:
  EtcdStore(std::shared_ptr<EtcdClient> client, absl::Duration auto_sync_interval)
      : client_(std::move(client)) {
    if (auto_sync_interval > absl::ZeroDuration()) {
      sync_ = std::jthread([this, auto_sync_interval] {
        NameThisThread("etcd-members");
        SyncMembers(auto_sync_interval);
      });
    }
  }

  ~EtcdStore() override {
    absl::MutexLock lock(&sync_mu_);
    stopping_ = true;
  }  // sync_, the last member, is joined first
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;
  EtcdStore(EtcdStore&&) = delete;
  EtcdStore& operator=(EtcdStore&&) = delete;

  absl::StatusOr<KeyValue> Get(std::string_view key) override {
    pb::RangeRequest request;
    request.set_key(std::string{key});
    pb::RangeResponse response;
    DISCOVERY_RETURN_IF_ERROR(client_->Unary(
        absl::StrCat("get ", std::string{key}), EtcdClient::Retry::kAlways,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Range(&c, request, &response); }));
    if (response.kvs_size() == 0) {
      return absl::NotFoundError(absl::StrCat("key not found: ", std::string{key}));
    }
    return FromProto(response.kvs(0));
  }

  absl::StatusOr<RangeResult> Range(std::string_view prefix) override {
    return RangeInOneBatch(*this, prefix);
  }

  // Pages of at most `batch_size` keys, each read at the revision of the first, so that together
  // they are one snapshot; a compaction past that revision between two pages fails the read.
  // Each page is asked for within a window of the key space sized to about one page
  // (etcd_internal::RangeWindows), since etcd walks a request's whole range to count it.
  absl::StatusOr<int64_t> RangeInBatches(std::string_view prefix, size_t batch_size,
                                         const ConsumeBatch& consume) override {
    DISCOVERY_RETURN_IF_ERROR(CheckBatchSize(batch_size));
    auto [key, range_end] = PrefixRange(prefix);
    const size_t page_keys =
        std::min(batch_size, static_cast<size_t>(std::numeric_limits<int64_t>::max()));
    etcd_internal::RangeWindows windows(std::move(key), std::move(range_end), page_keys);
    pb::RangeRequest request;
    request.set_limit(static_cast<int64_t>(page_keys));
    int64_t revision = 0;
    while (!windows.done()) {
      request.set_key(windows.start());
      request.set_range_end(windows.end());
      pb::RangeResponse response;
      DISCOVERY_RETURN_IF_ERROR(client_->Unary(absl::StrCat("range ", std::string{prefix}),
                                               EtcdClient::Retry::kAlways,
                                               [&](Endpoint& e, grpc::ClientContext& c) {
                                                 return e.kv->Range(&c, request, &response);
                                               }));
      if (revision == 0) {
        revision = response.header().revision();
        request.set_revision(revision);
      }
      const int keys = response.kvs_size();
      if (keys == 0) {
        windows.Read(response.count(), response.more(), "", 0, "");
        continue;
      }
      const int reference = keys / 2;
      windows.Read(response.count(), response.more(), response.kvs(reference).key(),
                   static_cast<size_t>(keys - 1 - reference), response.kvs(keys - 1).key());
      std::vector<KeyValue> batch;
      batch.reserve(keys);
      for (const mvccpb::KeyValue& kv : response.kvs()) {
        batch.push_back(FromProto(kv));
      }
      consume(std::move(batch));
    }
    return revision;
  }

  // Concurrent commits that cannot interfere share one etcd transaction (group commit): one
  // round trip, one raft entry and one fsync for the lot, instead of one each. Txns join a batch
  // only if their result is what running them one after another would give (see Mergeable); a
  // batch whose compares fail is retried one txn at a time, so each gets its own answer.
  absl::StatusOr<TxnResult> Commit(const Txn& txn) override {
    DISCOVERY_RETURN_IF_ERROR(CheckDeleteRanges(txn));
    for (int attempt = 1;; ++attempt) {
      DISCOVERY_RETURN_IF_ERROR(EnsureLeases(txn));
      PendingCommit self{.txn = &txn};
      queue_.Commit(self);
      if (attempt == 1 && LeaseWasLost(self.result)) {
        ForgetLeases(txn);
        continue;
      }
      return std::move(self.result);
    }
  }

  void CommitAsync(Txn txn, CommitCallback done) override {
    if (absl::Status valid = CheckDeleteRanges(txn); !valid.ok()) {
      std::move(done)(std::move(valid));
      return;
    }
    SubmitAsync(std::make_unique<AsyncCommit>(std::move(txn), std::move(done)), /*attempt=*/1);
  }

  int64_t LeasesGranted() const { return leases_granted_.load(std::memory_order_relaxed); }

  EtcdStoreStats Stats() const {
    return {.commits = commits_.load(std::memory_order_relaxed),
            .transactions = transactions_.load(std::memory_order_relaxed),
            .lease_keepalives = lease_keepalives_.load(std::memory_order_relaxed),
            .set_moves = set_moves_.load(std::memory_order_relaxed)};
  }

  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                     int64_t start_revision,
                                                     WatchCallback callback) override {
    if (start_revision < 0) {
      return absl::InvalidArgumentError("watch start_revision must not be negative");
    }
    if (start_revision == 0) {
      // "From now on" is pinned here rather than left to etcd, so a write that follows this
      // call is seen even if the stream is set up after it.
      DISCOVERY_ASSIGN_OR_RETURN(int64_t current, CurrentRevision());
      start_revision = current + 1;
    }
    return etcd_internal::StartEtcdWatch(client_, prefix, start_revision, std::move(callback));
  }

  // A renewal set has its own lease (etcd_lease.h). When the view shows every key of the set on
  // it already, renewing is one LeaseKeepAlive: no revision. Otherwise (the set's first
  // renewal, or a key moved meanwhile: registered again, or renewed in another set) the keys
  // move onto it in one transaction guarded on the revisions read, once per set.
  absl::StatusOr<RenewResult> Renew(const Renewal& renewal) override {
    if (renewal.keys.empty()) {
      return RenewResult{};
    }
    // The watch relies on it to tell an expiry from a deletion without reading every deleted key.
    if (renewal.keys.size() > kMaxRenewalKeys) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a renewal set holds at most ", kMaxRenewalKeys, " keys, not ", renewal.keys.size()));
    }
    const int64_t seconds = etcd_internal::LeaseSeconds(renewal.ttl);
    std::vector<std::string> keys;
    keys.reserve(renewal.keys.size());
    for (const RenewKey& key : renewal.keys) {
      keys.push_back(key.key);
    }
    const int64_t lease = etcd_internal::SetLeaseId(std::move(keys), seconds);
    const bool on_lease = std::all_of(renewal.keys.begin(), renewal.keys.end(),
                                      [lease](const RenewKey& key) { return key.lease == lease; });
    if (on_lease) {
      DISCOVERY_ASSIGN_OR_RETURN(const bool alive, etcd_internal::KeepLeaseAlive(*client_, lease));
      lease_keepalives_.fetch_add(1, std::memory_order_relaxed);
      RenewResult result;
      if (!alive) {
        // The lease ended, and etcd deleted its keys with it.
        for (const RenewKey& key : renewal.keys) {
          result.gone.push_back(key.key);
        }
      }
      return result;
    }
    for (int attempt = 1;; ++attempt) {
      DISCOVERY_RETURN_IF_ERROR(GrantSetLease(lease, seconds));
      pb::TxnRequest request;
      for (const RenewKey& key : renewal.keys) {
        AddCompare({.key = key.key, .mod_revision = key.mod_revision}, request);
        pb::PutRequest& put = *request.add_success()->mutable_request_put();
        put.set_key(key.key);
        put.set_value(key.value);
        put.set_lease(lease);
      }
      absl::StatusOr<pb::TxnResponse> response = Send(request);
      // The lease may have ended between the grant and the move (or been revoked by hand).
      if (attempt == 1 && !response.ok() && absl::IsNotFound(response.status()) &&
          absl::StrContains(response.status().message(), "lease")) {
        continue;
      }
      DISCOVERY_RETURN_IF_ERROR(response.status());
      set_moves_.fetch_add(1, std::memory_order_relaxed);
      if (!response->succeeded()) {
        return RenewResult{.succeeded = false};
      }
      return RenewResult{.revision = response->header().revision()};
    }
  }

  bool RenewsInPlace(const KeyValue& kv) const override { return IsSetLease(kv.lease); }

  absl::StatusOr<std::vector<std::optional<absl::Time>>> Deadlines(
      const std::vector<LeasedKey>& keys) override {
    // One LeaseTimeToLive per distinct lease: the keys of a set share theirs. A fleet of
    // single-service keepalives has a lease per host, so they are asked a few at a time.
    std::map<int64_t, std::optional<absl::Time>> leases;
    for (const LeasedKey& key : keys) {
      if (key.lease != 0) {
        leases.emplace(key.lease, std::nullopt);
      }
    }
    std::vector<std::pair<const int64_t, std::optional<absl::Time>>*> pending;
    pending.reserve(leases.size());
    for (auto& entry : leases) {
      pending.push_back(&entry);
    }
    std::atomic<size_t> next = 0;
    absl::Mutex error_mu;
    absl::Status error;
    auto ask = [&] {
      for (size_t i = next++; i < pending.size(); i = next++) {
        const absl::Time now = absl::Now();
        absl::StatusOr<std::optional<absl::Duration>> left =
            etcd_internal::LeaseTimeLeft(*client_, pending[i]->first);
        if (!left.ok()) {
          absl::MutexLock lock(&error_mu);
          error.Update(left.status());
          return;
        }
        if (left->has_value()) {
          pending[i]->second = now + **left;
        }
      }
    };
    {
      std::vector<std::jthread> askers;
      const size_t threads = std::min(kDeadlineQueries, pending.size() / 64);
      for (size_t t = 0; t < threads; ++t) {
        askers.emplace_back(ask);
      }
      ask();
    }  // joins the askers
    DISCOVERY_RETURN_IF_ERROR(error);
    std::vector<std::optional<absl::Time>> deadlines;
    deadlines.reserve(keys.size());
    for (const LeasedKey& key : keys) {
      auto it = leases.find(key.lease);
      deadlines.push_back(it == leases.end() ? std::nullopt : it->second);
    }
    return deadlines;
  }

  absl::StatusOr<int64_t> CurrentRevision() override {
    // Any key will do: the header carries the store revision. A linearizable single-key
    // count_only range is the cheapest read etcd confirms through the leader.
    pb::RangeRequest request;
    request.set_key(std::string(1, '\0'));
    request.set_count_only(true);
    request.set_limit(1);
    pb::RangeResponse response;
    DISCOVERY_RETURN_IF_ERROR(client_->Unary(
        "current revision", EtcdClient::Retry::kAlways,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Range(&c, request, &response); }));
    return response.header().revision();
  }

 private:
  // etcd refuses a transaction of more than --max-txn-ops (128 by default) operations or
  // compares, or of more than --max-request-bytes (1.5 MiB by default).
  static constexpr size_t kMaxBatchOps = 128;
  // Deadlines asks this many more leases at once (beyond the calling thread), one per 64.
  static constexpr size_t kDeadlineQueries = 15;
  static constexpr size_t kMaxBatchBytes = 1 << 20;

  // A commit in the queue, on its Commit() caller's stack or in its AsyncCommit. CommitQueue
  // owns `done` and `then`; the committer writes `result` before either.
  struct PendingCommit {
    const Txn* txn = nullptr;
    absl::StatusOr<TxnResult> result = absl::UnknownError("not committed");
    bool done = false;
    absl::AnyInvocable<void() &&> then;
  };

  using AsyncCommit = store::AsyncCommit<PendingCommit>;

  // A lease this process granted may be gone all the same (etcd restored from a backup, a lease
  // revoked by hand): the commit grants it again once.
  static bool LeaseWasLost(const absl::StatusOr<TxnResult>& result) {
    return !result.ok() && absl::IsNotFound(result.status()) &&
           absl::StrContains(result.status().message(), "lease");
  }

  void SubmitAsync(std::unique_ptr<AsyncCommit> commit, int attempt) {
    // Granting a lease is a round trip of its own, but only the first commit of a deadline
    // second waits for it.
    if (absl::Status leases = EnsureLeases(commit->txn); !leases.ok()) {
      std::move(commit->done)(std::move(leases));
      return;
    }
    AsyncCommit* raw = commit.release();
    queue_.Submit(raw->pending, [this, raw, attempt] {
      std::unique_ptr<AsyncCommit> owned(raw);
      if (attempt == 1 && LeaseWasLost(owned->pending.result)) {
        ForgetLeases(owned->txn);
        SubmitAsync(std::move(owned), attempt + 1);
        return;
      }
      std::move(owned->done)(std::move(owned->pending.result));
    });
  }

  // What a batch has touched so far.
  struct BatchKeys {
    std::set<std::string_view> written;
    std::map<std::string_view, int64_t> compared;  // key -> the mod_revision required
    size_t ops = 0;
    size_t bytes = 0;
  };

  // Whether `txn` can run in one etcd transaction with the txns behind `keys` and answer as it
  // would alone: only puts and single-key deletes, no key written twice, no key one txn writes
  // and another compares (compares see the state before the whole batch), the same revision
  // wherever a key is compared, and within etcd's limits.
  static bool Mergeable(const Txn& txn, const BatchKeys& keys) {
    if (txn.ops.empty()) {
      return false;
    }
    size_t bytes = 0;
    std::set<std::string_view> written;
    for (const Op& op : txn.ops) {
      if (op.type == Op::Type::kDeletePrefix || op.type == Op::Type::kDeleteRange ||
          !written.insert(op.key).second || keys.written.contains(op.key) ||
          keys.compared.contains(op.key)) {
        return false;
      }
      bytes += op.key.size() + op.value.size();
    }
    size_t new_compares = 0;
    for (const Compare& compare : txn.compares) {
      if (written.contains(compare.key) || keys.written.contains(compare.key)) {
        return false;
      }
      auto it = keys.compared.find(compare.key);
      if (it == keys.compared.end()) {
        ++new_compares;
        bytes += compare.key.size();
      } else if (it->second != compare.mod_revision) {
        return false;
      }
    }
    return keys.ops + txn.ops.size() <= kMaxBatchOps &&
           keys.compared.size() + new_compares <= kMaxBatchOps &&
           keys.bytes + bytes <= kMaxBatchBytes;
  }

  static void Add(const Txn& txn, BatchKeys& keys) {
    for (const Op& op : txn.ops) {
      keys.written.insert(op.key);
      keys.bytes += op.key.size() + op.value.size();
    }
    for (const Compare& compare : txn.compares) {
      if (keys.compared.emplace(compare.key, compare.mod_revision).second) {
        keys.bytes += compare.key.size();
      }
    }
    keys.ops += txn.ops.size();
  }

  // The oldest queued commit and the ones right behind it that merge with it.
  static std::vector<PendingCommit*> TakeBatch(std::deque<PendingCommit*>& queue) {
    std::vector<PendingCommit*> batch = {queue.front()};
    queue.pop_front();
    BatchKeys keys;
    if (!Mergeable(*batch.front()->txn, keys)) {
      return batch;
    }
    Add(*batch.front()->txn, keys);
    while (!queue.empty() && Mergeable(*queue.front()->txn, keys)) {
      Add(*queue.front()->txn, keys);
      batch.push_back(queue.front());
      queue.pop_front();
    }
    return batch;
  }

  void ApplyBatch(const std::vector<PendingCommit*>& batch) {
    if (batch.size() == 1) {
      batch.front()->result = CommitOne(*batch.front()->txn);
      return;
    }
    pb::TxnRequest request;
    std::set<std::string_view> compared;
    for (const PendingCommit* pending : batch) {
      for (const Compare& compare : pending->txn->compares) {
        if (compared.insert(compare.key).second) {
          AddCompare(compare, request);
        }
      }
      for (const Op& op : pending->txn->ops) {
        AddOp(op, request);
      }
    }
    absl::StatusOr<pb::TxnResponse> response = Send(request);
    if (!response.ok()) {
      for (PendingCommit* pending : batch) {
        pending->result = response.status();
      }
      return;
    }
    if (!response->succeeded()) {
      // Some compare failed: which txns it fails is only known one by one.
      for (PendingCommit* pending : batch) {
        pending->result = CommitOne(*pending->txn);
      }
      return;
    }
    int index = 0;
    for (PendingCommit* pending : batch) {
      TxnResult result{.succeeded = true, .revision = response->header().revision()};
      for (size_t i = 0; i < pending->txn->ops.size(); ++i, ++index) {
        const pb::ResponseOp& op = response->responses(index);
        if (op.has_response_delete_range()) {
          result.deleted += op.response_delete_range().deleted();
        }
      }
      pending->result = result;
    }
  }

  static void AddCompare(const Compare& compare, pb::TxnRequest& request) {
    pb::Compare& c = *request.add_compare();
    c.set_result(pb::Compare::EQUAL);
    c.set_target(pb::Compare::MOD);
    c.set_key(compare.key);
    // A missing key compares as mod_revision 0, which is exactly our "does not exist".
    c.set_mod_revision(compare.mod_revision);
  }

  static void AddOp(const Op& op, pb::TxnRequest& request) {
    pb::RequestOp& r = *request.add_success();
    switch (op.type) {
      case Op::Type::kPut:
        r.mutable_request_put()->set_key(op.key);
        r.mutable_request_put()->set_value(op.value);
        if (op.expires != absl::InfiniteFuture()) {
          r.mutable_request_put()->set_lease(LeaseId(DeadlineSecond(op.expires)));
        }
        break;
      case Op::Type::kDelete:
        r.mutable_request_delete_range()->set_key(op.key);
        break;
      case Op::Type::kDeletePrefix: {
        auto [key, range_end] = PrefixRange(op.key);
        r.mutable_request_delete_range()->set_key(std::move(key));
        r.mutable_request_delete_range()->set_range_end(std::move(range_end));
        break;
      }
      case Op::Type::kDeleteRange:
        r.mutable_request_delete_range()->set_key(op.key);
        r.mutable_request_delete_range()->set_range_end(op.range_end);
        break;
    }
  }

  absl::StatusOr<pb::TxnResponse> Send(const pb::TxnRequest& request) {
    transactions_.fetch_add(1, std::memory_order_relaxed);
    pb::TxnResponse response;
    DISCOVERY_RETURN_IF_ERROR(client_->Unary(
        "commit", EtcdClient::Retry::kIfNotSent,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Txn(&c, request, &response); }));
    return response;
  }

  absl::StatusOr<TxnResult> CommitOne(const Txn& txn) {
    pb::TxnRequest request;
    for (const Compare& compare : txn.compares) {
      AddCompare(compare, request);
    }
    for (const Op& op : txn.ops) {
      AddOp(op, request);
    }
    DISCOVERY_ASSIGN_OR_RETURN(pb::TxnResponse response, Send(request));
    TxnResult result{.succeeded = response.succeeded(), .revision = response.header().revision()};
    for (const pb::ResponseOp& r : response.responses()) {
      if (r.has_response_delete_range()) {
        result.deleted += r.response_delete_range().deleted();
      }
    }
    return result;
  }

  // Expiring keys share one lease per second of deadline: the lease of second `s` is granted to
  // end at `s`, and its id is derived from `s`, so every process on the cluster (each replica,
  // each restart) puts its keys of that second on the same lease without coordinating. A key is
  // never kept alive by a lease keepalive (that would keep its lease-mates alive too); putting
  // it again moves it to the lease of its new deadline.
  static int64_t DeadlineSecond(absl::Time expires) {
    return absl::ToInt64Seconds(absl::Ceil(expires - absl::UnixEpoch(), store::kExpiryGranularity));
  }
  // "DT" in the top bytes keeps the ids apart from those etcd picks (and other tools' ids).
  static int64_t LeaseId(int64_t second) {
    return (int64_t{0x4454} << 48) | (second & 0xffffffffffff);
  }

  absl::Status EnsureLeases(const Txn& txn) {
    std::set<int64_t> seconds;
    for (const Op& op : txn.ops) {
      if (op.type == Op::Type::kPut && op.expires != absl::InfiniteFuture()) {
        seconds.insert(DeadlineSecond(op.expires));
      }
    }
    for (const int64_t second : seconds) {
      {
        absl::MutexLock lock(&lease_mu_);
        if (granted_.contains(second)) {
          continue;
        }
      }
      pb::LeaseGrantRequest request;
      request.set_id(LeaseId(second));
      const absl::Duration left = absl::FromUnixSeconds(second) - absl::Now();
      request.set_ttl(
          std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(left, absl::Seconds(1)))));
      pb::LeaseGrantResponse response;
      absl::Status status =
          client_->Unary(absl::StrCat("lease grant ", second), EtcdClient::Retry::kAlways,
                         [&](Endpoint& e, grpc::ClientContext& c) {
                           return e.lease->LeaseGrant(&c, request, &response);
                         });
      // Another process (or this one, before a retry) granted it first: it is the same lease.
      if (!status.ok() && !absl::StrContains(status.message(), "lease already exists")) {
        return status;
      }
      if (status.ok()) {
        leases_granted_.fetch_add(1, std::memory_order_relaxed);
      }
      absl::MutexLock lock(&lease_mu_);
      // Seconds that have passed cannot be asked for again (deadlines are in the future), so
      // the set stays as small as the longest TTL in seconds.
      const int64_t now = absl::ToUnixSeconds(absl::Now());
      granted_.erase(granted_.begin(), granted_.lower_bound(now));
      granted_.insert(second);
    }
    return absl::OkStatus();
  }

  // Grants a renewal set's lease, or resets it when it exists (granted by another replica, or
  // by this one before a key of the set moved away), so the keys moving onto it get a full TTL.
  absl::Status GrantSetLease(int64_t lease, int64_t seconds) {
    pb::LeaseGrantRequest request;
    request.set_id(lease);
    request.set_ttl(seconds);
    for (int attempt = 1;; ++attempt) {
      pb::LeaseGrantResponse response;
      absl::Status status =
          client_->Unary(absl::StrCat("lease grant ", lease), EtcdClient::Retry::kAlways,
                         [&](Endpoint& e, grpc::ClientContext& c) {
                           return e.lease->LeaseGrant(&c, request, &response);
                         });
      if (status.ok()) {
        leases_granted_.fetch_add(1, std::memory_order_relaxed);
        return status;
      }
      if (!absl::StrContains(status.message(), "lease already exists")) {
        return status;
      }
      DISCOVERY_ASSIGN_OR_RETURN(const bool alive, etcd_internal::KeepLeaseAlive(*client_, lease));
      // Else it ended between the two calls: grant it anew.
      if (alive || attempt == 3) {
        return absl::OkStatus();
      }
    }
  }

  void ForgetLeases(const Txn& txn) {
    absl::MutexLock lock(&lease_mu_);
    for (const Op& op : txn.ops) {
      if (op.type == Op::Type::kPut && op.expires != absl::InfiniteFuture()) {
        granted_.erase(DeadlineSecond(op.expires));
      }
    }
  }

  // Follows the member list, as the original's client did with --etcd-auto-sync-interval.
  void SyncMembers(absl::Duration interval) {
    std::string last;
    bool failing = false;
    while (true) {
      absl::StatusOr<std::string> endpoints = client_->SyncMembers();
      if (endpoints.ok()) {
        if (*endpoints != last) {
          LogInfo("etcd endpoints from the member list", {{"endpoints", *endpoints}});
          last = *endpoints;
        }
        failing = false;
      } else if (!failing) {
        // Once per streak of failures; the endpoints known so far stay in use.
        LogWarn("etcd member list sync failed, keeping the endpoints",
                {{"endpoints", client_->EndpointList()},
                 {"error", std::string{endpoints.status().message()}}});
        failing = true;
      }
      absl::MutexLock lock(&sync_mu_);
      if (sync_mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) {
        return;
      }
    }
  }

  const std::shared_ptr<EtcdClient> client_;

  std::atomic<int64_t> commits_ = 0;
  std::atomic<int64_t> transactions_ = 0;

  absl::Mutex lease_mu_;
  std::set<int64_t> granted_ ABSL_GUARDED_BY(lease_mu_);  // deadline seconds with a lease
  std::atomic<int64_t> leases_granted_ = 0;
  std::atomic<int64_t> lease_keepalives_ = 0;
  std::atomic<int64_t> set_moves_ = 0;

  // After what its committer uses (the client, the counters, the leases): destroyed first, and
  // the commits still queued are applied before.
  CommitQueue<PendingCommit> queue_{
      [](std::deque<PendingCommit*>& queue) { return TakeBatch(queue); },
      [this](const std::vector<PendingCommit*>& batch) {
        commits_.fetch_add(std::ssize(batch), std::memory_order_relaxed);
        ApplyBatch(batch);
      }};

  absl::Mutex sync_mu_;
  bool stopping_ ABSL_GUARDED_BY(sync_mu_) = false;
  // Last member: joined before anything it uses is destroyed.
  std::jthread sync_;
};

}  // namespace

absl::StatusOr<EtcdStoreStats> GetEtcdStoreStats(Store& store) {
  auto* etcd = dynamic_cast<EtcdStore*>(&store);
  if (etcd == nullptr) {
    return absl::InvalidArgumentError("stats: not an etcd store");
  }
  EtcdStoreStats stats = etcd->Stats();
  stats.leases_granted = etcd->LeasesGranted();
  return stats;
}

absl::StatusOr<std::unique_ptr<Store>> ConnectEtcdStore(const EtcdOptions& options) {
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<EtcdClient> client, EtcdClient::Connect(options));
  return std::make_unique<EtcdStore>(std::move(client), options.auto_sync_interval);
}

}  // namespace discovery::store
