#include "testing/store_contract.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"

#include "testing/status_matchers.h"

// Unwraps a StatusOr into `lhs`, failing the test (and returning) on error.
#define DISCOVERY_CONTRACT_CONCAT_INNER(a, b) a##b
#define DISCOVERY_CONTRACT_CONCAT(a, b) DISCOVERY_CONTRACT_CONCAT_INNER(a, b)
#define DISCOVERY_ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                             \
  DISCOVERY_ASSERT_OK_AND_ASSIGN_IMPL(DISCOVERY_CONTRACT_CONCAT(contract_statusor_, __LINE__), \
                                      lhs, rexpr)
// `lhs` is a declaration, which parentheses would break.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define DISCOVERY_ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                        \
  ASSERT_THAT(statusor, ::discovery::testing::IsOk());            \
  lhs = *std::move(statusor)
// NOLINTEND(bugprone-macro-parentheses)

namespace discovery::testing {

using ::discovery::store::KeyValue;
using ::discovery::store::Op;
using ::discovery::store::RangeResult;
using ::discovery::store::Store;
using ::discovery::store::Txn;
using ::discovery::store::TxnResult;
using ::discovery::store::WatchEvent;
using ::discovery::store::WatchHandle;
using ::discovery::store::WatchResponse;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }

// ---------------------------------------------------------------------------------------------
// WatchRecorder

store::WatchCallback WatchRecorder::Callback(
    std::function<void(const store::WatchResponse&)> on_response) {
  return [this, on_response = std::move(on_response)](const WatchResponse& response) {
    if (on_response) {
      on_response(response);
    }
    absl::MutexLock lock(&mu_);
    responses_.push_back(response);
    event_count_ += response.events.size();
  };
}

bool WatchRecorder::WaitForEvents(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return event_count_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool WatchRecorder::WaitForResponses(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return responses_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool WatchRecorder::WaitForKey(std::string_view key, int64_t min_revision,
                               absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto seen = [this, key, min_revision]()
                  ABSL_SHARED_LOCKS_REQUIRED(mu_) { return HasKeyLocked(key, min_revision); };
  return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
}

bool WatchRecorder::WaitForCompaction(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto compacted = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !responses_.empty() && responses_.back().compact_revision != 0;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&compacted), timeout);
}

bool WatchRecorder::HasKeyLocked(std::string_view key, int64_t min_revision) const {
  for (const WatchResponse& response : responses_) {
    for (const WatchEvent& event : response.events) {
      if (event.kv.key == key && event.kv.mod_revision >= min_revision) {
        return true;
      }
    }
  }
  return false;
}

std::vector<WatchResponse> WatchRecorder::Responses() const {
  absl::MutexLock lock(&mu_);
  return responses_;
}

std::vector<WatchEvent> WatchRecorder::Events() const {
  absl::MutexLock lock(&mu_);
  std::vector<WatchEvent> events;
  for (const WatchResponse& response : responses_) {
    events.insert(events.end(), response.events.begin(), response.events.end());
  }
  return events;
}

size_t WatchRecorder::EventCount() const {
  absl::MutexLock lock(&mu_);
  return event_count_;
}

size_t WatchRecorder::ResponseCount() const {
  absl::MutexLock lock(&mu_);
  return responses_.size();
}

// ---------------------------------------------------------------------------------------------
// StoreContractTest

void StoreContractTest::SetUp() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  // Parameterised test names contain '/'; keep the prefix one path segment per part.
  const std::string test_name =
      absl::StrReplaceAll(absl::StrCat(info->test_suite_name(), ".", info->name()), {{"/", "."}});
  std::random_device random;
  const uint64_t nonce = (uint64_t{random()} << 32) | random();
  prefix_ = absl::StrCat("/contract/", test_name, "/", absl::Hex(nonce, absl::kZeroPad16), "/");

  ASSERT_TRUE(GetParam().open) << "StoreFactory.open is empty";
  absl::StatusOr<std::unique_ptr<Store>> opened = GetParam().open();
  ASSERT_THAT(opened, IsOk()) << "opening store " << GetParam().name;
  store_ = *std::move(opened);
  ASSERT_NE(store_, nullptr);
}

void StoreContractTest::TearDown() {
  if (store_ != nullptr) {
    // Best effort: a shared etcd should not accumulate the suite's keys.
    (void)store_->Commit({.ops = {Op::DeletePrefix(prefix_)}});
    store_.reset();
  }
}

std::string StoreContractTest::Key(std::string_view suffix) const {
  std::string key = prefix_;
  key.append(suffix);
  return key;
}

absl::StatusOr<std::unique_ptr<Store>> StoreContractTest::OpenStore() { return GetParam().open(); }

absl::Status StoreContractTest::ReopenStore() {
  store_.reset();
  absl::StatusOr<std::unique_ptr<Store>> opened = GetParam().open();
  if (!opened.ok()) {
    return opened.status();
  }
  store_ = *std::move(opened);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> StoreContractTest::PutKey(std::string key, std::string value) {
  absl::StatusOr<TxnResult> result = store::Put(*store_, std::move(key), std::move(value));
  if (!result.ok()) {
    return result.status();
  }
  if (!result->succeeded) {
    return absl::InternalError("a transaction without compares did not succeed");
  }
  return result->revision;
}

absl::StatusOr<std::vector<std::string>> StoreContractTest::RangeKeys(std::string_view prefix) {
  absl::StatusOr<RangeResult> range = store_->Range(prefix);
  if (!range.ok()) {
    return range.status();
  }
  std::vector<std::string> keys;
  for (const KeyValue& kv : range->kvs) {
    keys.push_back(kv.key);
  }
  return keys;
}

namespace {

// Expectations about exact revision arithmetic only hold while nobody else writes to the store.
// On a shared etcd another test may commit in between, so such a check is attempted a few times
// and passes if it held once; a backend that is wrong fails every attempt.
constexpr int kQuietAttempts = 20;

std::vector<std::string> EventKeys(const std::vector<WatchEvent>& events) {
  std::vector<std::string> keys;
  keys.reserve(events.size());
  for (const WatchEvent& event : events) {
    keys.push_back(event.kv.key);
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------
// Get / Put bookkeeping

TEST_P(StoreContractTest, GetMissingKeyIsNotFound) {
  EXPECT_THAT(store().Get(Key("missing")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, EmptyKeyIsInvalidArgument) {
  EXPECT_THAT(store().Get(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store::Put(store(), "", "v"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(store::Delete(store(), ""), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(StoreContractTest, PutCreatesKeyWithRevisionBookkeeping) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "one"));
  EXPECT_GT(revision, 0);

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv, (KeyValue{.key = Key("a"),
                          .value = "one",
                          .create_revision = revision,
                          .mod_revision = revision,
                          .version = 1}));
}

TEST_P(StoreContractTest, UpdateKeepsCreateRevisionAndCountsVersions) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t created, PutKey(Key("a"), "one"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t updated, PutKey(Key("a"), "two"));
  // Writing the same value again is still a change (etcd bumps revision and version).
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t rewritten, PutKey(Key("a"), "two"));
  EXPECT_GT(updated, created);
  EXPECT_GT(rewritten, updated);

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "two");
  EXPECT_EQ(kv.create_revision, created);
  EXPECT_EQ(kv.mod_revision, rewritten);
  EXPECT_EQ(kv.version, 3);
}

TEST_P(StoreContractTest, RecreateAfterDeleteStartsNewLifetime) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t created, PutKey(Key("a"), "one"));
  ASSERT_THAT(PutKey(Key("a"), "two"), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult deleted, store::Delete(store(), Key("a")));
  EXPECT_TRUE(deleted.succeeded);
  EXPECT_EQ(deleted.deleted, 1);
  EXPECT_THAT(store().Get(Key("a")), StatusIs(absl::StatusCode::kNotFound));

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t recreated, PutKey(Key("a"), "three"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_GT(recreated, deleted.revision);
  EXPECT_GT(kv.create_revision, created);
  EXPECT_EQ(kv.create_revision, recreated);
  EXPECT_EQ(kv.version, 1);
  EXPECT_EQ(kv.value, "three");
}

TEST_P(StoreContractTest, BinaryKeysAndValuesRoundTrip) {
  const std::string value("\0\x01\x7f\x80\xff", 5);
  const std::string key = Key(std::string("k\0\xff", 3));
  ASSERT_THAT(PutKey(key, value), IsOk());

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(key));
  EXPECT_EQ(kv.key, key);
  EXPECT_EQ(kv.value, value);
  // The embedded NUL must not truncate the key: "k" alone does not exist.
  EXPECT_THAT(store().Get(Key("k")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, EmptyValueIsAValue) {
  ASSERT_THAT(PutKey(Key("empty"), ""), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("empty")));
  EXPECT_EQ(kv.value, "");
  EXPECT_EQ(kv.version, 1);
}

// ---------------------------------------------------------------------------------------------
// Revisions

TEST_P(StoreContractTest, CurrentRevisionIsMonotonicAndCoversCommits) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t first, PutKey(Key("first"), "v"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t before, store().CurrentRevision());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t put, PutKey(Key("a"), "v"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t after, store().CurrentRevision());
  EXPECT_GE(before, first);
  EXPECT_GT(put, before);
  EXPECT_GE(after, put);
  int64_t previous = after;
  for (int i = 0; i < 5; ++i) {
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t current, store().CurrentRevision());
    EXPECT_GE(current, previous);
    previous = current;
  }
}

TEST_P(StoreContractTest, EachChangingTxnAdvancesRevisionByExactlyOne) {
  bool held = false;
  for (int attempt = 0; attempt < kQuietAttempts && !held; ++attempt) {
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t first, PutKey(Key("a"), "1"));
    DISCOVERY_ASSERT_OK_AND_ASSIGN(
        const TxnResult multi,
        store().Commit(
            {.ops = {Op::Put(Key("b"), "1"), Op::Put(Key("c"), "1"), Op::Delete(Key("a"))}}));
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t third, PutKey(Key("d"), "1"));
    held = multi.revision == first + 1 && third == first + 2;
  }
  EXPECT_TRUE(held) << "revisions did not advance by exactly one per transaction in "
                    << kQuietAttempts << " attempts";
}

TEST_P(StoreContractTest, AllChangesOfATxnShareItsRevision) {
  ASSERT_THAT(PutKey(Key("old"), "x"), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      const TxnResult result,
      store().Commit(
          {.ops = {Op::Put(Key("a"), "1"), Op::Put(Key("b"), "2"), Op::Delete(Key("old"))}}));
  ASSERT_TRUE(result.succeeded);
  EXPECT_EQ(result.deleted, 1);

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(prefix()));
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
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t before, PutKey(Key("anchor"), "v"));
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult delete_missing,
                                   store::Delete(store(), Key("missing")));
    EXPECT_TRUE(delete_missing.succeeded);
    EXPECT_EQ(delete_missing.deleted, 0);
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult delete_prefix_missing,
                                   store().Commit({.ops = {Op::DeletePrefix(Key("nothing/"))}}));
    EXPECT_TRUE(delete_prefix_missing.succeeded);
    EXPECT_EQ(delete_prefix_missing.deleted, 0);
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult empty, store().Commit({}));
    EXPECT_TRUE(empty.succeeded);
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t after, PutKey(Key("anchor"), "w"));
    held = delete_missing.revision == before && delete_prefix_missing.revision == before &&
           empty.revision == before && after == before + 1;
  }
  EXPECT_TRUE(held) << "a transaction that changed nothing advanced the revision";
}

TEST_P(StoreContractTest, FailedCompareChangesNothingAndDoesNotAdvanceRevision) {
  bool held = false;
  for (int attempt = 0; attempt < kQuietAttempts && !held; ++attempt) {
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t before, PutKey(Key("a"), "v"));
    DISCOVERY_ASSERT_OK_AND_ASSIGN(
        const TxnResult failed,
        store().Commit({.compares = {{.key = Key("a"), .mod_revision = before + 1000}},
                        .ops = {Op::Put(Key("b"), "x"), Op::Delete(Key("a"))}}));
    EXPECT_FALSE(failed.succeeded);
    EXPECT_EQ(failed.deleted, 0);
    EXPECT_GE(failed.revision, before);
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t after, PutKey(Key("c"), "v"));
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
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult first, store().Commit(create_if_absent));
  EXPECT_TRUE(first.succeeded);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult second, store().Commit(create_if_absent));
  EXPECT_FALSE(second.succeeded);

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("lock")));
  EXPECT_EQ(kv.value, "owner-1");
  EXPECT_EQ(kv.mod_revision, first.revision);
}

TEST_P(StoreContractTest, CompareOnCurrentModRevisionSucceeds) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      const TxnResult result,
      store().Commit({.compares = {{.key = Key("a"), .mod_revision = revision}},
                      .ops = {Op::Put(Key("a"), "2")}}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_GT(result.revision, revision);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "2");
  EXPECT_EQ(kv.mod_revision, result.revision);
}

TEST_P(StoreContractTest, StaleCompareFails) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t stale, PutKey(Key("a"), "1"));
  ASSERT_THAT(PutKey(Key("a"), "2"), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      const TxnResult result,
      store().Commit({.compares = {{.key = Key("a"), .mod_revision = stale}},
                      .ops = {Op::Put(Key("a"), "3")}}));
  EXPECT_FALSE(result.succeeded);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "2");
}

TEST_P(StoreContractTest, CompareNonZeroOnMissingKeyFails) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      const TxnResult result,
      store().Commit({.compares = {{.key = Key("missing"), .mod_revision = revision}},
                      .ops = {Op::Put(Key("b"), "1")}}));
  EXPECT_FALSE(result.succeeded);
  EXPECT_THAT(store().Get(Key("b")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, AllComparesMustHold) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t a, PutKey(Key("a"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t b, PutKey(Key("b"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult one_fails,
                                 store().Commit({.compares = {{.key = Key("a"), .mod_revision = a},
                                                              {.key = Key("b"), .mod_revision = a}},
                                                 .ops = {Op::Put(Key("c"), "1")}}));
  EXPECT_FALSE(one_fails.succeeded);
  EXPECT_THAT(store().Get(Key("c")), StatusIs(absl::StatusCode::kNotFound));

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult all_hold,
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
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult result,
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
  EXPECT_THAT(store().Get(Key("a")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, ConcurrentCompareAndSwapNeverLosesAnUpdate) {
  constexpr int kThreads = 4;
  constexpr int64_t kIncrementsPerThread = 25;
  const std::string counter = Key("counter");
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t created, PutKey(counter, "0"));
  // Half of the writers go through a second store object: another "process" on the same data.
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenStore());

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
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(counter));
  EXPECT_EQ(kv.value, absl::StrCat(kThreads * kIncrementsPerThread));
  EXPECT_EQ(kv.version, 1 + kThreads * kIncrementsPerThread);
  EXPECT_EQ(kv.create_revision, created);
  EXPECT_GE(kv.mod_revision, created + kThreads * kIncrementsPerThread);
}

// ---------------------------------------------------------------------------------------------
// Range

TEST_P(StoreContractTest, RangeReturnsKeysInByteOrder) {
  for (const char* suffix : {"b", "a/2", "c", "a", "a/10", "a/1", "B"}) {
    ASSERT_THAT(PutKey(Key(suffix), suffix), IsOk());
  }
  EXPECT_THAT(RangeKeys(prefix()),
              IsOkAndHolds(ElementsAre(Key("B"), Key("a"), Key("a/1"), Key("a/10"), Key("a/2"),
                                       Key("b"), Key("c"))));
}

TEST_P(StoreContractTest, RangeCarriesValuesAndBookkeeping) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t a1, PutKey(Key("a"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t a2, PutKey(Key("a"), "2"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t b1, PutKey(Key("b"), "x"));

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(prefix()));
  EXPECT_THAT(range.kvs, ElementsAre(KeyValue{.key = Key("a"),
                                              .value = "2",
                                              .create_revision = a1,
                                              .mod_revision = a2,
                                              .version = 2},
                                     KeyValue{.key = Key("b"),
                                              .value = "x",
                                              .create_revision = b1,
                                              .mod_revision = b1,
                                              .version = 1}));
  EXPECT_GE(range.revision, b1);
}

TEST_P(StoreContractTest, RangeOfEmptyPrefixRangeIsEmpty) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("x"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(Key("nothing/")));
  EXPECT_THAT(range.kvs, IsEmpty());
  // The revision of an empty read is still the store revision.
  EXPECT_GE(range.revision, revision);
}

TEST_P(StoreContractTest, RangePrefixIsABytePrefix) {
  ASSERT_THAT(PutKey(Key("x/ns"), "exact-without-slash"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/"), "exact"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/a"), "child"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/a/b"), "grandchild"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns-other/a"), "sibling"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns0"), "sibling"), IsOk());
  ASSERT_THAT(PutKey(Key("x/nr"), "before"), IsOk());

  EXPECT_THAT(RangeKeys(Key("x/ns/")),
              IsOkAndHolds(ElementsAre(Key("x/ns/"), Key("x/ns/a"), Key("x/ns/a/b"))));
  // Without the trailing slash the prefix is a plain byte prefix and includes "x/ns-other/".
  EXPECT_THAT(RangeKeys(Key("x/ns")),
              IsOkAndHolds(ElementsAre(Key("x/ns"), Key("x/ns-other/a"), Key("x/ns/"),
                                       Key("x/ns/a"), Key("x/ns/a/b"), Key("x/ns0"))));
}

TEST_P(StoreContractTest, RangeHandlesHighBytesAndPrefixEnd) {
  // Keys are unsigned byte strings: 0x80 and 0xff sort after ASCII, and a prefix ending in 0xff
  // has no simple "+1" range end.
  const std::string high = Key("\xff");
  const std::string higher = Key("\xff\xff");
  const std::string highest = Key("\xff\xff\x01");
  const std::string mid = Key("\x80");
  const std::string low = Key("\x01");
  const std::string ascii = Key("z");
  for (const std::string& key : {highest, ascii, higher, low, mid, high}) {
    ASSERT_THAT(PutKey(key, "v"), IsOk());
  }
  EXPECT_THAT(RangeKeys(prefix()),
              IsOkAndHolds(ElementsAre(low, ascii, mid, high, higher, highest)));
  EXPECT_THAT(RangeKeys(high), IsOkAndHolds(ElementsAre(high, higher, highest)));
  EXPECT_THAT(RangeKeys(higher), IsOkAndHolds(ElementsAre(higher, highest)));
  EXPECT_THAT(RangeKeys(Key("\x80")), IsOkAndHolds(ElementsAre(mid)));
}

TEST_P(StoreContractTest, RangeIncludesKeysWithEmbeddedNul) {
  const std::string with_nul = Key(std::string("a\0b", 3));
  ASSERT_THAT(PutKey(with_nul, "v"), IsOk());
  ASSERT_THAT(PutKey(Key("a"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("ab"), "v"), IsOk());
  EXPECT_THAT(RangeKeys(Key("a")), IsOkAndHolds(ElementsAre(Key("a"), with_nul, Key("ab"))));
  EXPECT_THAT(RangeKeys(Key(std::string("a\0", 2))), IsOkAndHolds(ElementsAre(with_nul)));
}

// ---------------------------------------------------------------------------------------------
// Delete

TEST_P(StoreContractTest, DeleteReportsDeletedCount) {
  ASSERT_THAT(PutKey(Key("a"), "1"), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult existing, store::Delete(store(), Key("a")));
  EXPECT_TRUE(existing.succeeded);
  EXPECT_EQ(existing.deleted, 1);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult missing, store::Delete(store(), Key("a")));
  EXPECT_TRUE(missing.succeeded);
  EXPECT_EQ(missing.deleted, 0);
}

TEST_P(StoreContractTest, DeletePrefixRemovesOnlyThePrefix) {
  for (const char* suffix : {"ns/a", "ns/b", "ns/c/d", "ns-other/a", "nt"}) {
    ASSERT_THAT(PutKey(Key(suffix), "v"), IsOk());
  }
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult result,
                                 store().Commit({.ops = {Op::DeletePrefix(Key("ns/"))}}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_EQ(result.deleted, 3);
  EXPECT_THAT(RangeKeys(prefix()), IsOkAndHolds(ElementsAre(Key("ns-other/a"), Key("nt"))));
}

TEST_P(StoreContractTest, DeletedCountSumsOverOpsOfATxn) {
  for (const char* suffix : {"a/1", "a/2", "b", "c"}) {
    ASSERT_THAT(PutKey(Key(suffix), "v"), IsOk());
  }
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      const TxnResult result,
      store().Commit({.ops = {Op::DeletePrefix(Key("a/")), Op::Delete(Key("b")),
                              Op::Delete(Key("missing")), Op::Put(Key("d"), "new")}}));
  EXPECT_TRUE(result.succeeded);
  EXPECT_EQ(result.deleted, 3);
  EXPECT_THAT(RangeKeys(prefix()), IsOkAndHolds(ElementsAre(Key("c"), Key("d"))));
}

// ---------------------------------------------------------------------------------------------
// Re-open and several store objects

TEST_P(StoreContractTest, DataSurvivesReopen) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "kept"));
  ASSERT_THAT(ReopenStore(), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("a")));
  EXPECT_EQ(kv.value, "kept");
  EXPECT_EQ(kv.mod_revision, revision);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t current, store().CurrentRevision());
  EXPECT_GE(current, revision);
  // Revisions keep increasing after a restart; they are never reused.
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t next, PutKey(Key("b"), "new"));
  EXPECT_GT(next, revision);
}

TEST_P(StoreContractTest, SecondStoreSeesCommitsOfTheFirst) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenStore());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "from-first"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, other->Get(Key("a")));
  EXPECT_EQ(kv.value, "from-first");
  EXPECT_EQ(kv.mod_revision, revision);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t other_current, other->CurrentRevision());
  EXPECT_GE(other_current, revision);

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult second,
                                 store::Put(*other, Key("b"), "from-second"));
  EXPECT_GT(second.revision, revision);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue back, store().Get(Key("b")));
  EXPECT_EQ(back.mod_revision, second.revision);
}

// ---------------------------------------------------------------------------------------------
// Watch

TEST_P(StoreContractTest, WatchFromNowSeesOnlyLaterChanges) {
  ASSERT_THAT(PutKey(Key("before"), "v"), IsOk());
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("after"), "v"));

  ASSERT_TRUE(recorder.WaitForKey(Key("after")));
  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0], (WatchEvent{.type = WatchEvent::Type::kPut,
                                   .kv = {.key = Key("after"),
                                          .value = "v",
                                          .create_revision = revision,
                                          .mod_revision = revision,
                                          .version = 1}}));
  EXPECT_GE(recorder.Responses().back().revision, revision);
  EXPECT_EQ(recorder.Responses().back().compact_revision, 0);
}

TEST_P(StoreContractTest, WatchReplaysFromPastRevisionThenContinuesLive) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t r1, PutKey(Key("a"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t r2, PutKey(Key("b"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t r3, PutKey(Key("a"), "2"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult r4, store::Delete(store(), Key("b")));

  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), r2, recorder.Callback()));
  ASSERT_TRUE(recorder.WaitForEvents(3));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t r5, PutKey(Key("c"), "1"));
  ASSERT_TRUE(recorder.WaitForEvents(4));

  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_EQ(events.size(), 4U);
  EXPECT_EQ(events[0], (WatchEvent{.type = WatchEvent::Type::kPut,
                                   .kv = {.key = Key("b"),
                                          .value = "1",
                                          .create_revision = r2,
                                          .mod_revision = r2,
                                          .version = 1}}));
  EXPECT_EQ(events[1], (WatchEvent{.type = WatchEvent::Type::kPut,
                                   .kv = {.key = Key("a"),
                                          .value = "2",
                                          .create_revision = r1,
                                          .mod_revision = r3,
                                          .version = 2}}));
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, Key("b"));
  EXPECT_EQ(events[2].kv.mod_revision, r4.revision);
  EXPECT_EQ(events[2].kv.value, "");
  EXPECT_EQ(events[3].kv.key, Key("c"));
  EXPECT_EQ(events[3].kv.mod_revision, r5);
}

TEST_P(StoreContractTest, WatchFromRangeRevisionPlusOneSeesEachLaterChangeOnce) {
  ASSERT_THAT(PutKey(Key("a"), "1"), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(prefix()));
  // A change between the Range and the Watch must still be seen: the watch starts at the
  // range's revision, not at "now".
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t between, PutKey(Key("b"), "1"));
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), range.revision + 1, recorder.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t after, PutKey(Key("c"), "1"));
  ASSERT_TRUE(recorder.WaitForKey(Key("c")));

  const std::vector<WatchEvent> events = recorder.Events();
  EXPECT_THAT(EventKeys(events), ElementsAre(Key("b"), Key("c")));
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].kv.mod_revision, between);
  EXPECT_EQ(events[1].kv.mod_revision, after);
}

TEST_P(StoreContractTest, WatchDeliversEventsInRevisionOrder) {
  constexpr int kWrites = 60;
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  std::vector<int64_t> revisions;
  for (int i = 0; i < kWrites; ++i) {
    // A few keys written repeatedly, with deletes mixed in.
    const std::string key = Key(absl::StrCat("k", i % 7));
    if (i % 5 == 4) {
      DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult deleted, store::Delete(store(), key));
      if (deleted.deleted == 0) {
        continue;
      }
      revisions.push_back(deleted.revision);
    } else {
      DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(key, absl::StrCat(i)));
      revisions.push_back(revision);
    }
  }
  ASSERT_TRUE(recorder.WaitForEvents(revisions.size()));
  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_EQ(events.size(), revisions.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kv.mod_revision, revisions[i]) << "event " << i;
  }
  int64_t previous_response = 0;
  for (const WatchResponse& response : recorder.Responses()) {
    EXPECT_GE(response.revision, previous_response);
    previous_response = response.revision;
    for (const WatchEvent& event : response.events) {
      EXPECT_LE(event.kv.mod_revision, response.revision);
    }
  }
}

TEST_P(StoreContractTest, TxnEventsArriveInOneResponse) {
  ASSERT_THAT(PutKey(Key("gone"), "v"), IsOk());
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      const TxnResult txn,
      store().Commit({.ops = {Op::Put(Key("a"), "1"), Op::Put(Key("b"), "1"),
                              Op::Delete(Key("gone")), Op::Put(Key("c"), "1")}}));
  ASSERT_TRUE(recorder.WaitForEvents(4));

  // Backends may deliver responses without events (e.g. progress); only event-carrying ones
  // count here.
  std::vector<WatchResponse> responses = recorder.Responses();
  std::erase_if(responses, [](const WatchResponse& response) { return response.events.empty(); });
  ASSERT_EQ(responses.size(), 1U) << "a transaction's events were split across responses";
  ASSERT_EQ(responses[0].events.size(), 4U);
  std::vector<std::string> puts;
  for (const WatchEvent& event : responses[0].events) {
    EXPECT_EQ(event.kv.mod_revision, txn.revision);
    if (event.type == WatchEvent::Type::kDelete) {
      EXPECT_EQ(event.kv.key, Key("gone"));
    } else {
      puts.push_back(event.kv.key);
    }
  }
  // etcd emits a transaction's events in the order of its ops.
  EXPECT_THAT(puts, ElementsAre(Key("a"), Key("b"), Key("c")));
}

TEST_P(StoreContractTest, DeletePrefixEmitsOneDeleteEventPerKey) {
  for (const char* suffix : {"d/a", "d/b", "keep"}) {
    ASSERT_THAT(PutKey(Key(suffix), "v"), IsOk());
  }
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult txn,
                                 store().Commit({.ops = {Op::DeletePrefix(Key("d/"))}}));
  ASSERT_TRUE(recorder.WaitForEvents(2));

  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_EQ(events.size(), 2U);
  std::vector<std::string> keys = EventKeys(events);
  std::sort(keys.begin(), keys.end());
  EXPECT_THAT(keys, ElementsAre(Key("d/a"), Key("d/b")));
  for (const WatchEvent& event : events) {
    EXPECT_EQ(event.type, WatchEvent::Type::kDelete);
    EXPECT_EQ(event.kv.mod_revision, txn.revision);
    EXPECT_EQ(event.kv.value, "");
  }
}

TEST_P(StoreContractTest, WatchSeesOnlyItsPrefix) {
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(Key("x/ns/"), 0, recorder.Callback()));
  // Written first, so if they leaked they would be delivered before the marker.
  ASSERT_THAT(PutKey(Key("x/ns-other/a"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("x/nt"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/a"), "v"), IsOk());
  ASSERT_THAT(store::Delete(store(), Key("x/ns-other/a")), IsOk());
  ASSERT_THAT(PutKey(Key("x/ns/marker"), "v"), IsOk());

  ASSERT_TRUE(recorder.WaitForKey(Key("x/ns/marker")));
  EXPECT_THAT(EventKeys(recorder.Events()), ElementsAre(Key("x/ns/a"), Key("x/ns/marker")));
}

TEST_P(StoreContractTest, WatchOnSingleKeyPrefixWithHighBytes) {
  WatchRecorder recorder;
  const std::string high = Key("\xff");
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(high, 0, recorder.Callback()));
  ASSERT_THAT(PutKey(Key("z"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("\xff\xff"), "v"), IsOk());
  ASSERT_THAT(PutKey(high, "v"), IsOk());
  ASSERT_TRUE(recorder.WaitForKey(high));
  EXPECT_THAT(EventKeys(recorder.Events()), ElementsAre(Key("\xff\xff"), high));
}

TEST_P(StoreContractTest, FailedOrNoOpTxnProducesNoEvents) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "1"));
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  ASSERT_THAT(store().Commit({.compares = {{.key = Key("a"), .mod_revision = revision + 1000}},
                              .ops = {Op::Put(Key("a"), "2")}}),
              IsOk());
  ASSERT_THAT(store::Delete(store(), Key("missing")), IsOk());
  ASSERT_THAT(store().Commit({.ops = {Op::DeletePrefix(Key("nothing/"))}}), IsOk());
  ASSERT_THAT(PutKey(Key("marker"), "v"), IsOk());

  ASSERT_TRUE(recorder.WaitForKey(Key("marker")));
  EXPECT_THAT(EventKeys(recorder.Events()), ElementsAre(Key("marker")));
}

TEST_P(StoreContractTest, ManyWatchesOnOneStoreEachSeeTheirEvents) {
  WatchRecorder all;
  WatchRecorder only_a;
  WatchRecorder only_b;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> h_all,
                                 store().Watch(prefix(), 0, all.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> h_a,
                                 store().Watch(Key("a/"), 0, only_a.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> h_b,
                                 store().Watch(Key("b/"), 0, only_b.Callback()));
  ASSERT_THAT(PutKey(Key("a/1"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("b/1"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("a/2"), "v"), IsOk());

  ASSERT_TRUE(all.WaitForEvents(3));
  ASSERT_TRUE(only_a.WaitForEvents(2));
  ASSERT_TRUE(only_b.WaitForEvents(1));
  EXPECT_THAT(EventKeys(all.Events()), ElementsAre(Key("a/1"), Key("b/1"), Key("a/2")));
  EXPECT_THAT(EventKeys(only_a.Events()), ElementsAre(Key("a/1"), Key("a/2")));
  EXPECT_THAT(EventKeys(only_b.Events()), ElementsAre(Key("b/1")));
}

TEST_P(StoreContractTest, CallbackMayCallIntoTheStore) {
  // Callbacks never run under the store's locks, so reading the store from one must not
  // deadlock.
  WatchRecorder recorder;
  std::atomic<int> reads_ok{0};
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<WatchHandle> handle,
      store().Watch(prefix(), 0, recorder.Callback([&](const WatchResponse& response) {
        for (const WatchEvent& event : response.events) {
          if (store().Get(event.kv.key).ok() && store().Range(prefix()).ok()) {
            ++reads_ok;
          }
        }
      })));
  ASSERT_THAT(PutKey(Key("a"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("b"), "v"), IsOk());
  ASSERT_TRUE(recorder.WaitForEvents(2));
  EXPECT_EQ(reads_ok.load(), 2);
}

TEST_P(StoreContractTest, DestroyingHandleStopsCallbacks) {
  WatchRecorder cancelled;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, cancelled.Callback()));
  ASSERT_THAT(PutKey(Key("a"), "v"), IsOk());
  ASSERT_TRUE(cancelled.WaitForEvents(1));
  handle.reset();
  const size_t seen = cancelled.EventCount();

  // A second watch proves the later writes were delivered to watchers; the cancelled one must
  // not have seen them.
  WatchRecorder witness;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t now, store().CurrentRevision());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> witness_handle,
                                 store().Watch(prefix(), now + 1, witness.Callback()));
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(PutKey(Key(absl::StrCat("later", i)), "v"), IsOk());
  }
  ASSERT_TRUE(witness.WaitForEvents(5));
  EXPECT_EQ(cancelled.EventCount(), seen);
}

TEST_P(StoreContractTest, DestroyingHandleWaitsForRunningCallback) {
  absl::Mutex mu;
  bool entered = false;
  std::atomic<bool> finished{false};
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, [&](const WatchResponse&) {
                                   {
                                     absl::MutexLock lock(&mu);
                                     entered = true;
                                   }
                                   // Long enough that a destructor that does not wait for the
                                   // running callback returns first.
                                   absl::SleepFor(absl::Milliseconds(200));
                                   finished = true;
                                 }));
  ASSERT_THAT(PutKey(Key("a"), "v"), IsOk());
  {
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&entered), kStoreWaitTimeout));
  }
  handle.reset();
  EXPECT_TRUE(finished.load());
}

TEST_P(StoreContractTest, WatchOnSecondStoreSeesCommitsOfTheFirst) {
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenStore());
  WatchRecorder on_other;
  WatchRecorder on_first;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> other_handle,
                                 other->Watch(prefix(), 0, on_other.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> first_handle,
                                 store().Watch(prefix(), 0, on_first.Callback()));

  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t from_first, PutKey(Key("a"), "1"));
  ASSERT_TRUE(on_other.WaitForKey(Key("a"), from_first));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult from_other, store::Put(*other, Key("b"), "2"));
  ASSERT_TRUE(on_first.WaitForKey(Key("b"), from_other.revision));
  ASSERT_TRUE(on_other.WaitForKey(Key("b"), from_other.revision));

  EXPECT_THAT(EventKeys(on_other.Events()), ElementsAre(Key("a"), Key("b")));
  EXPECT_THAT(EventKeys(on_first.Events()), ElementsAre(Key("a"), Key("b")));
  first_handle.reset();
  other_handle.reset();
}

TEST_P(StoreContractTest, WatchFromCompactedRevisionReportsCompaction) {
  if (!factory().compact) {
    GTEST_SKIP() << "backend " << factory().name << " provides no compact hook";
  }
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t r1, PutKey(Key("a"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t r2, PutKey(Key("b"), "1"));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t r3, PutKey(Key("c"), "1"));
  factory().compact(store(), r2);
  if (HasFatalFailure()) {
    return;
  }

  WatchRecorder compacted;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> compacted_handle,
                                 store().Watch(prefix(), r1, compacted.Callback()));
  ASSERT_TRUE(compacted.WaitForCompaction());
  std::vector<WatchResponse> responses = compacted.Responses();
  EXPECT_GE(responses.back().compact_revision, r2);
  EXPECT_EQ(compacted.EventCount(), 0U);

  // From the compaction revision on, history is still there.
  WatchRecorder kept;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> kept_handle,
                                 store().Watch(prefix(), r2, kept.Callback()));
  ASSERT_TRUE(kept.WaitForEvents(2));
  EXPECT_THAT(EventKeys(kept.Events()), ElementsAre(Key("b"), Key("c")));
  EXPECT_EQ(kept.Events().back().kv.mod_revision, r3);

  // The current state is untouched by compaction.
  EXPECT_THAT(RangeKeys(prefix()), IsOkAndHolds(ElementsAre(Key("a"), Key("b"), Key("c"))));

  // The compacted watch has ended: later changes reach only the live one.
  ASSERT_THAT(PutKey(Key("d"), "1"), IsOk());
  ASSERT_TRUE(kept.WaitForKey(Key("d")));
  EXPECT_EQ(compacted.ResponseCount(), responses.size());
  EXPECT_EQ(compacted.EventCount(), 0U);
}

}  // namespace
// Expiring keys (Op::expires). The deadlines are a few seconds out so that a backend with
// second-granular leases (etcd) can honour them; the waits are generous deadlines, not
// measurements.
TEST_P(StoreContractTest, ExpiringKeyIsDeletedAndWatchesSeeTheDelete) {
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(
      const TxnResult put,
      store().Commit({.ops = {Op::PutExpiring(Key("ttl"), "v", absl::Now() + absl::Seconds(2)),
                              Op::Put(Key("forever"), "v")}}));
  ASSERT_TRUE(put.succeeded);
  ASSERT_TRUE(recorder.WaitForEvents(3, absl::Seconds(30)));
  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, Key("ttl"));
  EXPECT_GT(events[2].kv.mod_revision, put.revision);
  EXPECT_THAT(store().Get(Key("ttl")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().Get(Key("forever")), IsOk());
}

TEST_P(StoreContractTest, PutWithoutExpiryClearsTheExpiry) {
  ASSERT_THAT(
      store().Commit({.ops = {Op::PutExpiring(Key("k"), "v1", absl::Now() + absl::Seconds(2))}}),
      IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t kept, PutKey(Key("k"), "v2"));
  ASSERT_THAT(
      store().Commit({.ops = {Op::PutExpiring(Key("gone"), "v", absl::Now() + absl::Seconds(2))}}),
      IsOk());
  // Once a key put with the same deadline is gone, "k" would have gone too.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (store().Get(Key("gone")).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_THAT(store().Get(Key("gone")), StatusIs(absl::StatusCode::kNotFound));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("k")));
  EXPECT_EQ(kv.value, "v2");
  EXPECT_EQ(kv.mod_revision, kept);
}

TEST_P(StoreContractTest, PuttingAgainWithALaterExpiryKeepsTheKeyPastItsFirstDeadline) {
  ASSERT_THAT(store().Commit(
                  {.ops = {Op::PutExpiring(Key("renewed"), "v", absl::Now() + absl::Seconds(2))}}),
              IsOk());
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(Key("renewed"), "v",
                                                      absl::Now() + absl::Seconds(120))}}),
              IsOk());
  ASSERT_THAT(
      store().Commit({.ops = {Op::PutExpiring(Key("first"), "v", absl::Now() + absl::Seconds(2))}}),
      IsOk());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (store().Get(Key("first")).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_THAT(store().Get(Key("first")), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().Get(Key("renewed")), IsOk());
}

// Renewals (Store::Renew). A renewal set renewed again must not grow the store: no revision, no
// watch event. TTLs are whole seconds of at least 2 (etcd's smallest lease TTL).
namespace {

constexpr absl::Duration kRenewTtl = absl::Seconds(2);

// The keys `keys` as `store` has them now, as a renewal of `ttl` from now.
absl::StatusOr<store::Renewal> RenewalOf(Store& store, const std::vector<std::string>& keys,
                                         absl::Duration ttl = kRenewTtl) {
  store::Renewal renewal{.ttl = ttl, .expires = absl::Now() + ttl};
  for (const std::string& key : keys) {
    absl::StatusOr<KeyValue> kv = store.Get(key);
    if (!kv.ok()) {
      return kv.status();
    }
    renewal.keys.push_back(
        {.key = key, .mod_revision = kv->mod_revision, .lease = kv->lease, .value = kv->value});
  }
  return renewal;
}

}  // namespace

TEST_P(StoreContractTest, RenewingAMovedSetAgainCreatesNoRevisionAndNoEvent) {
  const std::vector<std::string> keys = {Key("a"), Key("b")};
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(keys[0], "va", absl::Now() + kRenewTtl),
                                      Op::PutExpiring(keys[1], "vb", absl::Now() + kRenewTtl)}}),
              IsOk());
  // The first renewal of the set may move it (one revision on etcd).
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal first, RenewalOf(store(), keys));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult moved, store().Renew(first));
  ASSERT_TRUE(moved.succeeded);
  EXPECT_THAT(moved.gone, IsEmpty());

  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t before, store().CurrentRevision());
  for (int i = 0; i < 3; ++i) {
    DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal again, RenewalOf(store(), keys));
    for (const store::RenewKey& key : again.keys) {
      DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(key.key));
      EXPECT_TRUE(store().RenewsInPlace(kv)) << key.key;
    }
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult renewed, store().Renew(again));
    EXPECT_TRUE(renewed.succeeded);
    EXPECT_EQ(renewed.revision, 0);
    EXPECT_THAT(renewed.gone, IsEmpty());
  }
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t after, store().CurrentRevision());
  EXPECT_EQ(after, before);
  // The first event the watch sees is the marker put after the renewals.
  ASSERT_THAT(PutKey(Key("marker"), "m"), IsOk());
  ASSERT_TRUE(recorder.WaitForKey(Key("marker")));
  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].kv.key, Key("marker"));
  EXPECT_THAT(store().Get(keys[0]), IsOk());
  EXPECT_THAT(store().Get(keys[1]), IsOk());
}

TEST_P(StoreContractTest, ASecondStoreRenewsTheSameSetWithoutARevision) {
  const std::vector<std::string> keys = {Key("x"), Key("y"), Key("z")};
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(keys[0], "v", absl::Now() + kRenewTtl),
                                      Op::PutExpiring(keys[1], "v", absl::Now() + kRenewTtl),
                                      Op::PutExpiring(keys[2], "v", absl::Now() + kRenewTtl)}}),
              IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal first, RenewalOf(store(), keys));
  ASSERT_THAT(store().Renew(first), IsOk());
  // Another replica, given the keys in another order, renews the same set (same lease).
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenStore());
  const std::vector<std::string> shuffled = {keys[2], keys[0], keys[1]};
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal again, RenewalOf(*other, shuffled));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t before, other->CurrentRevision());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult renewed, other->Renew(again));
  EXPECT_TRUE(renewed.succeeded);
  EXPECT_EQ(renewed.revision, 0);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t after, other->CurrentRevision());
  EXPECT_EQ(after, before);
}

TEST_P(StoreContractTest, APartlyMovedSetMovesAgainThenRenewsWithoutARevision) {
  const std::vector<std::string> keys = {Key("p"), Key("q")};
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(keys[0], "v", absl::Now() + kRenewTtl),
                                      Op::PutExpiring(keys[1], "v", absl::Now() + kRenewTtl)}}),
              IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal both, RenewalOf(store(), keys));
  ASSERT_THAT(store().Renew(both), IsOk());
  // "p" is renewed in a set of its own (moving it away from the pair's lease on etcd), and
  // "q" registered again (back on a deadline lease).
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal alone, RenewalOf(store(), {keys[0]}));
  ASSERT_THAT(store().Renew(alone), IsOk());
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(keys[1], "v2", absl::Now() + kRenewTtl)}}),
              IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal mixed, RenewalOf(store(), keys));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult moved, store().Renew(mixed));
  ASSERT_TRUE(moved.succeeded);
  EXPECT_THAT(moved.gone, IsEmpty());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t before, store().CurrentRevision());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal again, RenewalOf(store(), keys));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult renewed, store().Renew(again));
  EXPECT_TRUE(renewed.succeeded);
  EXPECT_EQ(renewed.revision, 0);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const int64_t after, store().CurrentRevision());
  EXPECT_EQ(after, before);
}

TEST_P(StoreContractTest, ARenewalOverAChangedRecordRenewsNothing) {
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(Key("k"), "v", absl::Now() + kRenewTtl)}}),
              IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal stale, RenewalOf(store(), {Key("k")}));
  ASSERT_THAT(PutKey(Key("k"), "forever"), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult result, store().Renew(stale));
  EXPECT_FALSE(result.succeeded);
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kv, store().Get(Key("k")));
  EXPECT_EQ(kv.value, "forever");
}

TEST_P(StoreContractTest, ARenewedKeyOutlivesItsRecordAndGoesWhenItsSetStopsRenewing) {
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  const absl::Time first_deadline = absl::Now() + kRenewTtl;
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(Key("kept"), "v", first_deadline)}}), IsOk());
  // Renewed every half second until well past the deadline its record was written with.
  while (absl::Now() < first_deadline + absl::Seconds(2)) {
    DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal renewal, RenewalOf(store(), {Key("kept")}));
    DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult result, store().Renew(renewal));
    ASSERT_TRUE(result.succeeded);
    ASSERT_THAT(result.gone, IsEmpty());
    absl::SleepFor(absl::Milliseconds(500));
  }
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const KeyValue kept, store().Get(Key("kept")));
  // Its deadline in force is the last renewal's, past the record's.
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const std::vector<std::optional<absl::Time>> deadlines,
                                 store().Deadlines({{.key = Key("kept"), .lease = kept.lease}}));
  ASSERT_EQ(deadlines.size(), 1U);
  ASSERT_TRUE(deadlines[0].has_value());
  EXPECT_GT(*deadlines[0], first_deadline);
  // No more renewals: the store deletes it, and says the delete is an expiry.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (store().Get(Key("kept")).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_THAT(store().Get(Key("kept")), StatusIs(absl::StatusCode::kNotFound));
  // The watch delivers the delete after the store made it.
  const absl::Time seen_by = absl::Now() + kStoreWaitTimeout;
  while (
      (recorder.Events().empty() || recorder.Events().back().type != WatchEvent::Type::kDelete) &&
      absl::Now() < seen_by) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, WatchEvent::Type::kDelete);
  EXPECT_TRUE(events.back().expired);
  // Renewing it now does not bring it back.
  store::Renewal late{.ttl = kRenewTtl, .expires = absl::Now() + kRenewTtl};
  late.keys.push_back(
      {.key = Key("kept"), .mod_revision = kept.mod_revision, .lease = kept.lease, .value = "v"});
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const store::RenewResult result, store().Renew(late));
  EXPECT_TRUE(!result.succeeded || result.gone.size() == 1U);
  EXPECT_THAT(store().Get(Key("kept")), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreContractTest, DeletingAPrefixOfRenewedKeysIsNoExpiry) {
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(Key("ns/a"), "v", absl::Now() + kRenewTtl),
                                      Op::PutExpiring(Key("ns/b"), "v", absl::Now() + kRenewTtl)}}),
              IsOk());
  // Two renewal sets: two leases on etcd.
  for (const std::string& key : {Key("ns/a"), Key("ns/b")}) {
    DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal renewal, RenewalOf(store(), {key}));
    ASSERT_THAT(store().Renew(renewal), IsOk());
  }
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult deleted,
                                 store().Commit({.ops = {Op::DeletePrefix(Key("ns/"))}}));
  ASSERT_EQ(deleted.deleted, 2);
  ASSERT_TRUE(recorder.WaitForKey(Key("ns/b"), deleted.revision));
  ASSERT_TRUE(recorder.WaitForKey(Key("ns/a"), deleted.revision));
  for (const WatchEvent& event : recorder.Events()) {
    if (event.type == WatchEvent::Type::kDelete) {
      EXPECT_FALSE(event.expired) << event.kv.key;
    }
  }
}

TEST_P(StoreContractTest, AnUnregistrationOfARenewedKeyIsNotAnExpiry) {
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  ASSERT_THAT(store().Commit({.ops = {Op::PutExpiring(Key("k"), "v", absl::Now() + kRenewTtl)}}),
              IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal renewal, RenewalOf(store(), {Key("k")}));
  ASSERT_THAT(store().Renew(renewal), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult deleted, store::Delete(store(), Key("k")));
  ASSERT_TRUE(recorder.WaitForKey(Key("k"), deleted.revision));
  const std::vector<WatchEvent> events = recorder.Events();
  EXPECT_EQ(events.back().type, WatchEvent::Type::kDelete);
  EXPECT_FALSE(events.back().expired);
}

}  // namespace discovery::testing
