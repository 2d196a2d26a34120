#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"

#include "testing/status_matchers.h"
#include "testing/store_contract.h"
#include "testing/store_contract_suite.h"

// The store contract on watches: replay from a revision, live delivery in order, one response
// per transaction, prefixes, and the lifetime of a WatchHandle.
namespace discovery::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Watch

TEST_P(StoreContractTest, WatchFromNowSeesOnlyLaterChanges) {
  ASSERT_THAT(PutKey(Key("before"), "v"), IsOk());
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store().Watch(prefix(), 0, recorder.Callback()));
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("after"), "v"));

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
  ASSERT_OK_AND_ASSIGN(const int64_t r1, PutKey(Key("a"), "1"));
  ASSERT_OK_AND_ASSIGN(const int64_t r2, PutKey(Key("b"), "1"));
  ASSERT_OK_AND_ASSIGN(const int64_t r3, PutKey(Key("a"), "2"));
  ASSERT_OK_AND_ASSIGN(const TxnResult r4, store::Delete(store(), Key("b")));

  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store().Watch(prefix(), r2, recorder.Callback()));
  ASSERT_TRUE(recorder.WaitForEvents(3));
  ASSERT_OK_AND_ASSIGN(const int64_t r5, PutKey(Key("c"), "1"));
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
  ASSERT_OK_AND_ASSIGN(const RangeResult range, store().Range(prefix()));
  // A change between the Range and the Watch must still be seen: the watch starts at the
  // range's revision, not at "now".
  ASSERT_OK_AND_ASSIGN(const int64_t between, PutKey(Key("b"), "1"));
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store().Watch(prefix(), range.revision + 1, recorder.Callback()));
  ASSERT_OK_AND_ASSIGN(const int64_t after, PutKey(Key("c"), "1"));
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store().Watch(prefix(), 0, recorder.Callback()));
  std::vector<int64_t> revisions;
  for (int i = 0; i < kWrites; ++i) {
    // A few keys written repeatedly, with deletes mixed in.
    const std::string key = Key(absl::StrCat("k", i % 7));
    if (i % 5 == 4) {
      ASSERT_OK_AND_ASSIGN(const TxnResult deleted, store::Delete(store(), key));
      if (deleted.deleted == 0) {
        continue;
      }
      revisions.push_back(deleted.revision);
    } else {
      ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(key, absl::StrCat(i)));
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store().Watch(prefix(), 0, recorder.Callback()));
  ASSERT_OK_AND_ASSIGN(const TxnResult txn,
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

// A prefix or a range deleted: one delete event per key, all at the transaction's revision.
TEST_P(StoreContractTest, DeletePrefixAndDeleteRangeEmitOneDeleteEventPerKey) {
  for (const Op& op : {Op::DeletePrefix(Key("d/")), Op::DeleteRange(Key("d/a"), Key("d/c"))}) {
    SCOPED_TRACE(op.key);
    for (const char* suffix : {"d/a", "d/b", "keep"}) {
      ASSERT_THAT(PutKey(Key(suffix), "v"), IsOk());
    }
    WatchRecorder recorder;
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                         store().Watch(prefix(), 0, recorder.Callback()));
    ASSERT_OK_AND_ASSIGN(const TxnResult txn, store().Commit({.ops = {op}}));
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
}

TEST_P(StoreContractTest, WatchSeesOnlyItsPrefix) {
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store().Watch(high, 0, recorder.Callback()));
  ASSERT_THAT(PutKey(Key("z"), "v"), IsOk());
  ASSERT_THAT(PutKey(Key("\xff\xff"), "v"), IsOk());
  ASSERT_THAT(PutKey(high, "v"), IsOk());
  ASSERT_TRUE(recorder.WaitForKey(high));
  EXPECT_THAT(EventKeys(recorder.Events()), ElementsAre(Key("\xff\xff"), high));
}

TEST_P(StoreContractTest, FailedOrNoOpTxnProducesNoEvents) {
  ASSERT_OK_AND_ASSIGN(const int64_t revision, PutKey(Key("a"), "1"));
  WatchRecorder recorder;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> h_all,
                       store().Watch(prefix(), 0, all.Callback()));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> h_a,
                       store().Watch(Key("a/"), 0, only_a.Callback()));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> h_b,
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
  ASSERT_OK_AND_ASSIGN(
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
                       store().Watch(prefix(), 0, cancelled.Callback()));
  ASSERT_THAT(PutKey(Key("a"), "v"), IsOk());
  ASSERT_TRUE(cancelled.WaitForEvents(1));
  handle.reset();
  const size_t seen = cancelled.EventCount();

  // A second watch proves the later writes were delivered to watchers; the cancelled one must
  // not have seen them.
  WatchRecorder witness;
  ASSERT_OK_AND_ASSIGN(const int64_t now, store().CurrentRevision());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> witness_handle,
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> handle,
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
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Store> other, OpenStore());
  WatchRecorder on_other;
  WatchRecorder on_first;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> other_handle,
                       other->Watch(prefix(), 0, on_other.Callback()));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<WatchHandle> first_handle,
                       store().Watch(prefix(), 0, on_first.Callback()));

  ASSERT_OK_AND_ASSIGN(const int64_t from_first, PutKey(Key("a"), "1"));
  ASSERT_TRUE(on_other.WaitForKey(Key("a"), from_first));
  ASSERT_OK_AND_ASSIGN(const TxnResult from_other, store::Put(*other, Key("b"), "2"));
  ASSERT_TRUE(on_first.WaitForKey(Key("b"), from_other.revision));
  ASSERT_TRUE(on_other.WaitForKey(Key("b"), from_other.revision));

  EXPECT_THAT(EventKeys(on_other.Events()), ElementsAre(Key("a"), Key("b")));
  EXPECT_THAT(EventKeys(on_first.Events()), ElementsAre(Key("a"), Key("b")));
  first_handle.reset();
  other_handle.reset();
}

}  // namespace
}  // namespace discovery::testing
