#include "store/store.h"

#include <string>
#include <string_view>

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

absl::StatusOr<TxnResult> Put(Store& store, std::string key, std::string value) {
  return store.Commit({.ops = {Op::Put(std::move(key), std::move(value))}});
}

absl::StatusOr<TxnResult> Delete(Store& store, std::string key) {
  return store.Commit({.ops = {Op::Delete(std::move(key))}});
}

}  // namespace discovery::store
