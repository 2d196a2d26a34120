#include "store/store.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

#include "common/status_macros.h"

namespace discovery::store {

std::string PrefixEnd(std::string_view prefix) {
  std::string end{prefix};
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;
}

absl::Status CheckBatchSize(size_t batch_size) {
  if (batch_size == 0) {
    return absl::InvalidArgumentError("range in batches: the batch size must be at least 1");
  }
  return absl::OkStatus();
}

absl::Status CheckDeleteRanges(const Txn& txn) {
  for (const Op& op : txn.ops) {
    if (op.type == Op::Type::kDeleteRange && (op.key.empty() || op.range_end <= op.key)) {
      return absl::InvalidArgumentError(absl::StrCat("txn op: the delete range [\"", op.key,
                                                     "\", \"", op.range_end, "\") is empty"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Store::RangeInBatches(std::string_view prefix, size_t batch_size,
                                              const ConsumeBatch& consume) {
  DISCOVERY_RETURN_IF_ERROR(CheckBatchSize(batch_size));
  DISCOVERY_ASSIGN_OR_RETURN(RangeResult range, Range(prefix));
  for (size_t begin = 0; begin < range.kvs.size(); begin += batch_size) {
    const size_t end = std::min(range.kvs.size(), begin + batch_size);
    consume({std::make_move_iterator(range.kvs.begin() + static_cast<std::ptrdiff_t>(begin)),
             std::make_move_iterator(range.kvs.begin() + static_cast<std::ptrdiff_t>(end))});
  }
  return range.revision;
}

absl::StatusOr<RangeResult> RangeInOneBatch(Store& store, std::string_view prefix) {
  RangeResult result;
  DISCOVERY_ASSIGN_OR_RETURN(
      result.revision,
      store.RangeInBatches(prefix, std::numeric_limits<size_t>::max(),
                           [&result](std::vector<KeyValue> kvs) { result.kvs = std::move(kvs); }));
  return result;
}

absl::StatusOr<RenewResult> Store::Renew(const Renewal& renewal) {
  Txn txn;
  for (const RenewKey& key : renewal.keys) {
    txn.compares.push_back({.key = key.key, .mod_revision = key.mod_revision});
    txn.ops.push_back(Op::PutExpiring(key.key, key.value, renewal.expires));
  }
  if (txn.ops.empty()) {
    return RenewResult{};
  }
  DISCOVERY_ASSIGN_OR_RETURN(const TxnResult result, Commit(txn));
  return RenewResult{.succeeded = result.succeeded,
                     .revision = result.succeeded ? result.revision : 0};
}

absl::StatusOr<std::vector<std::optional<absl::Time>>> Store::Deadlines(
    const std::vector<LeasedKey>& keys) {
  // Nothing renews in place here, so no key's deadline moved: the callers keep what they have.
  return absl::UnimplementedError(absl::StrCat(
      "this store keeps no deadlines apart from its records (", keys.size(), " keys asked)"));
}

absl::StatusOr<TxnResult> Put(Store& store, std::string key, std::string value) {
  return store.Commit({.ops = {Op::Put(std::move(key), std::move(value))}});
}

absl::StatusOr<TxnResult> Delete(Store& store, std::string key) {
  return store.Commit({.ops = {Op::Delete(std::move(key))}});
}

}  // namespace discovery::store
