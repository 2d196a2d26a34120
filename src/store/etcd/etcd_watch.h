// The etcd backend's watches: one Watch bidi stream each, on its own thread, re-opened after
// failures from the last delivered revision + 1. Internal to src/store/etcd.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "store/etcd/etcd_client.h"
#include "store/store.h"

namespace discovery::store::etcd_internal {

// Starts watching keys with `prefix` from `start_revision` (> 0) right away. The handle keeps
// `client` alive, so it may outlive the store that started it.
std::unique_ptr<WatchHandle> StartEtcdWatch(std::shared_ptr<EtcdClient> client,
                                            std::string_view prefix, int64_t start_revision,
                                            WatchCallback callback);

}  // namespace discovery::store::etcd_internal
