// The etcd v3 backend: talks to an etcd cluster over its gRPC API (KV Range/Txn, Watch).
// No generated or gRPC headers leak from here.
#pragma once

#include <cstdint>
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
  // As the original's etcd client: at connect and then every interval the cluster's member list
  // (Cluster.MemberList) becomes the endpoints (with the configured ones kept), so a store given
  // one member keeps working through the others when that member goes away. Zero turns it off.
  absl::Duration auto_sync_interval = absl::ZeroDuration();
};

// Connects to etcd, failing with Unavailable when no endpoint answers within dial_timeout,
// InvalidArgument for inconsistent options (e.g. a cert without key, PEM content and file for
// the same item), Unauthenticated for wrong credentials.
//
// The returned store is thread-safe. Each call has the deadline request_timeout; within it a
// read fails over between endpoints while they are Unavailable, a write only when it cannot
// have reached etcd (otherwise Unavailable is returned and the caller decides). gRPC errors keep
// their code and carry an "etcd: " message prefix. With a username, the auth token is renewed
// when etcd rejects it. Watches run on their own thread, re-open their stream with backoff
// (100 ms .. 5 s) from the last delivered revision + 1, and may outlive the store object.
// With auto_sync_interval the endpoints follow the member list (a failed sync keeps the last
// list); the store's own thread does it and stops with the store.
// Concurrent Commit() calls that cannot interfere go to etcd as one transaction (group commit):
// each answers as it would alone, and they report the same revision.
absl::StatusOr<std::unique_ptr<Store>> ConnectEtcdStore(const EtcdOptions& options);

// Group-commit counters of an etcd store: concurrent Commit() calls that cannot interfere share
// one etcd transaction.
struct EtcdStoreStats {
  int64_t commits = 0;           // Commit() calls answered or being answered
  int64_t transactions = 0;      // etcd Txn requests sent for them (retries of one not counted)
  int64_t leases_granted = 0;    // LeaseGrant requests that created a lease (expiring keys)
  int64_t lease_keepalives = 0;  // renewals answered with one LeaseKeepAlive (no revision)
  int64_t set_moves = 0;         // transactions moving a renewal set onto its lease
};
// InvalidArgument when `store` is not an etcd store.
absl::StatusOr<EtcdStoreStats> GetEtcdStoreStats(Store& store);

}  // namespace discovery::store
