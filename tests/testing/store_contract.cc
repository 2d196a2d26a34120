#include "testing/store_contract.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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

TEST_P(StoreContractTest, AnExpiredSetOfSeveralKeysIsAnExpiryOfEach) {
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  const std::vector<std::string> keys = {Key("s/a"), Key("s/b"), Key("s/c")};
  std::vector<Op> puts;
  puts.reserve(keys.size());
  for (const std::string& key : keys) {
    puts.push_back(Op::PutExpiring(key, "v", absl::Now() + kRenewTtl));
  }
  ASSERT_THAT(store().Commit({.ops = puts}), IsOk());
  DISCOVERY_ASSERT_OK_AND_ASSIGN(store::Renewal renewal, RenewalOf(store(), keys));
  ASSERT_THAT(store().Renew(renewal), IsOk());
  // Not renewed again: the store deletes all three, each an expiry.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto deletes = [&recorder] {
    std::vector<WatchEvent> deleted;
    for (const WatchEvent& event : recorder.Events()) {
      if (event.type == WatchEvent::Type::kDelete) {
        deleted.push_back(event);
      }
    }
    return deleted;
  };
  while (deletes().size() < keys.size() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  const std::vector<WatchEvent> deleted = deletes();
  ASSERT_EQ(deleted.size(), keys.size());
  for (const WatchEvent& event : deleted) {
    EXPECT_TRUE(event.expired) << event.kv.key;
  }
}

// A namespace of many services unregistered at once reaches every watcher as promptly as a
// small one (etcd took minutes for this many when asked for each deleted key's old version).
TEST_P(StoreContractTest, AWatchDeliversTheDeleteOfAPrefixOfManyKeys) {
  constexpr int kKeys = 20'000;
  constexpr int kBatch = 100;  // within etcd's limit of operations per transaction
  for (int first = 0; first < kKeys; first += kBatch) {
    std::vector<Op> puts;
    for (int i = first; i < first + kBatch; ++i) {
      puts.push_back(Op::Put(Key(absl::StrCat("many/", i)), "a value of some length"));
    }
    ASSERT_THAT(store().Commit({.ops = std::move(puts)}), IsOk());
  }
  WatchRecorder recorder;
  DISCOVERY_ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                                 store().Watch(prefix(), 0, recorder.Callback()));
  DISCOVERY_ASSERT_OK_AND_ASSIGN(const TxnResult deleted,
                                 store().Commit({.ops = {Op::DeletePrefix(Key("many/"))}}));
  ASSERT_EQ(deleted.deleted, kKeys);
  ASSERT_TRUE(recorder.WaitForEvents(kKeys));
  const std::vector<WatchEvent> events = recorder.Events();
  ASSERT_EQ(events.size(), static_cast<size_t>(kKeys));
  for (const WatchEvent& event : events) {
    ASSERT_EQ(event.type, WatchEvent::Type::kDelete);
    ASSERT_EQ(event.kv.mod_revision, deleted.revision);
    ASSERT_FALSE(event.expired) << event.kv.key;
  }
}

}  // namespace discovery::testing
