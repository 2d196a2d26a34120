// Repositories of namespaces, servers and services over a store::Store, with the etcd key layout
// of the Go original (docs/decisions.md D26):
//   <prefix>/namespace/v1/<name>, <prefix>/server/v1/<name>, <prefix>/service/v1/<ns>/<id>.
// Every key component is validated before a key is built, so no input can address another
// record (the original's path-join allowed "../" tricks, docs/decisions.md D10).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "model/model.h"
#include "placement/placement.h"
#include "repo/codec.h"
#include "store/store.h"

namespace discovery::repo {

inline constexpr std::string_view kDefaultPrefix = "/discovery";

// The store prefix must match ^/[a-z-]+$ (as the original's --etcd-prefix).
absl::Status ValidatePrefix(std::string_view prefix);

// A machine token id usable as a key component: 1 to 253 bytes, no '/', no control characters,
// not "." or "..". InvalidArgument otherwise.
absl::Status ValidateTokenId(std::string_view id);

// Key layout under one prefix.
class Keys {
 public:
  // `prefix` must satisfy ValidatePrefix.
  explicit Keys(std::string prefix = std::string{kDefaultPrefix});

  const std::string& prefix() const { return prefix_; }
  // Everything the repositories own: "<prefix>/".
  std::string All() const { return prefix_ + "/"; }
  std::string Namespaces() const { return prefix_ + "/namespace/v1/"; }
  std::string Servers() const { return prefix_ + "/server/v1/"; }
  std::string Services() const { return prefix_ + "/service/v1/"; }
  // Trailing "/" so that namespace "default" never covers "default-blackbox" (docs/decisions.md
  // D2).
  std::string ServicesIn(std::string_view ns) const;
  std::string Namespace(std::string_view name) const;
  std::string Server(std::string_view name) const;
  std::string Service(std::string_view ns, std::string_view id) const;
  // The registry-wide placement settings (not part of the original's layout; it ignores them).
  std::string PlacementSettings() const { return prefix_ + "/settings/v1/placement"; }
  // Revoked machine tokens by id (our own records; the original had no revocation).
  std::string RevokedTokens() const { return prefix_ + "/revoked-token/v1/"; }
  // `id` must satisfy ValidateTokenId.
  std::string RevokedToken(std::string_view id) const;

  // What a key under All() names.
  struct Parsed {
    enum class Kind { kNamespace, kServer, kService, kPlacementSettings, kRevokedToken, kOther };
    Kind kind = Kind::kOther;
    std::string name;  // namespace name, server name, the service's namespace, or a token id
    std::string id;    // service id
  };
  Parsed Parse(std::string_view key) const;

 private:
  std::string prefix_;
};

// A decoded record with the store revision of its last change (for compare-and-set).
template <typename T>
struct Versioned {
  T value;
  int64_t mod_revision = 0;
};

// Typed reads and writes. Reads go to the store; hot paths read repo::View instead.
// Thread-safe when the store is. `store` must outlive the repository.
class Repository {
 public:
  Repository(store::Store& store, Keys keys);

  const Keys& keys() const { return keys_; }
  store::Store& store() const { return store_; }

  // NotFound when absent; InvalidArgument for an invalid name; DataLoss for an undecodable
  // record.
  absl::StatusOr<Versioned<discovery::Namespace>> GetNamespace(std::string_view name) const;
  absl::StatusOr<Versioned<discovery::Server>> GetServer(std::string_view name) const;
  absl::StatusOr<Versioned<discovery::Service>> GetService(std::string_view ns,
                                                           std::string_view id) const;

  // Ascending by key. A record that does not decode fails the whole list with DataLoss naming
  // its key.
  absl::StatusOr<std::vector<discovery::Namespace>> ListNamespaces() const;
  absl::StatusOr<std::vector<discovery::Server>> ListServers() const;
  // All services, or those of `ns` when given.
  absl::StatusOr<std::vector<discovery::Service>> ListServices(
      std::optional<std::string_view> ns = std::nullopt) const;

  // Unconditional writes (validated first; InvalidArgument on invalid records).
  // Return the store revision of the write.
  absl::StatusOr<int64_t> PutNamespace(const discovery::Namespace& ns);
  absl::StatusOr<int64_t> PutServer(const discovery::Server& server);
  absl::StatusOr<int64_t> PutService(const discovery::Service& service);
  // InvalidArgument for replicas < 1.
  absl::StatusOr<int64_t> PutPlacementSettings(const placement::Settings& settings);
  // Stores the revocation of a machine token (overwriting an earlier one of the same id);
  // InvalidArgument for an id ValidateTokenId refuses.
  absl::StatusOr<int64_t> PutRevocation(const TokenRevocation& revocation);

  // Deletes the namespace and exactly its services. NotFound when absent. `service_bounds`:
  // ids of its services in ascending order, each ending a transaction that deletes the
  // services before it (guarded on the namespace as read); the namespace goes with the rest in
  // the last one. Without bounds, one transaction: fine for a few thousand services, while one
  // deleting a million keys outlasts etcd's request timeout. A failure part way leaves the
  // namespace with the services not yet deleted, and deleting it again goes on from there.
  absl::StatusOr<int64_t> DeleteNamespace(std::string_view name,
                                          const std::vector<std::string>& service_bounds = {});
  // NotFound when absent.
  absl::StatusOr<int64_t> DeleteServer(std::string_view name);
  absl::StatusOr<int64_t> DeleteService(std::string_view ns, std::string_view id);

  // Transaction building blocks for callers that need compare-and-set across records.
  // They validate like the Put/Delete methods.
  absl::StatusOr<store::Op> PutNamespaceOp(const discovery::Namespace& ns) const;
  absl::StatusOr<store::Op> PutServerOp(const discovery::Server& server) const;
  absl::StatusOr<store::Op> PutServiceOp(const discovery::Service& service) const;

 private:
  absl::StatusOr<store::KeyValue> GetKey(const std::string& key) const;
  absl::StatusOr<int64_t> CommitOne(store::Op op);
  absl::StatusOr<int64_t> DeleteExisting(const std::string& key, std::string_view what);

  store::Store& store_;
  Keys keys_;
};

// Service IDs are lower-case hyphenated UUIDs; anything else is InvalidArgument.
absl::Status ValidateServiceId(std::string_view id);

}  // namespace discovery::repo
