#include "store/store.h"

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
