// The embedded store: a single-file SQLite database (WAL, synchronous=FULL) with the same
// semantics as etcd (revisions, prefix ranges, transactions, ordered watches). Every
// acknowledged Commit is durable across kill -9. Several processes may open the same file
// (e.g. discoveryd server and discoveryd exporter); watches see commits of other processes too.
//
// Group commit: Commit() calls of concurrent threads are queued and applied in arrival order by
// one of them (the leader) in a single SQLite write transaction, each in its own savepoint, so a
// batch pays one COMMIT and one fsync. Each transaction still gets its own revision and fails or
// succeeds on its own; only an error of the SQLite transaction as a whole (BEGIN, COMMIT, an I/O
// error that rolls everything back) fails every Commit of the batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "store/store.h"

namespace discovery::store {

struct EmbeddedStoreOptions {
  // Database file; created with its parent directory when missing. Empty: a private in-memory
  // database (tests).
  std::string path;
  // How often watches look for commits made by other processes; commits of this process wake
  // watches at once.
  absl::Duration poll_interval = absl::Milliseconds(100);
  // Number of past revisions whose events are kept for watches that start in the past; older
  // revisions are compacted (a watch from before them gets compact_revision).
  int64_t history_revisions = 100000;
  // How long a write waits for another process holding the database's write lock before it
  // fails with Unavailable.
  absl::Duration busy_timeout = absl::Seconds(10);
  // Bounds of one group commit: at most this many transactions, and no more than this many
  // bytes of keys and values once the first transaction is in (a larger one goes alone).
  int max_batch_txns = 256;
  int64_t max_batch_bytes = 4 << 20;
  // How often the store deletes keys whose expiry (Op::expires) has passed; zero turns the
  // reaper off (expired keys then stay until ReapEmbeddedStore is called). The reaper also wakes
  // at the earliest expiry it knows of, so a key goes at its deadline plus the time of the
  // delete, or within this interval of a deadline another process put or moved meanwhile.
  absl::Duration reap_interval = absl::Milliseconds(250);
  // Renew updates the record and expiry of a key in place: no revision, no watch event, and
  // readers leave the expiry of every key with one to the reaper (Store::RenewsInPlace). False:
  // Renew puts the keys again (one revision per renewal) and readers expire records at the
  // deadline they carry, as etcd's registrations; for tests of that path. Every process on one
  // file must agree.
  bool renew_in_place = true;
  // Pages the write-ahead log may gather before a thread of the store copies them into the
  // database file (a checkpoint), so that no commit waits for that copy and its fsync. A commit
  // checkpoints itself only when the log has grown to eight times this because the thread
  // cannot keep up (another process reading for long). Ignored for an in-memory database.
  int checkpoint_pages = 1000;
  // Called with "checkpoint" or "reap" and the error when work the store does on its own threads
  // fails (it is tried again later), on that thread; each failure is also logged. A checkpoint
  // that finds another connection checkpointing has nothing to report. Unset: only logged.
  std::function<void(std::string_view op, const absl::Status& error)> on_background_error;
};

class EmbeddedStore;

// Opens (creating if needed) the store described by `options`. Errors: InvalidArgument for bad
// options, Unavailable when the file cannot be opened or stays locked, DataLoss when it is not a
// valid store database. The returned store is thread-safe; its WatchHandles must be destroyed
// before it.
absl::StatusOr<std::unique_ptr<Store>> OpenEmbeddedStore(const EmbeddedStoreOptions& options);

// Discards the watch history before `revision` (etcd's Compact): watches starting earlier get
// compact_revision. The current keys are untouched. InvalidArgument when `store` is not an
// embedded store, OutOfRange when `revision` is in the future. Thread-safe.
absl::Status CompactEmbeddedStore(Store& store, int64_t revision);

// Deletes the keys whose expiry is at or before `now` (what the reaper does on its own), each at
// most once across processes, and returns how many (at most 1000 per call). InvalidArgument
// when `store` is not an embedded store.
absl::StatusOr<int64_t> ReapEmbeddedStore(Store& store, absl::Time now);

// Group-commit counters of one embedded store object, for tests and benchmarks.
struct EmbeddedStoreStats {
  // Commit() calls that reached the store (passed validation) and have been applied or failed.
  int64_t commits = 0;
  // SQLite write transactions begun for them: at most one COMMIT and fsync each.
  int64_t write_transactions = 0;
  // Commit() calls queued right now and not yet taken into a batch.
  int64_t queued_commits = 0;
  // Checkpoints of the write-ahead log run by the store's checkpoint thread, and by a commit
  // because the log had grown past eight times checkpoint_pages.
  int64_t background_checkpoints = 0;
  int64_t commit_checkpoints = 0;
};

// InvalidArgument when `store` is not an embedded store. Thread-safe.
absl::StatusOr<EmbeddedStoreStats> GetEmbeddedStoreStats(Store& store);

}  // namespace discovery::store
