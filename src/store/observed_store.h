// A Store that reports its failures: every operation goes to the store it wraps, and every one
// that fails is reported with the operation's name, which is what the daemons count in
// discovery_store_errors_total (and what the DiscoveryStoreErrors alert watches).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "store/store.h"

namespace discovery::store {

class ObservedStore final : public Store {
 public:
  // Called with "get", "range", "commit", "watch", "revision", "renew" or "deadlines" and the
  // error, on the thread of the failed call (the committer's for CommitAsync). Answers are not
  // failures: a Get of a missing key (NotFound), a transaction whose compares fail.
  using OnError = std::function<void(std::string_view op, const absl::Status& error)>;

  ObservedStore(std::unique_ptr<Store> inner, OnError on_error);

  absl::StatusOr<KeyValue> Get(std::string_view key) override;
  absl::StatusOr<RangeResult> Range(std::string_view prefix) override;
  absl::StatusOr<int64_t> RangeInBatches(std::string_view prefix, size_t batch_size,
                                         const ConsumeBatch& consume) override;
  absl::StatusOr<TxnResult> Commit(const Txn& txn) override;
  void CommitAsync(Txn txn, CommitCallback done) override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                     int64_t start_revision,
                                                     WatchCallback callback) override;
  absl::StatusOr<int64_t> CurrentRevision() override;
  absl::StatusOr<RenewResult> Renew(const Renewal& renewal) override;
  bool RenewsInPlace(const KeyValue& kv) const override;
  absl::StatusOr<std::vector<std::optional<absl::Time>>> Deadlines(
      const std::vector<LeasedKey>& keys) override;

  Store& inner() { return *inner_; }

 private:
  // Passes `result` through, reporting it when it failed.
  template <typename T>
  absl::StatusOr<T> Observed(std::string_view op, absl::StatusOr<T> result) const {
    if (!result.ok()) {
      on_error_(op, result.status());
    }
    return result;
  }

  std::unique_ptr<Store> inner_;
  OnError on_error_;
};

}  // namespace discovery::store
