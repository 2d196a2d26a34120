#include "testing/store_contract.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"

#include "testing/status_matchers.h"
#include "testing/store_contract_suite.h"

// The compaction and expiry tests below spell status_matchers.h's ASSERT_OK_AND_ASSIGN so.
#define DISCOVERY_ASSERT_OK_AND_ASSIGN(lhs, rexpr) ASSERT_OK_AND_ASSIGN(lhs, rexpr)

namespace discovery::testing {

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

}  // namespace discovery::testing
