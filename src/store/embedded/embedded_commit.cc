// The group-commit write path of the embedded store: Commit queues a transaction, a leader
// applies a batch of them in one SQLite write transaction, each in its own savepoint.
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "common/status_macros.h"
#include "store/embedded/embedded_sql.h"
#include "store/embedded/embedded_store_impl.h"
#include "store/embedded/sqlite_db.h"

namespace discovery::store {
namespace {

using sqlite_internal::Connection;
using sqlite_internal::Transaction;

// etcd rejects a transaction that writes one key twice or puts a key its own deletes cover
// (ErrGRPCDuplicateKey); the embedded store does the same so both backends agree.
absl::Status ValidateTxn(const Txn& txn) {
  DISCOVERY_RETURN_IF_ERROR(CheckDeleteRanges(txn));
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
    if (op.type == Op::Type::kDeleteRange) {
      auto it = puts.lower_bound(op.key);
      if (it != puts.end() && *it < op.range_end) {
        return absl::InvalidArgumentError(absl::StrCat("txn: key ", std::string(*it),
                                                       " put in deleted range [", op.key, ", ",
                                                       op.range_end, ")"));
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

absl::StatusOr<TxnResult> EmbeddedStore::Commit(const Txn& txn) {
  DISCOVERY_RETURN_IF_ERROR(ValidateTxn(txn));
  return Enqueue(PendingCommit{.txn = &txn, .bytes = TxnBytes(txn)});
}

absl::StatusOr<TxnResult> EmbeddedStore::CommitExpired(const Txn& txn, absl::Time expired_by) {
  DISCOVERY_RETURN_IF_ERROR(ValidateTxn(txn));
  return Enqueue(PendingCommit{.txn = &txn, .bytes = TxnBytes(txn), .expired_by = expired_by});
}

absl::StatusOr<TxnResult> EmbeddedStore::Enqueue(PendingCommit self) {
  queue_.Commit(self);
  return std::move(self.result);
}

void EmbeddedStore::CommitAsync(Txn txn, CommitCallback done) {
  if (absl::Status valid = ValidateTxn(txn); !valid.ok()) {
    std::move(done)(std::move(valid));
    return;
  }
  auto* commit = new AsyncCommit(std::move(txn), std::move(done));
  commit->pending.bytes = TxnBytes(commit->txn);
  queue_.Submit(commit->pending, [commit] {
    std::unique_ptr<AsyncCommit> owned(commit);
    std::move(owned->done)(std::move(owned->pending.result));
  });
}

void EmbeddedStore::ApplyAndSignal(const std::vector<PendingCommit*>& batch) {
  if (ApplyBatch(batch)) {
    // Wake this process's watches at once; other processes find the commit by polling.
    absl::MutexLock lock(&signal_mu_);
    ++local_commits_;
  }
}

absl::Status EmbeddedStore::Compact(int64_t revision) {
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

std::vector<EmbeddedStore::PendingCommit*> EmbeddedStore::TakeBatch(
    std::deque<PendingCommit*>& queue) const {
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

bool EmbeddedStore::ApplyBatch(const std::vector<PendingCommit*>& batch) {
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

absl::Status EmbeddedStore::ApplyBatchLocked(const std::vector<PendingCommit*>& batch,
                                             bool& committed) {
  // IMMEDIATE: take the write lock before reading, so compares and writes see one state even
  // with other processes writing.
  DISCOVERY_ASSIGN_OR_RETURN(Transaction sql_txn, Transaction::Begin(*db_, "BEGIN IMMEDIATE"));
  write_transactions_.fetch_add(1, std::memory_order_relaxed);
  DISCOVERY_ASSIGN_OR_RETURN(const int64_t first, db_->QueryInt(embedded_sql::kSelectRevisionSql));
  int64_t revision = first;
  for (PendingCommit* pending : batch) {
    DISCOVERY_RETURN_IF_ERROR(RunLocked(embedded_sql::kSavepointSql));
    absl::StatusOr<TxnResult> result = ApplyTxnLocked(*pending->txn, revision, pending->expired_by);
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

absl::StatusOr<TxnResult> EmbeddedStore::ApplyTxnLocked(const Txn& txn, int64_t current,
                                                        std::optional<absl::Time> expired_by) {
  TxnResult result{.succeeded = true, .revision = current};
  for (const Compare& compare : txn.compares) {
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                               db_->Prepare(embedded_sql::kSelectRenewableSql));
    stmt.BindBlob(1, compare.key);
    DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
    const int64_t mod_revision = row ? stmt.Int(0) : 0;
    // A key renewed in place since the reaper read it has the same mod_revision but a later
    // expiry: it must stay.
    const bool still_expired =
        !expired_by.has_value() ||
        (row && stmt.Int(1) >= 0 && stmt.Int(1) <= absl::ToUnixMicros(*expired_by));
    if (mod_revision != compare.mod_revision || !still_expired) {
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
        DISCOVERY_ASSIGN_OR_RETURN(
            const bool deleted, ApplyDelete(op.key, revision, seq,
                                            expired_by.has_value() ? embedded_sql::kEventExpired
                                                                   : embedded_sql::kEventDelete));
        if (deleted) {
          ++seq;
          ++result.deleted;
        }
        break;
      }
      case Op::Type::kDeletePrefix:
      case Op::Type::kDeleteRange: {
        DISCOVERY_ASSIGN_OR_RETURN(
            const int64_t deleted,
            ApplyDeleteRange(op.key,
                             op.type == Op::Type::kDeletePrefix ? PrefixEnd(op.key) : op.range_end,
                             revision, seq));
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

absl::Status EmbeddedStore::RunLocked(const char* sql) {
  DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt, db_->Prepare(sql));
  return stmt.Run();
}

absl::Status EmbeddedStore::ApplyPut(const Op& op, int64_t revision, int64_t seq) {
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
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt, db_->Prepare(embedded_sql::kUpsertSql));
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

absl::StatusOr<bool> EmbeddedStore::ApplyDelete(std::string_view key, int64_t revision, int64_t seq,
                                                int event_type) {
  {
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt,
                               db_->Prepare(embedded_sql::kDeleteKeySql));
    stmt.BindBlob(1, key);
    DISCOVERY_RETURN_IF_ERROR(stmt.Run());
  }
  if (db_->Changes() == 0) {
    return false;
  }
  DISCOVERY_RETURN_IF_ERROR(InsertEvent(revision, seq, event_type, key, "", 0, 0));
  return true;
}

absl::StatusOr<int64_t> EmbeddedStore::ApplyDeleteRange(std::string_view from, std::string_view end,
                                                        int64_t revision, int64_t first_seq) {
  std::vector<std::string> keys;
  {
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement stmt, PrepareRange(from, end));
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
    stmt.BindBlob(1, from);
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

absl::Status EmbeddedStore::InsertEvent(int64_t revision, int64_t seq, int type,
                                        std::string_view key, std::string_view value,
                                        int64_t create_revision, int64_t version) {
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

absl::Status EmbeddedStore::CompactLocked(int64_t revision) {
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

absl::StatusOr<RenewResult> EmbeddedStore::Renew(const Renewal& renewal) {
  if (!options_.renew_in_place) {
    return Store::Renew(renewal);
  }
  if (renewal.keys.empty()) {
    return RenewResult{};
  }
  // The renewal's own time, on the caller's clock as its deadline is: the reaper is given
  // that clock's time too.
  const int64_t now = absl::ToUnixMicros(renewal.expires - renewal.ttl);
  const int64_t expires = absl::ToUnixMicros(renewal.expires);
  absl::MutexLock lock(&mu_);
  // IMMEDIATE: the reaper of another process cannot delete a key between the check and the
  // update (its delete compares the expiry under the same write lock).
  DISCOVERY_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_, "BEGIN IMMEDIATE"));
  RenewResult result;
  for (const RenewKey& key : renewal.keys) {
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement select,
                               db_->Prepare(embedded_sql::kSelectRenewableSql));
    select.BindBlob(1, key.key);
    DISCOVERY_ASSIGN_OR_RETURN(const bool row, select.Step());
    if (!row || select.Int(0) != key.mod_revision || select.Int(1) < 0) {
      // Deleted, put again or put without an expiry since the caller read it.
      return RenewResult{.succeeded = false};  // rolls back
    }
    if (select.Int(1) <= now) {
      result.gone.push_back(key.key);  // expired; the reaper deletes it
      continue;
    }
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement update, db_->Prepare(embedded_sql::kRenewSql));
    update.BindBlob(1, key.key);
    update.BindBlob(2, key.value);
    update.BindInt(3, expires);
    DISCOVERY_RETURN_IF_ERROR(update.Run());
  }
  DISCOVERY_RETURN_IF_ERROR(txn.Commit());
  return result;
}

absl::StatusOr<std::vector<std::optional<absl::Time>>> EmbeddedStore::Deadlines(
    const std::vector<LeasedKey>& keys) {
  std::vector<std::optional<absl::Time>> deadlines;
  deadlines.reserve(keys.size());
  absl::MutexLock lock(&mu_);
  DISCOVERY_ASSIGN_OR_RETURN(Transaction txn, Transaction::Begin(*db_, "BEGIN"));
  for (const LeasedKey& key : keys) {
    DISCOVERY_ASSIGN_OR_RETURN(Connection::Statement select,
                               db_->Prepare(embedded_sql::kSelectRenewableSql));
    select.BindBlob(1, key.key);
    DISCOVERY_ASSIGN_OR_RETURN(const bool row, select.Step());
    if (row && select.Int(1) >= 0) {
      deadlines.emplace_back(absl::FromUnixMicros(select.Int(1)));
    } else {
      deadlines.emplace_back(std::nullopt);
    }
  }
  DISCOVERY_RETURN_IF_ERROR(txn.Commit());
  return deadlines;
}

}  // namespace discovery::store
