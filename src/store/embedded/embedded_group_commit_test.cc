#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "store/embedded/embedded_store.h"
#include "store/embedded/embedded_store_test_util.h"
#include "testing/status_matchers.h"
#include "testing/store_contract.h"

// Group commit: commits queued behind a batch share one SQLite write transaction, bounded by
// count and bytes, and a failing txn is undone alone. A foreign connection's write lock decides
// what queues, so no sleep decides what is batched.
namespace discovery::store {
namespace {

// Runs `sql` on `path` through a connection of its own (e.g. to install a trigger).
void ExecOnFile(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
  EXPECT_EQ(rc, SQLITE_OK) << (message != nullptr ? message : "") << " in " << sql;
  sqlite3_free(message);
  sqlite3_close(db);
}

// Holds the write lock of a database file from a connection of its own, as another process in
// the middle of a write: the store's next batch waits for it in BEGIN IMMEDIATE (busy_timeout)
// while further commits queue up behind that batch.
class ForeignWriteLock {
 public:
  explicit ForeignWriteLock(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
      held_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
    }
  }
  ForeignWriteLock(const ForeignWriteLock&) = delete;
  ForeignWriteLock& operator=(const ForeignWriteLock&) = delete;
  ForeignWriteLock(ForeignWriteLock&&) = delete;
  ForeignWriteLock& operator=(ForeignWriteLock&&) = delete;
  ~ForeignWriteLock() {
    Release();
    sqlite3_close(db_);
  }

  bool held() const { return held_; }
  void Release() {
    if (held_) {
      held_ = false;
      EXPECT_EQ(sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
    }
  }

 private:
  sqlite3* db_ = nullptr;
  bool held_ = false;
};

EmbeddedStoreStats StatsOf(Store& store) {
  absl::StatusOr<EmbeddedStoreStats> stats = GetEmbeddedStoreStats(store);
  EXPECT_THAT(stats, IsOk());
  return stats.ok() ? *stats : EmbeddedStoreStats{};
}

// Waits until `done(stats)` holds; false if it does not within kStoreWaitTimeout (a guard
// against hanging, not a timing expectation).
bool WaitForStats(Store& store, const std::function<bool(const EmbeddedStoreStats&)>& done) {
  const absl::Time deadline = absl::Now() + ::discovery::testing::kStoreWaitTimeout;
  while (!done(StatsOf(store))) {
    if (absl::Now() > deadline) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// Group-commit tests run with a long busy timeout: their batches wait for a ForeignWriteLock.
EmbeddedStoreOptions GroupCommitOptions(std::string path) {
  EmbeddedStoreOptions options = FileOptions(std::move(path));
  options.busy_timeout = absl::Seconds(60);
  return options;
}

// What CommitBehindForeignLock saw.
struct QueuedCommits {
  absl::StatusOr<TxnResult> blocker = absl::UnknownError("not run");
  std::vector<absl::StatusOr<TxnResult>> results;  // one per txn, in order
  int64_t write_transactions = 0;                  // SQLite write transactions for all of them
};

// Commits a "blocker" put that becomes a batch of its own and waits for the foreign write lock
// on `path`, then each of `txns` from a thread of its own, one after the other has queued, so
// they line up in this order behind the blocker. Releases the lock once all are queued and
// returns when every commit has returned. Deterministic: no sleeps decide what is batched.
QueuedCommits CommitBehindForeignLock(Store& store, const std::string& path,
                                      const std::vector<Txn>& txns) {
  QueuedCommits out;
  out.results.assign(txns.size(), absl::UnknownError("not run"));
  ForeignWriteLock lock(path);
  EXPECT_TRUE(lock.held());
  const EmbeddedStoreStats before = StatsOf(store);
  std::vector<std::jthread> threads;
  threads.emplace_back([&] { out.blocker = Put(store, "/blocker", "b"); });
  // The blocker's batch is taken (and waits for the lock) once it counts as a commit.
  EXPECT_TRUE(WaitForStats(
      store, [&](const EmbeddedStoreStats& stats) { return stats.commits == before.commits + 1; }));
  for (size_t i = 0; i < txns.size(); ++i) {
    threads.emplace_back([&, i] { out.results[i] = store.Commit(txns[i]); });
    EXPECT_TRUE(WaitForStats(store,
                             [&](const EmbeddedStoreStats& stats) {
                               return stats.queued_commits == static_cast<int64_t>(i + 1);
                             }))
        << "txn " << i << " did not queue";
  }
  lock.Release();
  threads.clear();  // joins
  out.write_transactions = StatsOf(store).write_transactions - before.write_transactions;
  return out;
}

// `count` txns, each putting `value` under prefix + index.
std::vector<Txn> SinglePutTxns(const std::string& prefix, int count, const std::string& value) {
  std::vector<Txn> txns;
  txns.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    txns.push_back({.ops = {Op::Put(absl::StrCat(prefix, i), value)}});
  }
  return txns;
}

TEST_F(EmbeddedStoreTest, QueuedCommitsShareOneWriteTransaction) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(GroupCommitOptions(path_));
  ASSERT_THAT(store, IsOk());
  const QueuedCommits queued =
      CommitBehindForeignLock(**store, path_, SinglePutTxns("/q/", 10, "v"));

  // The blocker alone, then all ten together: two COMMITs instead of eleven.
  EXPECT_EQ(queued.write_transactions, 2);
  ASSERT_THAT(queued.blocker, IsOk());
  int64_t expected = queued.blocker->revision;
  for (const absl::StatusOr<TxnResult>& result : queued.results) {
    ASSERT_THAT(result, IsOk());
    EXPECT_TRUE(result->succeeded);
    EXPECT_EQ(result->revision, ++expected) << "queue order is revision order";
  }
  EXPECT_THAT((*store)->CurrentRevision(), ::discovery::testing::IsOkAndHolds(expected));
  absl::StatusOr<RangeResult> range = (*store)->Range("/q/");
  ASSERT_THAT(range, IsOk());
  EXPECT_EQ(range->kvs.size(), 10U);

  // Durable: a fresh connection (another process) reads all of them.
  store->reset();
  absl::StatusOr<std::unique_ptr<Store>> reopened = Open();
  ASSERT_THAT(reopened, IsOk());
  EXPECT_THAT((*reopened)->CurrentRevision(), ::discovery::testing::IsOkAndHolds(expected));
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

TEST_F(EmbeddedStoreTest, BatchesAreBoundedByCountAndBytes) {
  {
    EmbeddedStoreOptions options = GroupCommitOptions(path_);
    options.max_batch_txns = 4;
    absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(options);
    ASSERT_THAT(store, IsOk());
    const QueuedCommits queued =
        CommitBehindForeignLock(**store, path_, SinglePutTxns("/count/", 10, "v"));
    // The blocker, then 4 + 4 + 2.
    EXPECT_EQ(queued.write_transactions, 4);
    for (const absl::StatusOr<TxnResult>& result : queued.results) {
      EXPECT_THAT(result, IsOk());
    }
  }
  {
    EmbeddedStoreOptions options = GroupCommitOptions(path_);
    options.max_batch_bytes = 1000;
    absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(options);
    ASSERT_THAT(store, IsOk());
    // 300 bytes each: three fit in 1000 bytes. A txn above the bound still goes, alone.
    std::vector<Txn> txns = SinglePutTxns("/bytes/", 6, std::string(292, 'v'));
    txns.push_back({.ops = {Op::Put("/bytes/large", std::string(5000, 'v'))}});
    const QueuedCommits queued = CommitBehindForeignLock(**store, path_, txns);
    // The blocker, then 3 + 3, then the large one.
    EXPECT_EQ(queued.write_transactions, 4);
    for (const absl::StatusOr<TxnResult>& result : queued.results) {
      EXPECT_THAT(result, IsOk());
    }
  }
  EXPECT_THAT(OpenEmbeddedStore({.path = "", .max_batch_txns = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenEmbeddedStore({.path = "", .max_batch_bytes = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EmbeddedStoreTest, BatchMixesFailedComparesAndSuccesses) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(GroupCommitOptions(path_));
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT(Put(**store, "/m/old", "1"), IsOk());
  absl::StatusOr<KeyValue> old = (*store)->Get("/m/old");
  ASSERT_THAT(old, IsOk());
  WatchRecorder recorder;
  absl::StatusOr<std::unique_ptr<WatchHandle>> handle =
      (*store)->Watch("/m/", 0, recorder.Callback());
  ASSERT_THAT(handle, IsOk());

  const std::vector<Txn> txns = {
      // 0: creates /m/a.
      {.compares = {{.key = "/m/a", .mod_revision = 0}}, .ops = {Op::Put("/m/a", "a")}},
      // 1: "create /m/a" again: sees txn 0 of its own batch and fails.
      {.compares = {{.key = "/m/a", .mod_revision = 0}}, .ops = {Op::Put("/m/x", "x")}},
      // 2: compares against the unchanged /m/old: succeeds.
      {.compares = {{.key = "/m/old", .mod_revision = old->mod_revision}},
       .ops = {Op::Put("/m/old", "2"), Op::Put("/m/b", "b")}},
      // 3: compares against the /m/old txn 2 replaced: fails.
      {.compares = {{.key = "/m/old", .mod_revision = old->mod_revision}},
       .ops = {Op::Delete("/m/old")}},
      // 4: deletes a missing key: succeeds without a new revision.
      {.ops = {Op::Delete("/m/missing")}},
      // 5: deletes what txn 0 created.
      {.ops = {Op::Delete("/m/a")}},
  };
  const QueuedCommits queued = CommitBehindForeignLock(**store, path_, txns);
  EXPECT_EQ(queued.write_transactions, 2);
  ASSERT_THAT(queued.blocker, IsOk());
  const int64_t base = queued.blocker->revision;
  const std::vector<absl::StatusOr<TxnResult>>& r = queued.results;
  for (const absl::StatusOr<TxnResult>& result : r) {
    ASSERT_THAT(result, IsOk()) << "a failed compare is not an error";
  }
  EXPECT_TRUE(r[0]->succeeded);
  EXPECT_EQ(r[0]->revision, base + 1);
  EXPECT_FALSE(r[1]->succeeded);
  EXPECT_EQ(r[1]->revision, base + 1);
  EXPECT_TRUE(r[2]->succeeded);
  EXPECT_EQ(r[2]->revision, base + 2);
  EXPECT_FALSE(r[3]->succeeded);
  EXPECT_EQ(r[3]->revision, base + 2);
  EXPECT_TRUE(r[4]->succeeded);
  EXPECT_EQ(r[4]->revision, base + 2);
  EXPECT_EQ(r[4]->deleted, 0);
  EXPECT_TRUE(r[5]->succeeded);
  EXPECT_EQ(r[5]->revision, base + 3);
  EXPECT_EQ(r[5]->deleted, 1);
  EXPECT_THAT((*store)->CurrentRevision(), ::discovery::testing::IsOkAndHolds(base + 3));

  ASSERT_TRUE(recorder.WaitForEvents(4));
  std::vector<std::pair<int64_t, std::string>> events;
  for (const WatchEvent& event : recorder.Events()) {
    events.emplace_back(event.kv.mod_revision, event.kv.key);
  }
  EXPECT_THAT(events, ElementsAre(std::pair(base + 1, "/m/a"), std::pair(base + 2, "/m/old"),
                                  std::pair(base + 2, "/m/b"), std::pair(base + 3, "/m/a")));
  EXPECT_THAT((*store)->Get("/m/x"), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<KeyValue> now = (*store)->Get("/m/old");
  ASSERT_THAT(now, IsOk());
  EXPECT_EQ(now->value, "2");
  EXPECT_EQ(now->version, 2);
}

TEST_F(EmbeddedStoreTest, FailingTxnIsUndoneAloneInItsBatch) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(GroupCommitOptions(path_));
  ASSERT_THAT(store, IsOk());
  // A statement error inside a txn, as SQLite reports a constraint: the statement fails, the
  // SQLite transaction stays open.
  ExecOnFile(path_,
             "CREATE TRIGGER poison BEFORE INSERT ON kv WHEN NEW.key = CAST('/p/poison' AS BLOB) "
             "BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
  const std::vector<Txn> txns = {
      {.ops = {Op::Put("/p/a", "a")}},
      // Its first put is applied before the second fails; the savepoint undoes it.
      {.ops = {Op::Put("/p/x", "x"), Op::Put("/p/poison", "p")}},
      {.ops = {Op::Put("/p/b", "b")}},
  };
  const QueuedCommits queued = CommitBehindForeignLock(**store, path_, txns);
  EXPECT_EQ(queued.write_transactions, 2);
  ASSERT_THAT(queued.blocker, IsOk());
  const int64_t base = queued.blocker->revision;
  ASSERT_THAT(queued.results[0], IsOk());
  EXPECT_EQ(queued.results[0]->revision, base + 1);
  EXPECT_THAT(queued.results[1],
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("poisoned")));
  ASSERT_THAT(queued.results[2], IsOk());
  EXPECT_EQ(queued.results[2]->revision, base + 2);

  absl::StatusOr<RangeResult> range = (*store)->Range("/p/");
  ASSERT_THAT(range, IsOk());
  std::vector<std::string> keys;
  for (const KeyValue& kv : range->kvs) {
    keys.push_back(kv.key);
  }
  EXPECT_THAT(keys, ElementsAre("/p/a", "/p/b"));
  EXPECT_EQ(range->revision, base + 2);
  // No event of the failed txn remains in the log either.
  WatchRecorder recorder;
  absl::StatusOr<std::unique_ptr<WatchHandle>> handle =
      (*store)->Watch("/p/", base + 1, recorder.Callback());
  ASSERT_THAT(handle, IsOk());
  ASSERT_TRUE(recorder.WaitForEvents(2));
  handle->reset();
  EXPECT_EQ(recorder.EventCount(), 2U);
}

TEST_F(EmbeddedStoreTest, ErrorThatRollsBackTheSqliteTransactionFailsTheWholeBatch) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(GroupCommitOptions(path_));
  ASSERT_THAT(store, IsOk());
  // RAISE(ROLLBACK) ends the SQLite transaction itself, as an I/O error or a full disk may: the
  // txns applied before it in the batch are gone, so none of them may report success.
  ExecOnFile(path_,
             "CREATE TRIGGER doom BEFORE INSERT ON kv WHEN NEW.key = CAST('/r/doom' AS BLOB) "
             "BEGIN SELECT RAISE(ROLLBACK, 'doomed'); END");
  const std::vector<Txn> txns = {
      {.ops = {Op::Put("/r/a", "a")}},
      {.ops = {Op::Put("/r/doom", "d")}},
      {.ops = {Op::Put("/r/b", "b")}},
  };
  const QueuedCommits queued = CommitBehindForeignLock(**store, path_, txns);
  EXPECT_EQ(queued.write_transactions, 2);
  ASSERT_THAT(queued.blocker, IsOk());
  for (const absl::StatusOr<TxnResult>& result : queued.results) {
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("doomed")));
  }
  EXPECT_THAT((*store)->CurrentRevision(),
              ::discovery::testing::IsOkAndHolds(queued.blocker->revision));
  absl::StatusOr<RangeResult> range = (*store)->Range("/r/");
  ASSERT_THAT(range, IsOk());
  EXPECT_THAT(range->kvs, IsEmpty());
  // The store goes on: the next commit gets the next revision.
  absl::StatusOr<TxnResult> after = Put(**store, "/r/after", "1");
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->revision, queued.blocker->revision + 1);
}

// One txn of the concurrency test as its thread saw it.
struct CommittedTxn {
  std::vector<std::string> keys;  // keys it put, in op order
  absl::StatusOr<TxnResult> result = absl::UnknownError("not run");
};

TEST_F(EmbeddedStoreTest, ConcurrentCommitsGetDistinctRevisionsAndWatchSeesEachOnce) {
  constexpr int kThreads = 16;
  constexpr int kTxnsPerThread = 200;
  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  absl::StatusOr<int64_t> initial = (*store)->CurrentRevision();
  ASSERT_THAT(initial, IsOk());
  const EmbeddedStoreStats before = StatsOf(**store);
  WatchRecorder recorder;
  absl::StatusOr<std::unique_ptr<WatchHandle>> handle =
      (*store)->Watch("/c/", *initial + 1, recorder.Callback());
  ASSERT_THAT(handle, IsOk());

  // Even txns put two keys of their own and always succeed; odd ones increment a shared
  // counter with compare-and-swap, and fail when another txn got there first.
  std::vector<std::vector<CommittedTxn>> done(kThreads);
  {
    std::vector<std::jthread> threads;
    threads.reserve(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&store, &mine = done[t], t] {
        for (int i = 0; i < kTxnsPerThread; ++i) {
          CommittedTxn txn;
          Txn commit;
          if (i % 2 == 0) {
            txn.keys = {absl::StrCat("/c/own/", t, "/", i, "/a"),
                        absl::StrCat("/c/own/", t, "/", i, "/b")};
            commit.ops = {Op::Put(txn.keys[0], "a"), Op::Put(txn.keys[1], "b")};
          } else {
            absl::StatusOr<KeyValue> counter = (*store)->Get("/c/counter");
            const int64_t mod_revision = counter.ok() ? counter->mod_revision : 0;
            const int64_t value = counter.ok() ? std::stoll(counter->value) : 0;
            txn.keys = {"/c/counter", absl::StrCat("/c/cas/", t, "/", i)};
            commit.compares = {{.key = "/c/counter", .mod_revision = mod_revision}};
            commit.ops = {Op::Put(txn.keys[0], absl::StrCat(value + 1)),
                          Op::Put(txn.keys[1], "won")};
          }
          txn.result = (*store)->Commit(commit);
          mine.push_back(std::move(txn));
        }
      });
    }
  }

  std::map<int64_t, const CommittedTxn*> by_revision;
  int64_t cas_wins = 0;
  int64_t failed = 0;
  for (const std::vector<CommittedTxn>& mine : done) {
    for (const CommittedTxn& txn : mine) {
      ASSERT_THAT(txn.result, IsOk());
      if (!txn.result->succeeded) {
        ++failed;
        continue;
      }
      EXPECT_TRUE(by_revision.emplace(txn.result->revision, &txn).second)
          << "revision " << txn.result->revision << " returned twice";
      if (txn.keys[0] == "/c/counter") {
        ++cas_wins;
      }
    }
  }
  const auto succeeded = static_cast<int64_t>(by_revision.size());
  EXPECT_EQ(succeeded + failed, kThreads * kTxnsPerThread);
  EXPECT_EQ(succeeded, kThreads * kTxnsPerThread / 2 + cas_wins);
  EXPECT_THAT((*store)->CurrentRevision(),
              ::discovery::testing::IsOkAndHolds(*initial + succeeded));
  ASSERT_FALSE(by_revision.empty());
  EXPECT_EQ(by_revision.begin()->first, *initial + 1);
  EXPECT_EQ(by_revision.rbegin()->first, *initial + succeeded);
  absl::StatusOr<KeyValue> counter = (*store)->Get("/c/counter");
  ASSERT_THAT(counter, IsOk());
  EXPECT_EQ(counter->value, absl::StrCat(cas_wins));

  // The watch: every successful txn's two events once, in revision order, in one response.
  ASSERT_TRUE(recorder.WaitForEvents(static_cast<size_t>(2 * succeeded)));
  handle->reset();
  EXPECT_EQ(recorder.EventCount(), static_cast<size_t>(2 * succeeded));
  auto expected = by_revision.begin();
  for (const WatchResponse& response : recorder.Responses()) {
    ASSERT_EQ(response.events.size() % 2, 0U) << "a txn's events were split";
    for (size_t e = 0; e < response.events.size(); e += 2) {
      ASSERT_NE(expected, by_revision.end());
      const WatchEvent& first = response.events[e];
      const WatchEvent& second = response.events[e + 1];
      EXPECT_EQ(first.kv.mod_revision, expected->first);
      EXPECT_EQ(second.kv.mod_revision, expected->first);
      EXPECT_EQ(first.kv.key, expected->second->keys[0]);
      EXPECT_EQ(second.kv.key, expected->second->keys[1]);
      ++expected;
    }
  }
  EXPECT_EQ(expected, by_revision.end());

  // Every txn reached the store, and they shared write transactions.
  const EmbeddedStoreStats after = StatsOf(**store);
  EXPECT_EQ(after.commits - before.commits, kThreads * kTxnsPerThread);
  EXPECT_LT(after.write_transactions - before.write_transactions, kThreads * kTxnsPerThread);
  EXPECT_EQ(after.queued_commits, 0);
  store->reset();
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

// The write-ahead log is copied into the database file by the store's own thread, not by the
// commit that finds it long: commits pay their own fsync only.

// Bytes of the write-ahead log file of `path` (0 when there is none).
int64_t WalBytes(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path + "-wal", error);
  return error ? 0 : static_cast<int64_t>(size);
}

// A log of `pages` frames (each a page and its 24-byte header) and its 32-byte header.
int64_t WalBytesOfPages(int64_t pages) { return 32 + pages * (4096 + 24); }

// Writes `count` single-put commits of 200-byte values under `prefix`, one after the other.
void CommitSequentially(Store& store, const std::string& prefix, int count) {
  for (int i = 0; i < count; ++i) {
    ASSERT_THAT(Put(store, absl::StrCat(prefix, i), std::string(200, 'v')), IsOk());
  }
}

// The checkpoint threshold of the tests below: small, so that a few hundred commits cross it.
constexpr int kShortLogPages = 8;

absl::StatusOr<std::unique_ptr<Store>> OpenWithShortLog(const std::string& path) {
  EmbeddedStoreOptions options = FileOptions(path);
  options.checkpoint_pages = kShortLogPages;
  return OpenEmbeddedStore(options);
}

TEST_F(EmbeddedStoreTest, TheStoresThreadCheckpointsTheLogAndKeepsItShort) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenWithShortLog(path_);
  ASSERT_THAT(store, IsOk());
  // Each commit writes a few pages (the key's leaf, its event, the revision), so these would
  // fill about a thousand pages of log without a checkpoint.
  constexpr int kCommits = 300;
  CommitSequentially(**store, "/c/", kCommits);

  EXPECT_TRUE(WaitForStats(
      **store, [](const EmbeddedStoreStats& stats) { return stats.background_checkpoints > 0; }));
  // The log is reused once checkpointed, so it never held much more than what a commit may
  // find in it before checkpointing itself (eight times checkpoint_pages). SQLite's own
  // checkpoint on commit, at 1000 pages, would have let it grow to about a thousand.
  EXPECT_LT(WalBytes(path_), WalBytesOfPages(int64_t{16} * kShortLogPages));
  absl::StatusOr<RangeResult> range = (*store)->Range("/c/");
  ASSERT_THAT(range, IsOk());
  EXPECT_EQ(range->kvs.size(), static_cast<size_t>(kCommits));

  store->reset();
  EXPECT_EQ(IntegrityCheck(path_), "ok");
  absl::StatusOr<std::unique_ptr<Store>> reopened = Open();
  ASSERT_THAT(reopened, IsOk());
  range = (*reopened)->Range("/c/");
  ASSERT_THAT(range, IsOk());
  EXPECT_EQ(range->kvs.size(), static_cast<size_t>(kCommits));
}

TEST_F(EmbeddedStoreTest, ACommitCheckpointsItselfOnceTheLogGrowsFarPastTheThreshold) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenWithShortLog(path_);
  ASSERT_THAT(store, IsOk());
  constexpr int kCommits = 300;
  {
    // Another process reading one snapshot all along: no checkpoint can copy what was
    // committed after it, so the log cannot be reused and grows with every commit.
    sqlite3* reader = nullptr;
    ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &reader, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT COUNT(*) FROM kv;", nullptr, nullptr, nullptr),
              SQLITE_OK);
    CommitSequentially(**store, "/r/", kCommits);
    EXPECT_GT(StatsOf(**store).commit_checkpoints, 0);
    EXPECT_GT(WalBytes(path_), WalBytesOfPages(int64_t{8} * kShortLogPages));
    sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
    sqlite3_close(reader);
  }
  // Every commit succeeded all the same, and once the reader is gone the next commit has the
  // log checkpointed (by itself, the log being that long).
  absl::StatusOr<RangeResult> range = (*store)->Range("/r/");
  ASSERT_THAT(range, IsOk());
  EXPECT_EQ(range->kvs.size(), static_cast<size_t>(kCommits));
  const EmbeddedStoreStats before = StatsOf(**store);
  ASSERT_THAT(Put(**store, "/r/after", "v"), IsOk());
  EXPECT_TRUE(WaitForStats(**store, [&before](const EmbeddedStoreStats& stats) {
    return stats.background_checkpoints + stats.commit_checkpoints >
           before.background_checkpoints + before.commit_checkpoints;
  }));
  store->reset();
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

}  // namespace
}  // namespace discovery::store
