#include "store/embedded/embedded_store.h"

#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"
#include "testing/store_contract.h"

namespace discovery::store {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::discovery::testing::StoreContractTest;
using ::discovery::testing::StoreFactory;
using ::discovery::testing::WatchRecorder;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A directory for this process's database files, removed when the test program ends.
const std::filesystem::path& TestDir() {
  static const auto* dir =
      new std::filesystem::path(std::filesystem::path(::testing::TempDir()) /
                                absl::StrCat("discovery_store_test_", getpid()));
  return *dir;
}

class RemoveTestDir : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(TestDir(), ignored);
  }
};
const auto* const kRemoveTestDir = ::testing::AddGlobalTestEnvironment(new RemoveTestDir);

// A name unique to the running test, usable as a file name.
std::string CurrentTestName() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrReplaceAll(absl::StrCat(info->test_suite_name(), ".", info->name()),
                             {{"/", "."}});
}

// The database file of the running test: every open during one test shares it.
std::string CurrentTestDbPath() { return (TestDir() / (CurrentTestName() + ".db")).string(); }

EmbeddedStoreOptions FileOptions(std::string path) {
  // A short poll keeps cross-process watch tests fast; the default is for production.
  return {.path = std::move(path), .poll_interval = absl::Milliseconds(20)};
}

// Checks the SQLite file with its own connection: "ok" when the database is consistent.
std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string error = db != nullptr ? sqlite3_errmsg(db) : "open failed";
    sqlite3_close(db);
    return error;
  }
  std::string result;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      result += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
  } else {
    result = sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Contract suite instantiations

// A private in-memory database is per store object, but the contract wants every store opened
// during one test to share data. The in-memory factory therefore hands out views of one store
// per test (created on the test's first open, replaced when the next test opens).
class SharedMemoryStores {
 public:
  static SharedMemoryStores& Get() {
    static auto* stores = new SharedMemoryStores;
    return *stores;
  }

  absl::StatusOr<Store*> ForCurrentTest() {
    absl::MutexLock lock(&mu_);
    const std::string test = CurrentTestName();
    if (test != test_ || store_ == nullptr) {
      // The previous test's views and watches are gone by now (fixtures destroy them).
      store_.reset();
      absl::StatusOr<std::unique_ptr<Store>> opened = OpenEmbeddedStore({.path = ""});
      if (!opened.ok()) {
        return opened.status();
      }
      store_ = *std::move(opened);
      test_ = test;
    }
    return store_.get();
  }

 private:
  absl::Mutex mu_;
  std::string test_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Store> store_ ABSL_GUARDED_BY(mu_);
};

// A non-owning Store forwarding to the test's shared in-memory store.
class StoreView final : public Store {
 public:
  explicit StoreView(Store& target) : target_(target) {}
  absl::StatusOr<KeyValue> Get(std::string_view key) override { return target_.Get(key); }
  absl::StatusOr<RangeResult> Range(std::string_view prefix) override {
    return target_.Range(prefix);
  }
  absl::StatusOr<TxnResult> Commit(const Txn& txn) override { return target_.Commit(txn); }
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                     int64_t start_revision,
                                                     WatchCallback callback) override {
    return target_.Watch(prefix, start_revision, std::move(callback));
  }
  absl::StatusOr<int64_t> CurrentRevision() override { return target_.CurrentRevision(); }
  absl::StatusOr<store::RenewResult> Renew(const store::Renewal& renewal) override {
    return target_.Renew(renewal);
  }
  bool RenewsInPlace(const KeyValue& kv) const override { return target_.RenewsInPlace(kv); }
  absl::StatusOr<std::vector<std::optional<absl::Time>>> Deadlines(
      const std::vector<store::LeasedKey>& keys) override {
    return target_.Deadlines(keys);
  }

 private:
  Store& target_;
};

StoreFactory FileFactory() {
  return {.name = "File",
          .open = []() { return OpenEmbeddedStore(FileOptions(CurrentTestDbPath())); },
          .compact =
              [](Store& store, int64_t revision) {
                ASSERT_THAT(CompactEmbeddedStore(store, revision), IsOk());
              }};
}

StoreFactory MemoryFactory() {
  return {.name = "Memory",
          .open = []() -> absl::StatusOr<std::unique_ptr<Store>> {
            absl::StatusOr<Store*> shared = SharedMemoryStores::Get().ForCurrentTest();
            if (!shared.ok()) {
              return shared.status();
            }
            return std::make_unique<StoreView>(**shared);
          },
          .compact =
              [](Store&, int64_t revision) {
                absl::StatusOr<Store*> shared = SharedMemoryStores::Get().ForCurrentTest();
                ASSERT_THAT(shared, IsOk());
                ASSERT_THAT(CompactEmbeddedStore(**shared, revision), IsOk());
              }};
}

INSTANTIATE_TEST_SUITE_P(Embedded, StoreContractTest,
                         ::testing::Values(FileFactory(), MemoryFactory()),
                         [](const auto& param_info) { return param_info.param.name; });

// ---------------------------------------------------------------------------------------------
// Embedded-only behaviour

class EmbeddedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = CurrentTestDbPath();
    // Start from no database even when the test is repeated (--gtest_repeat) in one process.
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::error_code ignored;
      std::filesystem::remove(path_ + suffix, ignored);
    }
  }

  absl::StatusOr<std::unique_ptr<Store>> Open() { return OpenEmbeddedStore(FileOptions(path_)); }

  std::string path_;
};

TEST_F(EmbeddedStoreTest, FreshStoreStartsAtRevisionOneLikeEtcd) {
  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT((*store)->CurrentRevision(), ::discovery::testing::IsOkAndHolds(1));
  absl::StatusOr<TxnResult> put = Put(**store, "/a", "v");
  ASSERT_THAT(put, IsOk());
  EXPECT_EQ(put->revision, 2);
}

TEST_F(EmbeddedStoreTest, ReopenKeepsDataRevisionsAndHistory) {
  int64_t first = 0;
  int64_t last = 0;
  {
    absl::StatusOr<std::unique_ptr<Store>> store = Open();
    ASSERT_THAT(store, IsOk());
    for (int i = 0; i < 10; ++i) {
      absl::StatusOr<TxnResult> put = Put(**store, absl::StrCat("/k/", i), absl::StrCat(i));
      ASSERT_THAT(put, IsOk());
      if (i == 0) {
        first = put->revision;
      }
      last = put->revision;
    }
  }
  // Envoy's re-create pattern: the owner is destroyed and a new one built on the same file.
  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  absl::StatusOr<RangeResult> range = (*store)->Range("/k/");
  ASSERT_THAT(range, IsOk());
  EXPECT_EQ(range->kvs.size(), 10U);
  EXPECT_EQ(range->revision, last);

  // The event log survived too: a watch from the first revision replays everything.
  WatchRecorder recorder;
  absl::StatusOr<std::unique_ptr<WatchHandle>> handle =
      (*store)->Watch("/k/", first, recorder.Callback());
  ASSERT_THAT(handle, IsOk());
  ASSERT_TRUE(recorder.WaitForEvents(10));
  EXPECT_EQ(recorder.Events().front().kv.mod_revision, first);
  EXPECT_EQ(recorder.Events().back().kv.mod_revision, last);
  handle->reset();
  store->reset();
  EXPECT_EQ(IntegrityCheck(path_), "ok");
}

TEST_F(EmbeddedStoreTest, CreatesMissingParentDirectories) {
  const std::string nested = (TestDir() / CurrentTestName() / "a" / "b" / "store.db").string();
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(FileOptions(nested));
  ASSERT_THAT(store, IsOk());
  EXPECT_TRUE(std::filesystem::exists(nested));
}

TEST_F(EmbeddedStoreTest, RejectsInvalidOptions) {
  EXPECT_THAT(OpenEmbeddedStore({.path = "", .history_revisions = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenEmbeddedStore({.path = "", .poll_interval = absl::ZeroDuration()}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EmbeddedStoreTest, GarbageFileIsDataLossNamingTheFile) {
  std::filesystem::create_directories(TestDir());
  {
    std::ofstream garbage(path_, std::ios::binary);
    garbage << std::string(8192, 'x');
  }
  EXPECT_THAT(Open(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr(path_)));
}

TEST_F(EmbeddedStoreTest, UnopenablePathIsAnErrorNamingTheFile) {
  std::filesystem::create_directories(TestDir());
  const std::string file = (TestDir() / (CurrentTestName() + ".file")).string();
  { std::ofstream(file) << "not a directory"; }
  const std::string below_file = file + "/store.db";
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(FileOptions(below_file));
  EXPECT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(file));
}

TEST_F(EmbeddedStoreTest, InvalidWatchArguments) {
  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT((*store)->Watch("/", -1, [](const WatchResponse&) {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*store)->Watch("/", 0, nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*store)->Commit({.compares = {{.key = ""}}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EmbeddedStoreTest, HistoryIsCompactedToTheConfiguredRevisions) {
  EmbeddedStoreOptions options = FileOptions(path_);
  options.history_revisions = 5;
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore(options);
  ASSERT_THAT(store, IsOk());
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<TxnResult> put = Put(**store, absl::StrCat("/k/", i % 3), absl::StrCat(i));
    ASSERT_THAT(put, IsOk());
    last = put->revision;
  }
  const int64_t oldest_kept = last - 5 + 1;

  WatchRecorder too_old;
  absl::StatusOr<std::unique_ptr<WatchHandle>> old_handle =
      (*store)->Watch("/k/", oldest_kept - 1, too_old.Callback());
  ASSERT_THAT(old_handle, IsOk());
  ASSERT_TRUE(too_old.WaitForResponses(1));
  EXPECT_EQ(too_old.Responses().front().compact_revision, oldest_kept);
  EXPECT_THAT(too_old.Responses().front().events, IsEmpty());

  WatchRecorder kept;
  absl::StatusOr<std::unique_ptr<WatchHandle>> kept_handle =
      (*store)->Watch("/k/", oldest_kept, kept.Callback());
  ASSERT_THAT(kept_handle, IsOk());
  ASSERT_TRUE(kept.WaitForEvents(5));
  EXPECT_EQ(kept.Events().front().kv.mod_revision, oldest_kept);
  EXPECT_EQ(kept.Events().back().kv.mod_revision, last);

  // The keys themselves are current state and never compacted.
  absl::StatusOr<RangeResult> range = (*store)->Range("/k/");
  ASSERT_THAT(range, IsOk());
  EXPECT_EQ(range->kvs.size(), 3U);
}

TEST_F(EmbeddedStoreTest, ExplicitCompactionRejectsFutureAndForeignStores) {
  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  absl::StatusOr<int64_t> current = (*store)->CurrentRevision();
  ASSERT_THAT(current, IsOk());
  EXPECT_THAT(CompactEmbeddedStore(**store, *current + 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(CompactEmbeddedStore(**store, *current), IsOk());
  // Compaction never moves back.
  EXPECT_THAT(CompactEmbeddedStore(**store, 1), IsOk());

  class NotEmbedded final : public Store {
    absl::StatusOr<KeyValue> Get(std::string_view /*key*/) override {
      return absl::NotFoundError("");
    }
    absl::StatusOr<RangeResult> Range(std::string_view /*prefix*/) override {
      return RangeResult{};
    }
    absl::StatusOr<TxnResult> Commit(const Txn& /*txn*/) override { return TxnResult{}; }
    absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view /*prefix*/,
                                                       int64_t /*start_revision*/,
                                                       WatchCallback /*callback*/) override {
      return absl::FailedPreconditionError("this test never watches");
    }
    absl::StatusOr<int64_t> CurrentRevision() override { return 0; }
  } foreign;
  EXPECT_THAT(CompactEmbeddedStore(foreign, 1), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Writes exactly `size` bytes or fails.
bool WriteAll(int fd, const void* data, size_t size) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = write(fd, bytes, size);
    if (written < 0 && errno == EINTR) {
      continue;
    }
    if (written <= 0) {
      return false;
    }
    bytes += written;
    size -= static_cast<size_t>(written);
  }
  return true;
}

// The child of the crash test: writes keys from `first` on forever, reporting each index on
// `fd` only after Commit acknowledged it. Never returns.
[[noreturn]] void WriteAcknowledgedKeys(const std::string& path, int64_t first, int fd) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore({.path = path});
  if (!store.ok()) {
    _exit(2);
  }
  for (int64_t i = first;; ++i) {
    if (!Put(**store, absl::StrCat("/crash/", i), absl::StrCat("value-", i)).ok()) {
      _exit(3);
    }
    if (!WriteAll(fd, &i, sizeof(i))) {
      _exit(4);
    }
  }
}

TEST_F(EmbeddedStoreTest, AcknowledgedWritesSurviveKillNine) {
  constexpr int kRounds = 3;
  constexpr int64_t kAcksBeforeKill = 40;
  std::filesystem::create_directories(TestDir());
  std::set<int64_t> acknowledged;
  int64_t next = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::array<int, 2> fds{};
    ASSERT_EQ(pipe(fds.data()), 0);
    // Forked while this process has no store open and no threads of ours: SQLite must not be
    // carried across fork.
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      WriteAcknowledgedKeys(path_, next, fds[1]);
    }
    close(fds[1]);
    int64_t index = 0;
    int64_t acks_this_round = 0;
    bool killed = false;
    while (true) {
      const ssize_t got = read(fds[0], &index, sizeof(index));
      if (got < 0 && errno == EINTR) {
        continue;
      }
      if (got != static_cast<ssize_t>(sizeof(index))) {
        break;  // EOF: the child is dead and every ack it sent has been read.
      }
      acknowledged.insert(index);
      next = index + 1;
      if (++acks_this_round == kAcksBeforeKill && !killed) {
        // Killed in the middle of its stream; acks already in the pipe are still read.
        ASSERT_EQ(kill(child, SIGKILL), 0);
        killed = true;
      }
    }
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "child ended on its own, status " << status;

    EXPECT_EQ(IntegrityCheck(path_), "ok") << "round " << round;
    absl::StatusOr<std::unique_ptr<Store>> store = Open();
    ASSERT_THAT(store, IsOk()) << "round " << round;
    for (const int64_t i : acknowledged) {
      absl::StatusOr<KeyValue> kv = (*store)->Get(absl::StrCat("/crash/", i));
      ASSERT_THAT(kv, IsOk()) << "acknowledged key " << i << " lost in round " << round;
      EXPECT_EQ(kv->value, absl::StrCat("value-", i));
    }
  }
  EXPECT_GE(acknowledged.size(), static_cast<size_t>(kRounds * kAcksBeforeKill));
}

TEST_F(EmbeddedStoreTest, WatchSeesCommitsOfAnotherProcess) {
  std::filesystem::create_directories(TestDir());
  std::array<int, 2> go{};
  std::array<int, 2> done{};
  ASSERT_EQ(pipe(go.data()), 0);
  ASSERT_EQ(pipe(done.data()), 0);
  // Forked before this process opens the database or starts a watch thread; the child waits
  // for "go" so the watch is in place before it writes.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(go[1]);
    close(done[0]);
    char byte = 0;
    if (read(go[0], &byte, 1) != 1) {
      _exit(2);
    }
    absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore({.path = path_});
    if (!store.ok() || !Put(**store, "/other/a", "1").ok() ||
        !(*store)->Commit({.ops = {Op::Put("/other/b", "2"), Op::Put("/other/c", "3")}}).ok()) {
      _exit(3);
    }
    _exit(WriteAll(done[1], &byte, 1) ? 0 : 4);
  }
  close(go[0]);
  close(done[1]);

  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  WatchRecorder recorder;
  absl::StatusOr<std::unique_ptr<WatchHandle>> handle =
      (*store)->Watch("/other/", 0, recorder.Callback());
  ASSERT_THAT(handle, IsOk());
  const absl::Time written_before = absl::Now();
  const char byte = 1;
  ASSERT_TRUE(WriteAll(go[1], &byte, 1));
  close(go[1]);

  ASSERT_TRUE(recorder.WaitForEvents(3));
  // Picked up by polling, so within a few poll intervals of the child's commit.
  EXPECT_LT(absl::Now() - written_before, absl::Seconds(5));
  const std::vector<WatchResponse> responses = recorder.Responses();
  std::vector<std::string> keys;
  for (const WatchEvent& event : recorder.Events()) {
    keys.push_back(event.kv.key);
  }
  EXPECT_THAT(keys, ElementsAre("/other/a", "/other/b", "/other/c"));
  // The child's two-key transaction arrives in one response.
  for (const WatchResponse& response : responses) {
    for (const WatchEvent& event : response.events) {
      if (event.kv.key == "/other/b") {
        EXPECT_EQ(response.events.back().kv.key, "/other/c");
      }
    }
  }

  char ack = 0;
  EXPECT_EQ(read(done[0], &ack, 1), 1);
  close(done[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

TEST_F(EmbeddedStoreTest, TwoStoreObjectsOnOneFileWatchEachOther) {
  absl::StatusOr<std::unique_ptr<Store>> first = Open();
  absl::StatusOr<std::unique_ptr<Store>> second = Open();
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  WatchRecorder on_first;
  WatchRecorder on_second;
  absl::StatusOr<std::unique_ptr<WatchHandle>> first_handle =
      (*first)->Watch("/", 0, on_first.Callback());
  absl::StatusOr<std::unique_ptr<WatchHandle>> second_handle =
      (*second)->Watch("/", 0, on_second.Callback());
  ASSERT_THAT(first_handle, IsOk());
  ASSERT_THAT(second_handle, IsOk());

  ASSERT_THAT(Put(**first, "/from-first", "1"), IsOk());
  ASSERT_THAT(Put(**second, "/from-second", "2"), IsOk());
  ASSERT_TRUE(on_first.WaitForEvents(2));
  ASSERT_TRUE(on_second.WaitForEvents(2));
  for (const WatchRecorder* recorder : {&on_first, &on_second}) {
    const std::vector<WatchEvent> events = recorder->Events();
    ASSERT_EQ(events.size(), 2U);
    EXPECT_EQ(events[0].kv.key, "/from-first");
    EXPECT_EQ(events[1].kv.key, "/from-second");
  }
}

// ---------------------------------------------------------------------------------------------
// Group commit

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

// The child of the concurrent crash test: kThreads threads write keys forever, each reporting
// (thread, index) on `fd` only after Commit acknowledged it. Never returns.
[[noreturn]] void WriteAcknowledgedKeysConcurrently(const std::string& path, int threads, int fd) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenEmbeddedStore({.path = path});
  if (!store.ok()) {
    _exit(2);
  }
  std::vector<std::jthread> writers;
  writers.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&store, t, fd] {
      for (int64_t i = 0;; ++i) {
        if (!Put(**store, absl::StrCat("/crash/", t, "/", i), absl::StrCat("value-", i)).ok()) {
          _exit(3);
        }
        // 16 bytes: one atomic pipe write, so the threads' reports never interleave.
        const std::array<int64_t, 2> ack = {t, i};
        if (!WriteAll(fd, ack.data(), sizeof(ack))) {
          _exit(4);
        }
      }
    });
  }
  writers.clear();
  _exit(5);
}

TEST_F(EmbeddedStoreTest, AcknowledgedGroupCommitsSurviveKillNine) {
  constexpr int kThreads = 8;
  constexpr int64_t kAcksBeforeKill = 200;
  std::filesystem::create_directories(TestDir());
  std::array<int, 2> fds{};
  ASSERT_EQ(pipe(fds.data()), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    WriteAcknowledgedKeysConcurrently(path_, kThreads, fds[1]);
  }
  close(fds[1]);
  std::set<std::pair<int64_t, int64_t>> acknowledged;
  bool killed = false;
  while (true) {
    std::array<int64_t, 2> ack{};
    const ssize_t got = read(fds[0], ack.data(), sizeof(ack));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got != static_cast<ssize_t>(sizeof(ack))) {
      break;  // EOF: the child is dead and every ack it sent has been read.
    }
    acknowledged.emplace(ack[0], ack[1]);
    if (std::ssize(acknowledged) == kAcksBeforeKill && !killed) {
      ASSERT_EQ(kill(child, SIGKILL), 0);
      killed = true;
    }
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child ended on its own, status " << status;

  EXPECT_EQ(IntegrityCheck(path_), "ok");
  absl::StatusOr<std::unique_ptr<Store>> store = Open();
  ASSERT_THAT(store, IsOk());
  for (const auto& [t, i] : acknowledged) {
    absl::StatusOr<KeyValue> kv = (*store)->Get(absl::StrCat("/crash/", t, "/", i));
    ASSERT_THAT(kv, IsOk()) << "acknowledged key " << t << "/" << i << " lost";
    EXPECT_EQ(kv->value, absl::StrCat("value-", i));
  }
  EXPECT_GE(acknowledged.size(), static_cast<size_t>(kAcksBeforeKill));
}

}  // namespace
}  // namespace discovery::store
