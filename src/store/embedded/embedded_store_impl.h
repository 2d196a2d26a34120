// The embedded store's class, shared by embedded_store.cc (opening, reads, watches, the reaper)
// and embedded_commit.cc (the group-commit write path). Internal to src/store/embedded.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
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

#include "common/thread_name.h"
#include "store/commit_queue.h"
#include "store/embedded/embedded_store.h"
#include "store/embedded/sqlite_db.h"
#include "store/store.h"

namespace discovery::store {

class EmbeddedStore final : public Store {
 public:
  friend absl::StatusOr<int64_t> ReapEmbeddedStore(Store& store, absl::Time now);

  static absl::StatusOr<std::unique_ptr<EmbeddedStore>> Create(const EmbeddedStoreOptions& options);

  // Watch threads use the connection: every WatchHandle must be destroyed before the store.
  ~EmbeddedStore() override = default;

  absl::StatusOr<KeyValue> Get(std::string_view key) override;

  absl::StatusOr<RangeResult> Range(std::string_view prefix) override;
  absl::StatusOr<int64_t> RangeInBatches(std::string_view prefix, size_t batch_size,
                                         const ConsumeBatch& consume) override;

  absl::StatusOr<TxnResult> Commit(const Txn& txn) override;

  void CommitAsync(Txn txn, CommitCallback done) override;

  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                     int64_t start_revision,
                                                     WatchCallback callback) override;

  absl::StatusOr<int64_t> CurrentRevision() override;

  // In place, in one write transaction: the record and its expiry are replaced, and nothing
  // else changes (no revision, no event). Watchers learn nothing of it, which is why every key
  // with an expiry RenewsInPlace here: the reaper's delete (an `expired` event) alone ends it.
  absl::StatusOr<RenewResult> Renew(const Renewal& renewal) override;

  bool RenewsInPlace(const KeyValue& kv) const override {
    (void)kv;
    return options_.renew_in_place;
  }

  absl::StatusOr<std::vector<std::optional<absl::Time>>> Deadlines(
      const std::vector<LeasedKey>& keys) override;

  EmbeddedStoreStats Stats();

  absl::Status Compact(int64_t revision);

 private:
  // Delivers the events of one prefix from the log, in revision order, on its own thread.
  class EmbeddedWatch final : public WatchHandle {
   public:
    EmbeddedWatch(EmbeddedStore& store, std::string prefix, int64_t start_revision,
                  WatchCallback callback)
        : thread_([&store, prefix = std::move(prefix), start_revision,
                   callback = std::move(callback)](std::stop_token stop) {
            NameThisThread("sqlite-watch");
            store.RunWatch(std::move(stop), prefix, start_revision, callback);
          }) {}

    // std::jthread's destructor requests stop and joins, so no callback runs after this.
    ~EmbeddedWatch() override = default;

   private:
    std::jthread thread_;
  };

  // A commit in the group-commit queue, on its Commit() caller's stack or in its AsyncCommit.
  // CommitQueue owns `done` and `then`; the committer writes `result` before either.
  struct PendingCommit {
    const Txn* txn = nullptr;
    int64_t bytes = 0;
    absl::StatusOr<TxnResult> result = absl::UnknownError("not applied");
    bool done = false;  // result is final
    // The reaper's deletes: each compared key must also have expired by then (a renewal in
    // place keeps its mod_revision), and its delete is an expiry event.
    std::optional<absl::Time> expired_by;
    absl::AnyInvocable<void() &&> then;
  };

  using AsyncCommit = store::AsyncCommit<PendingCommit>;

  // Commit for the reaper: `txn` compares and deletes keys that expired by `expired_by`.
  absl::StatusOr<TxnResult> CommitExpired(const Txn& txn, absl::Time expired_by);
  // Queues `self` for the group commit and waits for its result.
  absl::StatusOr<TxnResult> Enqueue(PendingCommit self);

  // One read of the log for a watch.
  struct WatchBatch {
    std::vector<WatchEvent> events;
    int64_t revision = 0;          // store revision of the snapshot read
    int64_t compact_revision = 0;  // non-zero: the start revision was compacted
    int64_t next = 0;              // first revision not covered by this read
  };

  // `checkpointer` is a second connection to the same file for the checkpoint thread; null for
  // an in-memory database.
  EmbeddedStore(EmbeddedStoreOptions options,
                std::unique_ptr<sqlite_internal::Connection> connection,
                std::unique_ptr<sqlite_internal::Connection> checkpointer);

  // A commit checkpoints itself once the log holds this many times checkpoint_pages.
  static constexpr int kCommitCheckpointFactor = 8;

  // Runs after every commit of db_, inside it: asks the checkpoint thread for a checkpoint once
  // the log holds checkpoint_pages.
  void OnWalCommit(int wal_pages) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The body of the checkpoint thread: checkpoints on checkpointer_db_ when asked.
  void RunCheckpointer(const std::stop_token& stop);
  // A passive checkpoint on `db`; true when it ran. A failure is reported unless another
  // connection was checkpointing.
  bool CheckpointReported(sqlite_internal::Connection& db) const;
  // Logs the failure of background work `op` ("checkpoint", "reap") and hands it to
  // options_.on_background_error.
  void ReportBackgroundError(std::string_view op, const absl::Status& error) const;
  bool CheckpointDueOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(checkpoint_mu_) {
    return checkpoint_due_ || checkpoint_stopping_;
  }

  // Deletes the keys whose expiry has passed, each only if it was not put again since it was
  // read (compare on mod_revision), so a renewal racing the reaper wins. Every process that
  // opens the file reaps; the compares make them agree. Returns the number deleted.
  absl::StatusOr<int64_t> ReapExpired(absl::Time now);

  // The earliest expiry of any key; InfiniteFuture when none expires.
  absl::StatusOr<absl::Time> NextExpiry();

  void RunReaper(const std::stop_token& stop);

  static absl::Status Initialize(sqlite_internal::Connection& db, bool file_backed);

  // Takes the next batch off the front of the queue, in arrival order, within the configured
  // bounds; the first pending commit (the leader's own) always goes in.
  std::vector<PendingCommit*> TakeBatch(std::deque<PendingCommit*>& queue) const;

  // Applies `batch` in one SQLite write transaction and sets every result. Returns whether a
  // new revision was committed.
  bool ApplyBatch(const std::vector<PendingCommit*>& batch);
  // ApplyBatch, then wakes this process's watches when the batch committed.
  void ApplyAndSignal(const std::vector<PendingCommit*>& batch);

  absl::Status ApplyBatchLocked(const std::vector<PendingCommit*>& batch, bool& committed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Applies one txn inside the batch's SQLite transaction on top of store revision `current`.
  // The caller undoes its writes unless the returned revision is current + 1.
  absl::StatusOr<TxnResult> ApplyTxnLocked(const Txn& txn, int64_t current,
                                           std::optional<absl::Time> expired_by)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status RunLocked(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status ApplyPut(const Op& op, int64_t revision, int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Returns whether the key existed.
  absl::StatusOr<bool> ApplyDelete(std::string_view key, int64_t revision, int64_t seq,
                                   int event_type) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The statement that reads the keys under `prefix` in key order (key, value, revisions).
  absl::StatusOr<sqlite_internal::Connection::Statement> PrepareRange(std::string_view prefix)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return PrepareRange(prefix, PrefixEnd(prefix));
  }
  // The same for the keys in [from, end), all keys from `from` when `end` is empty.
  absl::StatusOr<sqlite_internal::Connection::Statement> PrepareRange(std::string_view from,
                                                                      std::string_view end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Deletes the keys in [from, end) (all from `from` when `end` is empty). Returns the number of
  // keys deleted; their events get consecutive seq from `first_seq`, in key order.
  absl::StatusOr<int64_t> ApplyDeleteRange(std::string_view from, std::string_view end,
                                           int64_t revision, int64_t first_seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Status InsertEvent(int64_t revision, int64_t seq, int type, std::string_view key,
                           std::string_view value, int64_t create_revision, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Drops events before `revision` and records it; never moves the compaction point back.
  // Must run inside a write transaction.
  absl::Status CompactLocked(int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Reads the events of [next, next + kWatchBatchRevisions) under `prefix` from one snapshot.
  absl::StatusOr<WatchBatch> ReadWatchBatch(std::string_view prefix, std::string_view end,
                                            int64_t next);

  // The body of a watch thread: deliver, then sleep until a local commit, the poll interval
  // (commits of other processes) or cancellation.
  void RunWatch(std::stop_token stop, const std::string& prefix, int64_t next,
                const WatchCallback& callback);

  const EmbeddedStoreOptions options_;

  // Serializes all use of the SQLite connection (opened NOMUTEX).
  absl::Mutex mu_;
  const std::unique_ptr<sqlite_internal::Connection> db_ ABSL_PT_GUARDED_BY(mu_);

  // Group-commit counters (GetEmbeddedStoreStats); atomic so they can be read while a leader
  // holds mu_ waiting for another process's write lock.
  std::atomic<int64_t> commits_ = 0;
  std::atomic<int64_t> write_transactions_ = 0;
  std::atomic<int64_t> background_checkpoints_ = 0;
  std::atomic<int64_t> commit_checkpoints_ = 0;

  // Used by the checkpoint thread alone (null for an in-memory database). Declared before the
  // commit queue: commits still queued when the store closes run their hook, which signals here.
  const std::unique_ptr<sqlite_internal::Connection> checkpointer_db_;
  absl::Mutex checkpoint_mu_;
  bool checkpoint_due_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  bool checkpoint_stopping_ ABSL_GUARDED_BY(checkpoint_mu_) = false;

  // Counts commits of this store object; watches wait on it.
  absl::Mutex signal_mu_;
  uint64_t local_commits_ ABSL_GUARDED_BY(signal_mu_) = 0;

  // After what its committer uses: destroyed before it, applying what is still queued.
  CommitQueue<PendingCommit> queue_{
      [this](std::deque<PendingCommit*>& queue) { return TakeBatch(queue); },
      [this](const std::vector<PendingCommit*>& batch) { ApplyAndSignal(batch); }};

  // Stop and join before anything they use is destroyed.
  std::jthread checkpointer_;
  std::jthread reaper_;
};

}  // namespace discovery::store
