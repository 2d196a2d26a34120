// The store contract suite: one value-parameterised gtest suite that every store::Store backend
// runs unchanged, so the embedded (SQLite) and etcd backends provably share etcd v3 semantics
// (revisions, prefix ranges, compare-on-revision transactions, ordered watches).
//
// A backend's test file instantiates it:
//
//   INSTANTIATE_TEST_SUITE_P(Embedded, StoreContractTest,
//                            ::testing::Values(StoreFactory{.name = "Embedded", .open = ...}),
//                            [](const auto& param_info) { return param_info.param.name; });
//
// and compiles tests/testing/store_contract*.cc into its executable (DISCOVERY_STORE_CONTRACT_SRC).
//
// Every test works under its own unique key prefix and never relies on absolute revisions, so
// the suite may run against a shared etcd that holds other keys and sees other writers.
// Expectations that only hold when nobody else writes (e.g. "a no-op transaction does not
// advance the revision") are retried a few times so a concurrent writer cannot fail them.
//
// Beyond the comments of store/store.h the suite pins these etcd v3 behaviours:
//  - Watch(prefix, 0, ...) is in place when it returns: a commit made afterwards is delivered.
//  - Get/Put/Delete with an empty key, and a transaction writing one key twice (or putting a key
//    its own delete covers), fail with InvalidArgument (etcd's ErrGRPCEmptyKey/DuplicateKey).
//  - A transaction that changes nothing (failed compare, deleting missing keys, no ops) does not
//    advance the revision and produces no watch event.
//  - A transaction's events come in op order, in one response; responses without events may be
//    delivered (they are ignored where it matters).
//  - WatchHandles are destroyed before the store that created them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

#include "store/store.h"

namespace discovery::testing {

// How long the suite waits for a condition (a watch event, a cross-process commit) before it
// fails. Generous because sanitizer builds and a loaded CI etcd are slow; passing tests never
// wait this long.
inline constexpr absl::Duration kStoreWaitTimeout = absl::Seconds(10);

struct StoreFactory {
  std::string name;  // test-name suffix, e.g. "Embedded"
  // Opens a store. All stores opened by one factory during one test share the same data, so
  // a test can open a second store on the same data (another "process") or re-open.
  std::function<absl::StatusOr<std::unique_ptr<store::Store>>()> open;
  // Optional: compacts the history of `store` so that revisions < `revision` are no longer
  // available to watches (etcd's Compact(revision)). Reports failures with gtest assertions.
  // When empty, the compaction tests GTEST_SKIP.
  std::function<void(store::Store& store, int64_t revision)> compact;
};

// Prints the factory's name, so gtest and ctest name test instances "... # GetParam() = File".
void PrintTo(const StoreFactory& factory, std::ostream* os);

// Collects the responses of one watch and lets a test wait for them with a deadline. Must
// outlive the WatchHandle fed by Callback() (declare it before the handle). Thread-safe.
class WatchRecorder {
 public:
  // A callback appending to this recorder. `on_response`, when set, runs first inside the
  // callback (on the watch thread), e.g. to call back into the store.
  store::WatchCallback Callback(std::function<void(const store::WatchResponse&)> on_response = {});

  // Waits until at least `n` events (summed over all responses) arrived; false on timeout.
  bool WaitForEvents(size_t n, absl::Duration timeout = kStoreWaitTimeout) const;
  // Waits until at least `n` responses arrived; false on timeout.
  bool WaitForResponses(size_t n, absl::Duration timeout = kStoreWaitTimeout) const;
  // Waits until an event for `key` with mod_revision >= `min_revision` arrived.
  bool WaitForKey(std::string_view key, int64_t min_revision = 0,
                  absl::Duration timeout = kStoreWaitTimeout) const;

  // Waits until a response with compact_revision != 0 arrived.
  bool WaitForCompaction(absl::Duration timeout = kStoreWaitTimeout) const;

  std::vector<store::WatchResponse> Responses() const;
  // All events of all responses, in delivery order.
  std::vector<store::WatchEvent> Events() const;
  size_t EventCount() const;
  size_t ResponseCount() const;

 private:
  bool HasKeyLocked(std::string_view key, int64_t min_revision) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<store::WatchResponse> responses_ ABSL_GUARDED_BY(mu_);
  size_t event_count_ ABSL_GUARDED_BY(mu_) = 0;
};

class StoreContractTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  // Opens store() and picks the test's prefix.
  void SetUp() override;
  // Removes the test's keys (best effort) and closes store().
  void TearDown() override;

  // A key prefix unique to the running test ("/contract/<TestName>/<random>/"), so tests never
  // see each other's keys even on a shared etcd.
  const std::string& prefix() const { return prefix_; }
  // prefix() + suffix.
  std::string Key(std::string_view suffix) const;

  // The store opened in SetUp.
  store::Store& store() { return *store_; }
  // Opens another store on the same data (another "process").
  static absl::StatusOr<std::unique_ptr<store::Store>> OpenStore();
  // Closes store() and opens it again on the same data (the restart pattern).
  absl::Status ReopenStore();
  const StoreFactory& factory() const { return GetParam(); }

  // Puts one key; returns the revision of the commit.
  absl::StatusOr<int64_t> PutKey(std::string key, std::string value);
  // Returns the keys of Range(prefix) (without the values) or the error.
  absl::StatusOr<std::vector<std::string>> RangeKeys(std::string_view prefix);

 private:
  std::string prefix_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace discovery::testing
