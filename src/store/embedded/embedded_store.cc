#include "store/embedded/embedded_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "common/status_macros.h"
#include "store/commit_queue.h"
#include "store/embedded/embedded_sql.h"
#include "store/embedded/sqlite_db.h"

namespace discovery::store {
namespace {

// A watch reads at most this many revisions per delivery, so a watch far behind catches up in
// bounded memory; a single revision is never split.
constexpr int64_t kWatchBatchRevisions = 1000;

// The reaper deletes at most this many expired keys per transaction.
constexpr int64_t kReapBatch = 1000;

using sqlite_internal::Connection;
using sqlite_internal::Transaction;

// etcd rejects a transaction that writes one key twice or puts a key its own deletes cover
// (ErrGRPCDuplicateKey); the embedded store does the same so both backends agree.
absl::Status ValidateTxn(const Txn& txn) {
  for (const Compare& compare : txn.compares) {
    if (compare.key.empty()) {
      return absl::InvalidArgumentError("txn compare: empty key");
    }
    if (compare.mod_revision < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("txn compare: negative mod_revision ", compare.mod_revision));
    }
  }
  std::set<std::string_view> puts;
  for (const Op& op : txn.ops) {
    if (op.type != Op::Type::kDeletePrefix && op.key.empty()) {
      return absl::InvalidArgumentError("txn op: empty key");
    }
    if (op.type == Op::Type::kPut && !puts.insert(op.key).second) {
      return absl::InvalidArgumentError(absl::StrCat("txn: duplicate key ", op.key));
    }
  }
  for (const Op& op : txn.ops) {
    if (op.type == Op::Type::kDelete && puts.contains(op.key)) {
      return absl::InvalidArgumentError(absl::StrCat("txn: key ", op.key, " put and deleted"));
    }
    if (op.type == Op::Type::kDeletePrefix) {
      auto it = puts.lower_bound(op.key);
      if (it != puts.end() && it->starts_with(op.key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("txn: key ", std::string(*it), " put under deleted prefix ", op.key));
      }
    }
  }
  return absl::OkStatus();
}

// What a txn weighs in a group commit's byte bound.
int64_t TxnBytes(const Txn& txn) {
  size_t bytes = 0;
  for (const Compare& compare : txn.compares) {
    bytes += compare.key.size();
  }
  for (const Op& op : txn.ops) {
    bytes += op.key.size() + op.value.size();
  }
  return static_cast<int64_t>(bytes);
}

}  // namespace

class EmbeddedStore final : public Store {
 public:
  friend absl::StatusOr<int64_t> ReapEmbeddedStore(Store& store, absl::Time now);

  static absl::StatusOr<std::unique_ptr<EmbeddedStore>> Create(
      const EmbeddedStoreOptions& options) {
    if (options.history_revisions < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "embedded store: history_revisions must be >= 1, got ", options.history_revisions));
    }
    if (options.poll_interval <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("embedded store: poll_interval must be positive");
    }
    if (options.max_batch_txns < 1 || options.max_batch_bytes < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("embedded store: max_batch_txns and max_batch_bytes must be >= 1, got ",
                       options.max_batch_txns, " and ", options.max_batch_bytes));
    }
    if (!options.path.empty()) {
      const std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
      std::error_code error;
      if (!parent.empty()) {
        std::filesystem::create_directories(parent, error);
        if (error) {
          return absl::UnavailableError(absl::StrCat("embedded store ", options.path,
                                                     ": create directory: ", error.message()));
        }
      }
    }
    DISCOVERY_ASSIGN_OR_RETURN(std::unique_ptr<Connection> connection,
                               Connection::Open(options.path, options.busy_timeout));
    DISCOVERY_RETURN_IF_ERROR(Initialize(*connection, !options.path.empty()));
    return std::unique_ptr<EmbeddedStore>(new EmbeddedStore(options, std::move(connection)));
  }

  // Watch threads use the connection: every WatchHandle must be destroyed before the store.
  ~EmbeddedStore() override = default;

  absl::StatusOr<KeyValue> Get(std::string_view key) override {
    if (key.empty()) {
      return absl::InvalidArgumentError("get: empty key");
    }
    absl::MutexLock lock(&mu_);
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                               db_->Prepare(embedded_sql::kSelectKeySql));
    stmt.BindBlob(1, key);
    DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) {
      return absl::NotFoundError(absl::StrCat("key not found: ", std::string(key)));
    }
    return KeyValue{.key = std::string(key),
                    .value = std::string(stmt.Blob(0)),
                    .create_revision = stmt.Int(1),
                    .mod_revision = stmt.Int(2),
                    .version = stmt.Int(3)};
  }

  absl::StatusOr<RangeResult> Range(std::string_view prefix) override {
    absl::MutexLock lock(&mu_);
    // One read transaction, so the keys and the revision come from the same snapshot.
    DISCOVERY_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_, "BEGIN"));
    RangeResult result;
    DISCOVERY_ASSIGN_OR_RETURN(result.revision, db_->QueryInt(embedded_sql::kSelectRevisionSql));
    const std::string end = PrefixEnd(prefix);
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                               db_->Prepare(end.empty() ? embedded_sql::kRangeUnboundedSql
                                                        : embedded_sql::kRangeBoundedSql));
    stmt.BindBlob(1, prefix);
    if (!end.empty()) {
      stmt.BindBlob(2, end);
    }
    while (true) {
      DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
      if (!row) {
        break;
      }
      result.kvs.push_back({.key = std::string(stmt.Blob(0)),
                            .value = std::string(stmt.Blob(1)),
                            .create_revision = stmt.Int(2),
                            .mod_revision = stmt.Int(3),
                            .version = stmt.Int(4)});
    }
    DISCOVERY_RETURN_IF_ERROR(txn.Commit());
    return result;
  }

  absl::StatusOr<TxnResult> Commit(const Txn& txn) override {
    DISCOVERY_RETURN_IF_ERROR(ValidateTxn(txn));
    PendingCommit self{.txn = &txn, .bytes = TxnBytes(txn)};
    queue_.Commit(
        self, [this](std::deque<PendingCommit*>& queue) { return TakeBatch(queue); },
        [this](const std::vector<PendingCommit*>& batch) {
          if (ApplyBatch(batch)) {
            // Wake this process's watches at once; other processes find the commit by polling.
            absl::MutexLock lock(&signal_mu_);
            ++local_commits_;
          }
        });
    return std::move(self.result);
  }

  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                     int64_t start_revision,
                                                     WatchCallback callback) override {
    if (start_revision < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("watch: negative start revision ", start_revision));
    }
    if (!callback) {
      return absl::InvalidArgumentError("watch: empty callback");
    }
    if (start_revision == 0) {
      // "From now on" is fixed here, so a commit after Watch returns is always delivered.
      DISCOVERY_ASSIGN_OR_RETURN(const int64_t current, CurrentRevision());
      start_revision = current + 1;
    }
    return std::unique_ptr<WatchHandle>(
        new EmbeddedWatch(*this, std::string(prefix), start_revision, std::move(callback)));
  }

  absl::StatusOr<int64_t> CurrentRevision() override {
    absl::MutexLock lock(&mu_);
    return db_->QueryInt(embedded_sql::kSelectRevisionSql);
  }

  EmbeddedStoreStats Stats() {
    EmbeddedStoreStats stats{
        .commits = commits_.load(std::memory_order_relaxed),
        .write_transactions = write_transactions_.load(std::memory_order_relaxed)};
    stats.queued_commits = static_cast<int64_t>(queue_.queued());
    return stats;
  }

  absl::Status Compact(int64_t revision) {
    absl::MutexLock lock(&mu_);
    DISCOVERY_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_, "BEGIN IMMEDIATE"));
    DISCOVERY_ASSIGN_OR_RETURN(const int64_t current,
                               db_->QueryInt(embedded_sql::kSelectRevisionSql));
    if (revision > current) {
      return absl::OutOfRangeError(absl::StrCat("compact ", db_->name(), ": revision ", revision,
                                                " is after the current revision ", current));
    }
    DISCOVERY_RETURN_IF_ERROR(CompactLocked(revision));
    return txn.Commit();
  }

 private:
  // Delivers the events of one prefix from the log, in revision order, on its own thread.
  class EmbeddedWatch final : public WatchHandle {
   public:
    EmbeddedWatch(EmbeddedStore& store, std::string prefix, int64_t start_revision,
                  WatchCallback callback)
        : thread_([&store, prefix = std::move(prefix), start_revision,
                   callback = std::move(callback)](std::stop_token stop) {
            store.RunWatch(std::move(stop), prefix, start_revision, callback);
          }) {}

    // std::jthread's destructor requests stop and joins, so no callback runs after this.
    ~EmbeddedWatch() override = default;

   private:
    std::jthread thread_;
  };

  // A Commit() call in the group-commit queue, on its caller's stack. CommitQueue owns `done`
  // and `lead`; the leader writes `result` before the queue sets `done`.
  struct PendingCommit {
    const Txn* txn = nullptr;
    int64_t bytes = 0;
    absl::StatusOr<TxnResult> result = absl::UnknownError("not applied");
    bool done = false;  // result is final
    bool lead = false;  // this caller applies the next batch
  };

  // One read of the log for a watch.
  struct WatchBatch {
    std::vector<WatchEvent> events;
    int64_t revision = 0;          // store revision of the snapshot read
    int64_t compact_revision = 0;  // non-zero: the start revision was compacted
    int64_t next = 0;              // first revision not covered by this read
  };

  EmbeddedStore(EmbeddedStoreOptions options, std::unique_ptr<Connection> connection)
      : options_(std::move(options)), db_(std::move(connection)) {
    if (options_.reap_interval > absl::ZeroDuration()) {
      reaper_ = std::jthread([this](const std::stop_token& stop) { RunReaper(stop); });
    }
  }

  // Deletes the keys whose expiry has passed, each only if it was not put again since it was
  // read (compare on mod_revision), so a renewal racing the reaper wins. Every process that
  // opens the file reaps; the compares make them agree. Returns the number deleted.
  absl::StatusOr<int64_t> ReapExpired(absl::Time now) {
    std::vector<std::pair<std::string, int64_t>> expired;
    {
      absl::MutexLock lock(&mu_);
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(embedded_sql::kSelectExpiredSql));
      stmt.BindInt(1, absl::ToUnixMicros(now));
      stmt.BindInt(2, kReapBatch);
      while (true) {
        DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
        if (!row) {
          break;
        }
        expired.emplace_back(std::string(stmt.Blob(0)), stmt.Int(1));
      }
    }
    if (expired.empty()) {
      return 0;
    }
    // One revision for the lot when none was renewed meanwhile (the usual case); otherwise one
    // transaction per key, so a renewed key does not keep the others alive.
    Txn all;
    for (const auto& [key, mod_revision] : expired) {
      all.compares.push_back({.key = key, .mod_revision = mod_revision});
      all.ops.push_back(Op::Delete(key));
    }
    DISCOVERY_ASSIGN_OR_RETURN(const TxnResult result, Commit(all));
    if (result.succeeded) {
      return result.deleted;
    }
    int64_t deleted = 0;
    for (const auto& [key, mod_revision] : expired) {
      DISCOVERY_ASSIGN_OR_RETURN(const TxnResult one,
                                 Commit({.compares = {{.key = key, .mod_revision = mod_revision}},
                                         .ops = {Op::Delete(key)}}));
      deleted += one.deleted;
    }
    return deleted;
  }

  void RunReaper(const std::stop_token& stop) {
    absl::Mutex wait_mu;
    bool stopping = false;
    std::stop_callback wake(stop, [&] {
      absl::MutexLock lock(&wait_mu);
      stopping = true;
    });
    while (true) {
      // A failure (e.g. the file stays locked by another process) is retried on the next round.
      absl::StatusOr<int64_t> reaped = ReapExpired(absl::Now());
      if (reaped.ok() && *reaped >= kReapBatch) {
        continue;  // more are due right now
      }
      absl::MutexLock lock(&wait_mu);
      if (wait_mu.AwaitWithTimeout(absl::Condition(&stopping), options_.reap_interval)) {
        return;
      }
    }
  }

  static absl::Status Initialize(Connection& db, bool file_backed) {
    if (file_backed) {
      // WAL lets other processes read while one writes, and with synchronous=FULL every
      // acknowledged COMMIT has been fsynced to the log, so it survives kill -9 and power loss.
      DISCOVERY_ASSIGN_OR_RETURN(const std::string mode, db.QueryText("PRAGMA journal_mode=WAL"));
      if (mode != "wal") {
        return absl::FailedPreconditionError(
            absl::StrCat("sqlite ", db.name(), ": cannot enable WAL (journal_mode=", mode, ")"));
      }
    }
    DISCOVERY_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous=FULL"));
    // IMMEDIATE takes the write lock up front, so two processes creating the schema at once
    // serialize on the busy timeout instead of failing.
    DISCOVERY_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(db, "BEGIN IMMEDIATE"));
    DISCOVERY_RETURN_IF_ERROR(db.Exec(embedded_sql::kSchemaSql));
    DISCOVERY_ASSIGN_OR_RETURN(const int64_t has_expires,
                               db.QueryInt(embedded_sql::kHasExpiresColumnSql));
    if (has_expires == 0) {
      DISCOVERY_RETURN_IF_ERROR(db.Exec(embedded_sql::kAddExpiresColumnSql));
    }
    DISCOVERY_RETURN_IF_ERROR(db.Exec(embedded_sql::kExpiresIndexSql));
    return txn.Commit();
  }

  // Takes the next batch off the front of the queue, in arrival order, within the configured
  // bounds; the first pending commit (the leader's own) always goes in.
  std::vector<PendingCommit*> TakeBatch(std::deque<PendingCommit*>& queue) const {
    std::vector<PendingCommit*> batch;
    int64_t bytes = 0;
    while (!queue.empty() && std::ssize(batch) < options_.max_batch_txns) {
      PendingCommit* next = queue.front();
      if (!batch.empty() && bytes + next->bytes > options_.max_batch_bytes) {
        break;
      }
      bytes += next->bytes;
      batch.push_back(next);
      queue.pop_front();
    }
    return batch;
  }

  // Applies `batch` in one SQLite write transaction and sets every result. Returns whether a
  // new revision was committed.
  bool ApplyBatch(const std::vector<PendingCommit*>& batch) {
    absl::MutexLock lock(&mu_);
    commits_.fetch_add(std::ssize(batch), std::memory_order_relaxed);
    bool committed = false;
    absl::Status status = ApplyBatchLocked(batch, committed);
    if (!status.ok()) {
      // Nothing of the batch was committed, so no txn of it may report success.
      for (PendingCommit* pending : batch) {
        pending->result = status;
      }
      return false;
    }
    return committed;
  }

  absl::Status ApplyBatchLocked(const std::vector<PendingCommit*>& batch, bool& committed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // IMMEDIATE: take the write lock before reading, so compares and writes see one state even
    // with other processes writing.
    DISCOVERY_ASSIGN_OR_RETURN(Transaction sql_txn, Transaction::Begin(*db_, "BEGIN IMMEDIATE"));
    write_transactions_.fetch_add(1, std::memory_order_relaxed);
    DISCOVERY_ASSIGN_OR_RETURN(const int64_t first,
                               db_->QueryInt(embedded_sql::kSelectRevisionSql));
    int64_t revision = first;
    for (PendingCommit* pending : batch) {
      DISCOVERY_RETURN_IF_ERROR(RunLocked(embedded_sql::kSavepointSql));
      absl::StatusOr<TxnResult> result = ApplyTxnLocked(*pending->txn, revision);
      if (db_->Autocommit()) {
        // SQLite rolled back the whole transaction (an I/O error, a full disk, ...), taking the
        // txns before this one with it.
        return result.ok() ? absl::InternalError(
                                 absl::StrCat("sqlite ", db_->name(), ": group commit rolled back"))
                           : result.status();
      }
      if (result.ok() && result->revision > revision) {
        DISCOVERY_RETURN_IF_ERROR(RunLocked(embedded_sql::kReleaseSql));
        revision = result->revision;
      } else {
        // A failed compare, no change or an error: whatever this txn wrote is undone, the other
        // txns of the batch stay.
        DISCOVERY_RETURN_IF_ERROR(RunLocked(embedded_sql::kRollbackToSql));
        DISCOVERY_RETURN_IF_ERROR(RunLocked(embedded_sql::kReleaseSql));
      }
      pending->result = std::move(result);
    }
    if (revision == first) {
      // Nothing changed: no COMMIT, no fsync.
      return sql_txn.Rollback();
    }
    {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(embedded_sql::kUpdateRevisionSql));
      stmt.BindInt(1, revision);
      DISCOVERY_RETURN_IF_ERROR(stmt.Run());
    }
    // Keep the newest history_revisions revisions of events.
    const int64_t keep_from = revision - options_.history_revisions + 1;
    if (keep_from > 1) {
      DISCOVERY_RETURN_IF_ERROR(CompactLocked(keep_from));
    }
    DISCOVERY_RETURN_IF_ERROR(sql_txn.Commit());
    committed = true;
    return absl::OkStatus();
  }

  // Applies one txn inside the batch's SQLite transaction on top of store revision `current`.
  // The caller undoes its writes unless the returned revision is current + 1.
  absl::StatusOr<TxnResult> ApplyTxnLocked(const Txn& txn, int64_t current)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    TxnResult result{.succeeded = true, .revision = current};
    for (const Compare& compare : txn.compares) {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(embedded_sql::kSelectModRevisionSql));
      stmt.BindBlob(1, compare.key);
      DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
      const int64_t mod_revision = row ? stmt.Int(0) : 0;
      if (mod_revision != compare.mod_revision) {
        result.succeeded = false;
        return result;
      }
    }

    const int64_t revision = current + 1;
    int64_t seq = 0;
    for (const Op& op : txn.ops) {
      switch (op.type) {
        case Op::Type::kPut:
          DISCOVERY_RETURN_IF_ERROR(ApplyPut(op, revision, seq++));
          break;
        case Op::Type::kDelete: {
          DISCOVERY_ASSIGN_OR_RETURN(const bool deleted, ApplyDelete(op.key, revision, seq));
          if (deleted) {
            ++seq;
            ++result.deleted;
          }
          break;
        }
        case Op::Type::kDeletePrefix: {
          DISCOVERY_ASSIGN_OR_RETURN(const int64_t deleted,
                                     ApplyDeletePrefix(op.key, revision, seq));
          seq += deleted;
          result.deleted += deleted;
          break;
        }
      }
    }
    if (seq != 0) {
      result.revision = revision;
    }
    // Otherwise nothing changed (e.g. deleting a missing key): like etcd, no new revision.
    return result;
  }

  absl::Status RunLocked(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt, db_->Prepare(sql));
    return stmt.Run();
  }

  absl::Status ApplyPut(const Op& op, int64_t revision, int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int64_t create_revision = revision;
    int64_t version = 1;
    {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(embedded_sql::kSelectCreateSql));
      stmt.BindBlob(1, op.key);
      DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
      if (row) {
        create_revision = stmt.Int(0);
        version = stmt.Int(1) + 1;
      }
    }
    {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(embedded_sql::kUpsertSql));
      stmt.BindBlob(1, op.key);
      stmt.BindBlob(2, op.value);
      stmt.BindInt(3, create_revision);
      stmt.BindInt(4, revision);
      stmt.BindInt(5, version);
      if (op.expires == absl::InfiniteFuture()) {
        stmt.BindNull(6);
      } else {
        stmt.BindInt(6, absl::ToUnixMicros(op.expires));
      }
      DISCOVERY_RETURN_IF_ERROR(stmt.Run());
    }
    return InsertEvent(revision, seq, embedded_sql::kEventPut, op.key, op.value, create_revision,
                       version);
  }

  // Returns whether the key existed.
  absl::StatusOr<bool> ApplyDelete(std::string_view key, int64_t revision, int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(embedded_sql::kDeleteKeySql));
      stmt.BindBlob(1, key);
      DISCOVERY_RETURN_IF_ERROR(stmt.Run());
    }
    if (db_->Changes() == 0) {
      return false;
    }
    DISCOVERY_RETURN_IF_ERROR(
        InsertEvent(revision, seq, embedded_sql::kEventDelete, key, "", 0, 0));
    return true;
  }

  // Returns the number of keys deleted; their events get consecutive seq from `first_seq`, in
  // key order.
  absl::StatusOr<int64_t> ApplyDeletePrefix(std::string_view prefix, int64_t revision,
                                            int64_t first_seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string end = PrefixEnd(prefix);
    std::vector<std::string> keys;
    {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(end.empty() ? embedded_sql::kRangeUnboundedSql
                                                          : embedded_sql::kRangeBoundedSql));
      stmt.BindBlob(1, prefix);
      if (!end.empty()) {
        stmt.BindBlob(2, end);
      }
      while (true) {
        DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
        if (!row) {
          break;
        }
        keys.emplace_back(stmt.Blob(0));
      }
    }
    if (keys.empty()) {
      return 0;
    }
    {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(end.empty() ? embedded_sql::kDeleteRangeUnboundedSql
                                                          : embedded_sql::kDeleteRangeBoundedSql));
      stmt.BindBlob(1, prefix);
      if (!end.empty()) {
        stmt.BindBlob(2, end);
      }
      DISCOVERY_RETURN_IF_ERROR(stmt.Run());
    }
    int64_t seq = first_seq;
    for (const std::string& key : keys) {
      DISCOVERY_RETURN_IF_ERROR(
          InsertEvent(revision, seq++, embedded_sql::kEventDelete, key, "", 0, 0));
    }
    return static_cast<int64_t>(keys.size());
  }

  absl::Status InsertEvent(int64_t revision, int64_t seq, int type, std::string_view key,
                           std::string_view value, int64_t create_revision, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                               db_->Prepare(embedded_sql::kInsertEventSql));
    stmt.BindInt(1, revision);
    stmt.BindInt(2, seq);
    stmt.BindInt(3, type);
    stmt.BindBlob(4, key);
    stmt.BindBlob(5, value);
    stmt.BindInt(6, create_revision);
    stmt.BindInt(7, version);
    return stmt.Run();
  }

  // Drops events before `revision` and records it; never moves the compaction point back.
  // Must run inside a write transaction.
  absl::Status CompactLocked(int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    DISCOVERY_ASSIGN_OR_RETURN(const int64_t compacted,
                               db_->QueryInt(embedded_sql::kSelectCompactedSql));
    if (revision <= compacted) {
      return absl::OkStatus();
    }
    {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(embedded_sql::kDeleteEventsSql));
      stmt.BindInt(1, revision);
      DISCOVERY_RETURN_IF_ERROR(stmt.Run());
    }
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                               db_->Prepare(embedded_sql::kUpdateCompactedSql));
    stmt.BindInt(1, revision);
    return stmt.Run();
  }

  // Reads the events of [next, next + kWatchBatchRevisions) under `prefix` from one snapshot.
  absl::StatusOr<WatchBatch> ReadWatchBatch(std::string_view prefix, std::string_view end,
                                            int64_t next) {
    absl::MutexLock lock(&mu_);
    DISCOVERY_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_, "BEGIN"));
    WatchBatch batch;
    DISCOVERY_ASSIGN_OR_RETURN(batch.revision, db_->QueryInt(embedded_sql::kSelectRevisionSql));
    DISCOVERY_ASSIGN_OR_RETURN(const int64_t compacted,
                               db_->QueryInt(embedded_sql::kSelectCompactedSql));
    if (next < compacted) {
      batch.compact_revision = compacted;
      DISCOVERY_RETURN_IF_ERROR(txn.Commit());
      return batch;
    }
    // Revisions after the snapshot's are not committed yet and must be read again later.
    batch.next = std::min(next + kWatchBatchRevisions, batch.revision + 1);
    if (batch.next > next) {
      DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                                 db_->Prepare(end.empty() ? embedded_sql::kEventsUnboundedSql
                                                          : embedded_sql::kEventsBoundedSql));
      stmt.BindInt(1, next);
      stmt.BindInt(2, batch.next);
      stmt.BindBlob(3, prefix);
      if (!end.empty()) {
        stmt.BindBlob(4, end);
      }
      while (true) {
        DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
        if (!row) {
          break;
        }
        const bool is_put = stmt.Int(1) == embedded_sql::kEventPut;
        batch.events.push_back({.type = is_put ? WatchEvent::Type::kPut : WatchEvent::Type::kDelete,
                                .kv = {.key = std::string(stmt.Blob(2)),
                                       .value = std::string(stmt.Blob(3)),
                                       .create_revision = stmt.Int(4),
                                       .mod_revision = stmt.Int(0),
                                       .version = stmt.Int(5)}});
      }
    } else {
      batch.next = next;
    }
    DISCOVERY_RETURN_IF_ERROR(txn.Commit());
    return batch;
  }

  // The body of a watch thread: deliver, then sleep until a local commit, the poll interval
  // (commits of other processes) or cancellation.
  void RunWatch(std::stop_token stop, const std::string& prefix, int64_t next,
                const WatchCallback& callback) {
    const std::string end = PrefixEnd(prefix);
    // Cancellation must interrupt the wait below; a Mutex release re-evaluates the waiters'
    // conditions, which check stop_requested().
    std::stop_callback wake(stop, [this] { absl::MutexLock lock(&signal_mu_); });
    while (!stop.stop_requested()) {
      uint64_t seen_commits = 0;
      {
        // Taken before the read: a commit landing after the read changes the counter, so the
        // wait below cannot miss it.
        absl::MutexLock lock(&signal_mu_);
        seen_commits = local_commits_;
      }
      absl::StatusOr<WatchBatch> batch = ReadWatchBatch(prefix, end, next);
      if (batch.ok()) {
        if (batch->compact_revision != 0) {
          callback({.revision = batch->revision, .compact_revision = batch->compact_revision});
          return;
        }
        const bool caught_up = batch->next > batch->revision;
        next = batch->next;
        if (!batch->events.empty()) {
          callback({.events = std::move(batch->events), .revision = batch->revision});
        }
        if (!caught_up) {
          continue;
        }
      }
      // A failed read (e.g. the file is locked for longer than busy_timeout) is retried after
      // the poll interval, resuming at `next`.
      absl::MutexLock lock(&signal_mu_);
      auto woken = [this, &stop, seen_commits]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(signal_mu_) {
        return local_commits_ != seen_commits || stop.stop_requested();
      };
      signal_mu_.AwaitWithTimeout(absl::Condition(&woken), options_.poll_interval);
    }
  }

  const EmbeddedStoreOptions options_;

  // Serializes all use of the SQLite connection (opened NOMUTEX).
  absl::Mutex mu_;
  const std::unique_ptr<Connection> db_ ABSL_PT_GUARDED_BY(mu_);

  // Group-commit counters (GetEmbeddedStoreStats); atomic so they can be read while a leader
  // holds mu_ waiting for another process's write lock.
  std::atomic<int64_t> commits_ = 0;
  std::atomic<int64_t> write_transactions_ = 0;

  CommitQueue<PendingCommit> queue_;

  // Counts commits of this store object; watches wait on it.
  absl::Mutex signal_mu_;
  uint64_t local_commits_ ABSL_GUARDED_BY(signal_mu_) = 0;

  // Last: stops and joins before anything it uses is destroyed.
  std::jthread reaper_;
};

absl::StatusOr<std::unique_ptr<Store>> OpenEmbeddedStore(const EmbeddedStoreOptions& options) {
  DISCOVERY_ASSIGN_OR_RETURN(std::unique_ptr<EmbeddedStore> store, EmbeddedStore::Create(options));
  return std::unique_ptr<Store>(std::move(store));
}

absl::StatusOr<EmbeddedStoreStats> GetEmbeddedStoreStats(Store& store) {
  auto* embedded = dynamic_cast<EmbeddedStore*>(&store);
  if (embedded == nullptr) {
    return absl::InvalidArgumentError("stats: not an embedded store");
  }
  return embedded->Stats();
}

absl::StatusOr<int64_t> ReapEmbeddedStore(Store& store, absl::Time now) {
  auto* embedded = dynamic_cast<EmbeddedStore*>(&store);
  if (embedded == nullptr) {
    return absl::InvalidArgumentError("reap: not an embedded store");
  }
  return embedded->ReapExpired(now);
}

absl::Status CompactEmbeddedStore(Store& store, int64_t revision) {
  auto* embedded = dynamic_cast<EmbeddedStore*>(&store);
  if (embedded == nullptr) {
    return absl::InvalidArgumentError("compact: not an embedded store");
  }
  return embedded->Compact(revision);
}

}  // namespace discovery::store
