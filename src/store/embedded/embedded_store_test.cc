#include "store/embedded/embedded_store.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "common/status_macros.h"
#include "store/embedded/embedded_store_test_util.h"
#include "store/observed_store.h"
#include "testing/status_matchers.h"
#include "testing/store_contract.h"

// The contract suite's instantiations and the embedded store's own basics (revisions, options,
// errors, compaction). Group commit and other processes have files of their own.
namespace discovery::store {
namespace {

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

// The file store as the daemons hold it, behind the ObservedStore that counts its failures: the
// wrapper changes no answer of the contract.
StoreFactory ObservedFileFactory() {
  return {.name = "ObservedFile",
          .open = []() -> absl::StatusOr<std::unique_ptr<Store>> {
            DISCOVERY_ASSIGN_OR_RETURN(std::unique_ptr<Store> store,
                                       OpenEmbeddedStore(FileOptions(CurrentTestDbPath())));
            return std::make_unique<ObservedStore>(std::move(store),
                                                   [](std::string_view, const absl::Status&) {});
          },
          .compact =
              [](Store& store, int64_t revision) {
                ASSERT_THAT(
                    CompactEmbeddedStore(dynamic_cast<ObservedStore&>(store).inner(), revision),
                    IsOk());
              }};
}

INSTANTIATE_TEST_SUITE_P(Embedded, StoreContractTest,
                         ::testing::Values(FileFactory(), MemoryFactory(), ObservedFileFactory()),
                         [](const auto& param_info) { return param_info.param.name; });

// ---------------------------------------------------------------------------------------------
// Embedded-only behaviour

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
  EXPECT_THAT(OpenEmbeddedStore({.path = "", .checkpoint_pages = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("checkpoint_pages")));
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

}  // namespace
}  // namespace discovery::store
