// What the files of the store contract suite share (store_contract.h is what a backend's test
// sees): the store's types by their short names and the helpers of the tests.
#pragma once

#include <string>
#include <vector>

#include "gmock/gmock.h"

#include "store/store.h"
#include "testing/status_matchers.h"
#include "testing/store_contract.h"

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
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Expectations about exact revision arithmetic only hold while nobody else writes to the store.
// On a shared etcd another test may commit in between, so such a check is attempted a few times
// and passes if it held once; a backend that is wrong fails every attempt.
inline constexpr int kQuietAttempts = 20;

inline std::vector<std::string> EventKeys(const std::vector<WatchEvent>& events) {
  std::vector<std::string> keys;
  keys.reserve(events.size());
  for (const WatchEvent& event : events) {
    keys.push_back(event.kv.key);
  }
  return keys;
}

}  // namespace discovery::testing
