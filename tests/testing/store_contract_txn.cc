#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"

#include "testing/status_matchers.h"
#include "testing/store_contract.h"
#include "testing/store_contract_suite.h"

// The store contract on transactions: revision arithmetic and compares on mod revisions.
namespace discovery::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// CommitAsync

// Waits for a CommitAsync answer; the answer must come exactly once.
class AsyncAnswer {
 public:
  Store::CommitCallback Callback() {
    return [this](absl::StatusOr<TxnResult> result) {
      absl::MutexLock lock(&mu_);
      ++answers_;
      result_ = std::move(result);
      if (answers_ == 1) {
        answered_.Notify();
      }
    };
  }
  absl::StatusOr<TxnResult> Wait() {
    answered_.WaitForNotification();
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(answers_, 1);
    return result_;
  }

 private:
  absl::Notification answered_;
  absl::Mutex mu_;
  int answers_ ABSL_GUARDED_BY(mu_) = 0;
  absl::StatusOr<TxnResult> result_ ABSL_GUARDED_BY(mu_) = absl::UnknownError("no answer");
};

TEST_P(StoreContractTest, CommitAsyncAnswersWhatCommitWouldOnceApplied) {
  AsyncAnswer put;
  store().CommitAsync({.ops = {Op::Put(Key("a"), "1")}}, put.Callback());
  ASSERT_OK_AND_ASSIGN(const TxnResult written, put.Wait());
  EXPECT_TRUE(written.succeeded);
  // Answered only once applied: the writer's next read sees it.
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "1");
  EXPECT_EQ(kv.mod_revision, written.revision);

  AsyncAnswer guarded;
  store().CommitAsync({.compares = {{.key = Key("a"), .mod_revision = written.revision - 1}},
                       .ops = {Op::Put(Key("a"), "2")}},
                      guarded.Callback());
  ASSERT_OK_AND_ASSIGN(const TxnResult refused, guarded.Wait());
  EXPECT_FALSE(refused.succeeded);
  EXPECT_THAT(store().Get(Key("a")), IsOkAndHolds(::testing::Field(&KeyValue::value, "1")));
}

TEST_P(StoreContractTest, ConcurrentAsyncCommitsAreEachAnsweredOnce) {
  constexpr int kCommits = 200;
  std::vector<AsyncAnswer> answers(kCommits);
  for (int i = 0; i < kCommits; ++i) {
    store().CommitAsync({.ops = {Op::Put(Key(absl::StrCat("k", i)), absl::StrCat(i))}},
                        answers[static_cast<size_t>(i)].Callback());
  }
  for (int i = 0; i < kCommits; ++i) {
    ASSERT_OK_AND_ASSIGN(const TxnResult result, answers[static_cast<size_t>(i)].Wait());
    EXPECT_TRUE(result.succeeded) << i;
  }
  ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(Key("k")));
  EXPECT_EQ(range.kvs.size(), static_cast<size_t>(kCommits));
}

// ---------------------------------------------------------------------------------------------
// Revisions

TEST_P(StoreContractTest, CurrentRevisionIsMonotonicAndCoversCommits) {
  ASSERT_OK_AND_ASSIGN(const int64_t first, PutKey(Key("first"), "v"));
  ASSERT_OK_AND_ASSIGN(const int64_t before, store().CurrentRevision());
  ASSERT_OK_AND_ASSIGN(const int64_t put, PutKey(Key("a"), "v"));
  ASSERT_OK_AND_ASSIGN(const int64_t after, store().CurrentRevision());
  EXPECT_GE(before, first);
  EXPECT_GT(put, before);
  EXPECT_GE(after, put);
  int64_t previous = after;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(const int64_t current, store().CurrentRevision());
    EXPECT_GE(current, previous);
    previous = current;
  }
}

TEST_P(StoreContractTest, EachChangingTxnAdvancesRevisionByExactlyOne) {
  bool held = false;
  for (int attempt = 0; attempt < kQuietAttempts && !held; ++attempt) {
    ASSERT_OK_AND_ASSIGN(const int64_t first, PutKey(Key("a"), "1"));
    ASSERT_OK_AND_ASSIGN(const TxnResult multi,
                         store().Commit({.ops = {Op::Put(Key("b"), "1"), Op::Put(Key("c"), "1"),
                                                 Op::Delete(Key("a"))}}));
    ASSERT_OK_AND_ASSIGN(const int64_t third, PutKey(Key("d"), "1"));
    held = multi.revision == first + 1 && third == first + 2;
  }
  EXPECT_TRUE(held) << "revisions did not advance by exactly one per transaction in "
                    << kQuietAttempts << " attempts";
}

TEST_P(StoreContractTest, AllChangesOfATxnShareItsRevision) {
  ASSERT_THAT(PutKey(Key("old"), "x"), IsOk());
  ASSERT_OK_AND_ASSIGN(const TxnResult result,
                       store().Commit({.ops = {Op::Put(Key("a"), "1"), Op::Put(Key("b"), "2"),
                                               Op::Delete(Key("old"))}}));
  ASSERT_TRUE(result.succeeded);
  EXPECT_EQ(result.deleted, 1);

  ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(prefix()));
  ASSERT_EQ(range.kvs.size(), 2U);
  for (const KeyValue& kv : range.kvs) {
    EXPECT_EQ(kv.mod_revision, result.revision) << kv.key;
    EXPECT_EQ(kv.create_revision, result.revision) << kv.key;
  }
  EXPECT_GE(range.revision, result.revision);
}

TEST_P(StoreContractTest, TxnThatChangesNothingDoesNotAdvanceRevision) {
  // etcd (mvcc storeTxnWrite.End) only advances the revision when the transaction changed
  // something: deleting missing keys, an empty prefix delete and empty transactions do not.
  bool held = false;
  for (int attempt = 0; attempt < kQuietAttempts && !held; ++attempt) {
    ASSERT_OK_AND_ASSIGN(const int64_t before, PutKey(Key("anchor"), "v"));
    ASSERT_OK_AND_ASSIGN(const TxnResult delete_missing, store::Delete(store(), Key("missing")));
    EXPECT_TRUE(delete_missing.succeeded);
    EXPECT_EQ(delete_missing.deleted, 0);
    ASSERT_OK_AND_ASSIGN(const TxnResult delete_prefix_missing,
                         store().Commit({.ops = {Op::DeletePrefix(Key("nothing/"))}}));
    EXPECT_TRUE(delete_prefix_missing.succeeded);
    EXPECT_EQ(delete_prefix_missing.deleted, 0);
    ASSERT_OK_AND_ASSIGN(const TxnResult empty, store().Commit({}));
    EXPECT_TRUE(empty.succeeded);
    ASSERT_OK_AND_ASSIGN(const int64_t after, PutKey(Key("anchor"), "w"));
    held = delete_missing.revision == before && delete_prefix_missing.revision == before &&
           empty.revision == before && after == before + 1;
  }
  EXPECT_TRUE(held) << "a transaction that changed nothing advanced the revision";
}

TEST_P(StoreContractTest, FailedCompareChangesNothingAndDoesNotAdvanceRevision) {
  bool held = false;
  for (int attempt = 0; attempt < kQuietAttempts && !held; ++attempt) {
    ASSERT_OK_AND_ASSIGN(const int64_t before, PutKey(Key("a"), "v"));
    ASSERT_OK_AND_ASSIGN(
        const TxnResult failed,
        store().Commit({.compares = {{.key = Key("a"), .mod_revision = before + 1000}},
                        .ops = {Op::Put(Key("b"), "x"), Op::Delete(Key("a"))}}));
    EXPECT_FALSE(failed.succeeded);
    EXPECT_EQ(failed.deleted, 0);
    EXPECT_GE(failed.revision, before);
    ASSERT_OK_AND_ASSIGN(const int64_t after, PutKey(Key("c"), "v"));
    held = failed.revision == before && after == before + 1;
  }
  EXPECT_TRUE(held) << "a failed transaction advanced the revision";
  EXPECT_THAT(store().Get(Key("b")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().Get(Key("a")), IsOk());
}

// ---------------------------------------------------------------------------------------------
// Compare

TEST_P(StoreContractTest, CompareModRevisionZeroMeansAbsent) {
  const Txn create_if_absent{.compares = {{.key = Key("lock"), .mod_revision = 0}},
                             .ops = {Op::Put(Key("lock"), "owner-1")}};
  ASSERT_OK_AND_ASSIGN(const TxnResult first, store().Commit(create_if_absent));
  EXPECT_TRUE(first.succeeded);
  ASSERT_OK_AND_ASSIGN(const TxnResult second, store().Commit(create_if_absent));
  EXPECT_FALSE(second.succeeded);

  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("lock")));
  EXPECT_EQ(kv.value, "owner-1");
  EXPECT_EQ(kv.mod_revision, first.revision);
}

TEST_P(StoreContractTest, CompareOnCurrentModRevisionSucceeds) {
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "1"));
  ASSERT_OK_AND_ASSIGN(const TxnResult result,
                       store().Commit({.compares = {{.key = Key("a"), .mod_revision = revision}},
                                       .ops = {Op::Put(Key("a"), "2")}}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_GT(result.revision, revision);
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "2");
  EXPECT_EQ(kv.mod_revision, result.revision);
}

TEST_P(StoreContractTest, StaleCompareFails) {
  ASSERT_OK_AND_ASSIGN(const int64_t stale, PutKey(Key("a"), "1"));
  ASSERT_THAT(PutKey(Key("a"), "2"), IsOk());
  ASSERT_OK_AND_ASSIGN(const TxnResult result,
                       store().Commit({.compares = {{.key = Key("a"), .mod_revision = stale}},
                                       .ops = {Op::Put(Key("a"), "3")}}));
  EXPECT_FALSE(result.succeeded);
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "2");
}

TEST_P(StoreContractTest, CompareNonZeroOnMissingKeyFails) {
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "1"));
  ASSERT_OK_AND_ASSIGN(
      const TxnResult result,
      store().Commit({.compares = {{.key = Key("missing"), .mod_revision = revision}},
                      .ops = {Op::Put(Key("b"), "1")}}));
  EXPECT_FALSE(result.succeeded);
  EXPECT_THAT(store().Get(Key("b")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, AllComparesMustHold) {
  ASSERT_OK_AND_ASSIGN(const int64_t a, PutKey(Key("a"), "1"));
  ASSERT_OK_AND_ASSIGN(const int64_t b, PutKey(Key("b"), "1"));
  ASSERT_OK_AND_ASSIGN(const TxnResult one_fails,
                       store().Commit({.compares = {{.key = Key("a"), .mod_revision = a},
                                                    {.key = Key("b"), .mod_revision = a}},
                                       .ops = {Op::Put(Key("c"), "1")}}));
  EXPECT_FALSE(one_fails.succeeded);
  EXPECT_THAT(store().Get(Key("c")), StatusIs(absl::StatusCode::kNotFound));

  ASSERT_OK_AND_ASSIGN(const TxnResult all_hold,
                       store().Commit({.compares = {{.key = Key("a"), .mod_revision = a},
                                                    {.key = Key("b"), .mod_revision = b},
                                                    {.key = Key("c"), .mod_revision = 0}},
                                       .ops = {Op::Put(Key("c"), "1")}}));
  EXPECT_TRUE(all_hold.succeeded);
  EXPECT_THAT(store().Get(Key("c")), IsOk());
}

TEST_P(StoreContractTest, CompareAfterDeleteSeesAbsentKey) {
  ASSERT_THAT(PutKey(Key("a"), "1"), IsOk());
  ASSERT_THAT(store::Delete(store(), Key("a")), IsOk());
  ASSERT_OK_AND_ASSIGN(const TxnResult result,
                       store().Commit({.compares = {{.key = Key("a"), .mod_revision = 0}},
                                       .ops = {Op::Put(Key("a"), "again")}}));
  EXPECT_TRUE(result.succeeded);
}

TEST_P(StoreContractTest, DuplicateKeyInOneTxnIsInvalidArgument) {
  // etcd rejects a transaction that writes one key twice (ErrGRPCDuplicateKey), including a put
  // under a range the same transaction deletes; nothing is applied.
  EXPECT_THAT(store().Commit({.ops = {Op::Put(Key("a"), "1"), Op::Put(Key("a"), "2")}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store().Commit({.ops = {Op::DeletePrefix(Key("")), Op::Put(Key("a"), "1")}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      store().Commit({.ops = {Op::DeleteRange(Key("0"), Key("b")), Op::Put(Key("a"), "1")}}),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store().Get(Key("a")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, ConcurrentCompareAndSwapNeverLosesAnUpdate) {
  constexpr int kThreads = 4;
  constexpr int64_t kIncrementsPerThread = 25;
  const std::string counter = Key("counter");
  ASSERT_OK_AND_ASSIGN(const int64_t created, PutKey(counter, "0"));
  // Half of the writers go through a second store object: another "process" on the same data.
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenStore());

  std::atomic<int> errors{0};
  auto increment = [&](Store& target) {
    for (int64_t done = 0; done < kIncrementsPerThread;) {
      absl::StatusOr<KeyValue> kv = target.Get(counter);
      int64_t value = 0;
      if (!kv.ok() || !absl::SimpleAtoi(kv->value, &value)) {
        ++errors;
        return;
      }
      absl::StatusOr<TxnResult> result =
          target.Commit({.compares = {{.key = counter, .mod_revision = kv->mod_revision}},
                         .ops = {Op::Put(counter, absl::StrCat(value + 1))}});
      if (!result.ok()) {
        ++errors;
        return;
      }
      if (result->succeeded) {
        ++done;
      }
    }
  };
  {
    std::vector<std::jthread> writers;
    writers.reserve(kThreads);
    for (int i = 0; i < kThreads; ++i) {
      writers.emplace_back(increment, std::ref(i % 2 == 0 ? store() : *other));
    }
  }

  EXPECT_EQ(errors.load(), 0);
  ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(counter));
  EXPECT_EQ(kv.value, absl::StrCat(kThreads * kIncrementsPerThread));
  EXPECT_EQ(kv.version, 1 + kThreads * kIncrementsPerThread);
  EXPECT_EQ(kv.create_revision, created);
  EXPECT_GE(kv.mod_revision, created + kThreads * kIncrementsPerThread);
}

}  // namespace
}  // namespace discovery::testing
