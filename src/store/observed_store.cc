#include "store/observed_store.h"

#include <utility>

namespace discovery::store {

ObservedStore::ObservedStore(std::unique_ptr<Store> inner, OnError on_error)
    : inner_(std::move(inner)), on_error_(std::move(on_error)) {}

absl::StatusOr<KeyValue> ObservedStore::Get(std::string_view key) {
  absl::StatusOr<KeyValue> kv = inner_->Get(key);
  if (!kv.ok() && !absl::IsNotFound(kv.status())) {
    on_error_("get", kv.status());
  }
  return kv;
}

absl::StatusOr<RangeResult> ObservedStore::Range(std::string_view prefix) {
  return Observed("range", inner_->Range(prefix));
}

absl::StatusOr<int64_t> ObservedStore::RangeInBatches(std::string_view prefix, size_t batch_size,
                                                      const ConsumeBatch& consume) {
  return Observed("range", inner_->RangeInBatches(prefix, batch_size, consume));
}

absl::StatusOr<TxnResult> ObservedStore::Commit(const Txn& txn) {
  return Observed("commit", inner_->Commit(txn));
}

void ObservedStore::CommitAsync(Txn txn, CommitCallback done) {
  inner_->CommitAsync(std::move(txn),
                      [this, done = std::move(done)](absl::StatusOr<TxnResult> result) mutable {
                        std::move(done)(Observed("commit", std::move(result)));
                      });
}

absl::StatusOr<std::unique_ptr<WatchHandle>> ObservedStore::Watch(std::string_view prefix,
                                                                  int64_t start_revision,
                                                                  WatchCallback callback) {
  return Observed("watch", inner_->Watch(prefix, start_revision, std::move(callback)));
}

absl::StatusOr<int64_t> ObservedStore::CurrentRevision() {
  return Observed("revision", inner_->CurrentRevision());
}

absl::StatusOr<RenewResult> ObservedStore::Renew(const Renewal& renewal) {
  return Observed("renew", inner_->Renew(renewal));
}

bool ObservedStore::RenewsInPlace(const KeyValue& kv) const { return inner_->RenewsInPlace(kv); }

absl::StatusOr<std::vector<std::optional<absl::Time>>> ObservedStore::Deadlines(
    const std::vector<LeasedKey>& keys) {
  return Observed("deadlines", inner_->Deadlines(keys));
}

}  // namespace discovery::store
