#include "store/embedded/embedded_store.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "store/embedded/embedded_sql.h"
#include "store/embedded/embedded_store_impl.h"
#include "store/embedded/sqlite_db.h"

namespace discovery::store {
namespace {

// A watch reads at most this many revisions per delivery, so a watch far behind catches up in
// bounded memory; a single revision is never split.
constexpr int64_t kWatchBatchRevisions = 1000;

// The reaper deletes at most this many expired keys per transaction.
constexpr int64_t kReapBatch = 1000;
// The shortest sleep of the reaper between two rounds: a deadline due in less is reaped a little
// late rather than in a loop.
constexpr absl::Duration kReapMinWait = absl::Milliseconds(5);

using sqlite_internal::Connection;
using sqlite_internal::Transaction;

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddedStore>> EmbeddedStore::Create(
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
  if (options.checkpoint_pages < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "embedded store: checkpoint_pages must be >= 1, got ", options.checkpoint_pages));
  }
  if (!options.path.empty()) {
    const std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
    std::error_code error;
    if (!parent.empty()) {
      std::filesystem::create_directories(parent, error);
      if (error) {
        return absl::UnavailableError(
            absl::StrCat("embedded store ", options.path, ": create directory: ", error.message()));
      }
    }
  }
  DISCOVERY_ASSIGN_OR_RETURN(std::unique_ptr<Connection> connection,
                             Connection::Open(options.path, options.busy_timeout));
  DISCOVERY_RETURN_IF_ERROR(Initialize(*connection, !options.path.empty()));
  std::unique_ptr<Connection> checkpointer;
  if (!options.path.empty()) {
    DISCOVERY_ASSIGN_OR_RETURN(checkpointer, Connection::Open(options.path, options.busy_timeout));
    // A checkpoint syncs the database file before the log may be reused.
    DISCOVERY_RETURN_IF_ERROR(checkpointer->Exec("PRAGMA synchronous=FULL"));
  }
  return std::unique_ptr<EmbeddedStore>(
      new EmbeddedStore(options, std::move(connection), std::move(checkpointer)));
}

absl::StatusOr<KeyValue> EmbeddedStore::Get(std::string_view key) {
  if (key.empty()) {
    return absl::InvalidArgumentError("get: empty key");
  }
  absl::MutexLock lock(&mu_);
  DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt, db_->Prepare(embedded_sql::kSelectKeySql));
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

absl::StatusOr<Connection::Statement> EmbeddedStore::PrepareRange(std::string_view from,
                                                                  std::string_view end) {
  DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                             db_->Prepare(end.empty() ? embedded_sql::kRangeUnboundedSql
                                                      : embedded_sql::kRangeBoundedSql));
  stmt.BindBlob(1, from);  // bound as copies: `end` may go
  if (!end.empty()) {
    stmt.BindBlob(2, end);
  }
  return stmt;
}

absl::StatusOr<RangeResult> EmbeddedStore::Range(std::string_view prefix) {
  return RangeInOneBatch(*this, prefix);
}

absl::StatusOr<int64_t> EmbeddedStore::RangeInBatches(std::string_view prefix, size_t batch_size,
                                                      const ConsumeBatch& consume) {
  DISCOVERY_RETURN_IF_ERROR(CheckBatchSize(batch_size));
  absl::MutexLock lock(&mu_);
  // One read transaction, so the keys and the revision come from the same snapshot.
  DISCOVERY_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_, "BEGIN"));
  DISCOVERY_ASSIGN_OR_RETURN(const int64_t revision,
                             db_->QueryInt(embedded_sql::kSelectRevisionSql));
  DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt, PrepareRange(prefix));
  std::vector<KeyValue> batch;
  while (true) {
    DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
    if (!row) {
      break;
    }
    batch.push_back({.key = std::string(stmt.Blob(0)),
                     .value = std::string(stmt.Blob(1)),
                     .create_revision = stmt.Int(2),
                     .mod_revision = stmt.Int(3),
                     .version = stmt.Int(4)});
    if (batch.size() == batch_size) {
      consume(std::exchange(batch, {}));
    }
  }
  DISCOVERY_RETURN_IF_ERROR(txn.Commit());
  if (!batch.empty()) {
    consume(std::move(batch));
  }
  return revision;
}

absl::StatusOr<std::unique_ptr<WatchHandle>> EmbeddedStore::Watch(std::string_view prefix,
                                                                  int64_t start_revision,
                                                                  WatchCallback callback) {
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

absl::StatusOr<int64_t> EmbeddedStore::CurrentRevision() {
  absl::MutexLock lock(&mu_);
  return db_->QueryInt(embedded_sql::kSelectRevisionSql);
}

EmbeddedStoreStats EmbeddedStore::Stats() {
  EmbeddedStoreStats stats{
      .commits = commits_.load(std::memory_order_relaxed),
      .write_transactions = write_transactions_.load(std::memory_order_relaxed),
      .background_checkpoints = background_checkpoints_.load(std::memory_order_relaxed),
      .commit_checkpoints = commit_checkpoints_.load(std::memory_order_relaxed)};
  stats.queued_commits = static_cast<int64_t>(queue_.queued());
  return stats;
}

EmbeddedStore::EmbeddedStore(EmbeddedStoreOptions options, std::unique_ptr<Connection> connection,
                             std::unique_ptr<Connection> checkpointer)
    : options_(std::move(options)),
      db_(std::move(connection)),
      checkpointer_db_(std::move(checkpointer)) {
  if (checkpointer_db_ != nullptr) {
    absl::MutexLock lock(&mu_);
    db_->OnWalCommit([this](int wal_pages) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      // Runs inside a commit, so under mu_ (which the analysis cannot see through SQLite).
      OnWalCommit(wal_pages);
    });
    checkpointer_ = std::jthread([this](const std::stop_token& stop) {
      NameThisThread("sqlite-checkpt");
      RunCheckpointer(stop);
    });
  }
  if (options_.reap_interval > absl::ZeroDuration()) {
    reaper_ = std::jthread([this](const std::stop_token& stop) {
      NameThisThread("store-reaper");
      RunReaper(stop);
    });
  }
}

void EmbeddedStore::OnWalCommit(int wal_pages) {
  if (wal_pages < options_.checkpoint_pages) {
    return;
  }
  if (wal_pages >= kCommitCheckpointFactor * options_.checkpoint_pages) {
    // The checkpoint thread falls behind: bound the log as SQLite's own checkpoint on commit
    // would. A failure leaves the log to the next commit or the thread.
    if (CheckpointReported(*db_)) {
      commit_checkpoints_.fetch_add(1, std::memory_order_relaxed);
    }
    return;
  }
  absl::MutexLock lock(&checkpoint_mu_);
  checkpoint_due_ = true;
}

void EmbeddedStore::RunCheckpointer(const std::stop_token& stop) {
  std::stop_callback wake(stop, [this] {
    absl::MutexLock lock(&checkpoint_mu_);
    checkpoint_stopping_ = true;
  });
  while (true) {
    {
      absl::MutexLock lock(&checkpoint_mu_);
      checkpoint_mu_.Await(absl::Condition(this, &EmbeddedStore::CheckpointDueOrStopping));
      if (checkpoint_stopping_) {
        return;  // closing the last connection checkpoints what is left
      }
      checkpoint_due_ = false;
    }
    // Not under mu_: commits go on meanwhile. A failure (another connection is checkpointing,
    // an I/O error) is tried again after the next commit that finds the log long.
    if (CheckpointReported(*checkpointer_db_)) {
      background_checkpoints_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

bool EmbeddedStore::CheckpointReported(Connection& db) const {
  const absl::StatusOr<int> copied = db.Checkpoint();
  // Unavailable: another connection (of this process or another) holds the checkpoint; the log
  // is copied all the same.
  if (!copied.ok() && !absl::IsUnavailable(copied.status())) {
    ReportBackgroundError("checkpoint", copied.status());
  }
  return copied.ok();
}

void EmbeddedStore::ReportBackgroundError(std::string_view op, const absl::Status& error) const {
  LogWarn("embedded store background work failed, retried later",
          {{"op", std::string(op)}, {"error", error.ToString()}});
  if (options_.on_background_error) {
    options_.on_background_error(op, error);
  }
}

absl::StatusOr<int64_t> EmbeddedStore::ReapExpired(absl::Time now) {
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
  DISCOVERY_ASSIGN_OR_RETURN(const TxnResult result, CommitExpired(all, now));
  if (result.succeeded) {
    return result.deleted;
  }
  int64_t deleted = 0;
  for (const auto& [key, mod_revision] : expired) {
    DISCOVERY_ASSIGN_OR_RETURN(
        const TxnResult one,
        CommitExpired(
            {.compares = {{.key = key, .mod_revision = mod_revision}}, .ops = {Op::Delete(key)}},
            now));
    deleted += one.deleted;
  }
  return deleted;
}

absl::StatusOr<absl::Time> EmbeddedStore::NextExpiry() {
  absl::MutexLock lock(&mu_);
  DISCOVERY_ASSIGN_OR_RETURN(const int64_t next, db_->QueryInt(embedded_sql::kSelectNextExpirySql));
  return next < 0 ? absl::InfiniteFuture() : absl::FromUnixMicros(next);
}

void EmbeddedStore::RunReaper(const std::stop_token& stop) {
  absl::Mutex wait_mu;
  bool stopping = false;
  std::stop_callback wake(stop, [&] {
    absl::MutexLock lock(&wait_mu);
    stopping = true;
  });
  while (true) {
    // A failure (e.g. the file stays locked by another process) is retried on the next round.
    absl::StatusOr<int64_t> reaped = ReapExpired(absl::Now());
    if (!reaped.ok()) {
      ReportBackgroundError("reap", reaped.status());
    }
    if (reaped.ok() && *reaped >= kReapBatch) {
      continue;  // more are due right now
    }
    // Views leave the expiry of renewed keys to this delete, so it comes at the next deadline
    // rather than up to a whole interval after it; at least every interval all the same, for
    // deadlines other processes put or moved meanwhile. A failed round waits the interval.
    absl::Duration wait = options_.reap_interval;
    if (absl::StatusOr<absl::Time> next = NextExpiry(); reaped.ok() && next.ok()) {
      wait = std::clamp(*next - absl::Now(), kReapMinWait, options_.reap_interval);
    }
    absl::MutexLock lock(&wait_mu);
    if (wait_mu.AwaitWithTimeout(absl::Condition(&stopping), wait)) {
      return;
    }
  }
}

absl::Status EmbeddedStore::Initialize(Connection& db, bool file_backed) {
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

absl::StatusOr<EmbeddedStore::WatchBatch> EmbeddedStore::ReadWatchBatch(std::string_view prefix,
                                                                        std::string_view end,
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
                                     .version = stmt.Int(5)},
                              .expired = stmt.Int(1) == embedded_sql::kEventExpired});
    }
  } else {
    batch.next = next;
  }
  DISCOVERY_RETURN_IF_ERROR(txn.Commit());
  return batch;
}

void EmbeddedStore::RunWatch(std::stop_token stop, const std::string& prefix, int64_t next,
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
