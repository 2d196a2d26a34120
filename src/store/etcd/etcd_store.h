// The etcd v3 backend: talks to an etcd cluster over its gRPC API (KV Range/Txn, Watch).
// No generated or gRPC headers leak from here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/store.h"

namespace discovery::store {

struct EtcdOptions {
  // "host:port" or "http(s)://host:port"; several endpoints are tried in turn.
  std::vector<std::string> endpoints = {"localhost:2379"};
  std::string username;
  std::string password;
  // TLS: PEM contents (the *_file variants are read at connect time). A CA is required to
  // verify the server whenever TLS is used; a client certificate never disables verification.
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  absl::Duration dial_timeout = absl::Seconds(5);
  absl::Duration request_timeout = absl::Seconds(5);
};

// Connects to etcd, failing with Unavailable when no endpoint answers within dial_timeout,
// InvalidArgument for inconsistent options (e.g. a cert without key, PEM content and file for
// the same item), Unauthenticated for wrong credentials.
absl::StatusOr<std::unique_ptr<Store>> ConnectEtcdStore(const EtcdOptions& options);

}  // namespace discovery::store
