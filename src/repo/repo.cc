#include "repo/repo.h"

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fmt/format.h"

#include "common/format.h"
#include "common/status_macros.h"
#include "repo/codec.h"

namespace discovery::repo {
namespace {

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// Decodes every key-value of a range with `decode`, naming the key of the first failure.
template <typename T, typename Decode>
absl::StatusOr<std::vector<T>> DecodeAll(const std::vector<store::KeyValue>& kvs, Decode decode) {
  std::vector<T> records;
  records.reserve(kvs.size());
  for (const store::KeyValue& kv : kvs) {
    absl::StatusOr<T> record = decode(kv.value);
    if (!record.ok()) {
      return absl::DataLossError(fmt::format("key {}: {}", kv.key, record.status().message()));
    }
    records.push_back(*std::move(record));
  }
  return records;
}

}  // namespace

absl::Status ValidatePrefix(std::string_view prefix) {
  bool valid = prefix.size() >= 2 && prefix[0] == '/';
  for (char c : prefix.substr(1)) {
    valid = valid && ((c >= 'a' && c <= 'z') || c == '-');
  }
  if (!valid) {
    return absl::InvalidArgumentError(fmt::format(
        "store prefix '{}' must start with '/' followed by at least one of 'a-z' and '-'", prefix));
  }
  return absl::OkStatus();
}

absl::Status ValidateServiceId(std::string_view id) {
  // 8-4-4-4-12 lower-case hex digits.
  static constexpr std::array<int, 5> kGroups = {8, 4, 4, 4, 12};
  size_t pos = 0;
  bool valid = true;
  for (int i = 0; i < 5 && valid; ++i) {
    for (int j = 0; j < kGroups[i]; ++j, ++pos) {
      valid = valid && pos < id.size() && IsLowerHex(id[pos]);
    }
    if (i < 4) {
      valid = valid && pos < id.size() && id[pos] == '-';
      ++pos;
    }
  }
  if (!valid || pos != id.size()) {
    return absl::InvalidArgumentError(fmt::format("'{}' is not a service id (a UUID)", id));
  }
  return absl::OkStatus();
}

Keys::Keys(std::string prefix) : prefix_(std::move(prefix)) {}

std::string Keys::ServicesIn(std::string_view ns) const {
  return fmt::format("{}{}/", Services(), ns);
}
std::string Keys::Namespace(std::string_view name) const {
  return fmt::format("{}{}", Namespaces(), name);
}
std::string Keys::Server(std::string_view name) const {
  return fmt::format("{}{}", Servers(), name);
}
std::string Keys::Service(std::string_view ns, std::string_view id) const {
  return fmt::format("{}{}", ServicesIn(ns), id);
}

absl::Status ValidateTokenId(std::string_view id) {
  constexpr size_t kMaxTokenIdBytes = 253;
  if (id.empty() || id.size() > kMaxTokenIdBytes || id == "." || id == ".." ||
      id.find('/') != std::string_view::npos || std::any_of(id.begin(), id.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    return absl::InvalidArgumentError(
        "a token id must be 1 to 253 bytes without '/' or control characters");
  }
  return absl::OkStatus();
}

std::string Keys::RevokedToken(std::string_view id) const {
  return fmt::format("{}{}", RevokedTokens(), id);
}

Keys::Parsed Keys::Parse(std::string_view key) const {
  // Without building the prefixed strings or a vector of parts: a load parses every key.
  Parsed parsed;
  if (!key.starts_with(prefix_) || key.size() <= prefix_.size() || key[prefix_.size()] != '/') {
    return parsed;
  }
  const std::string_view rest = key.substr(prefix_.size() + 1);
  if (rest == "settings/v1/placement") {
    parsed.kind = Parsed::Kind::kPlacementSettings;
    return parsed;
  }
  // Up to five parts: a fifth means neither layout matches.
  std::array<std::string_view, 5> parts;
  size_t count = 0;
  for (size_t begin = 0; count < parts.size(); ++count) {
    const size_t end = rest.find('/', begin);
    parts[count] = rest.substr(begin, end == std::string_view::npos ? end : end - begin);
    if (end == std::string_view::npos) {
      ++count;
      break;
    }
    begin = end + 1;
  }
  if (count == 3 && parts[1] == "v1" && !parts[2].empty()) {
    if (parts[0] == "namespace") {
      parsed.kind = Parsed::Kind::kNamespace;
    } else if (parts[0] == "server") {
      parsed.kind = Parsed::Kind::kServer;
    } else if (parts[0] == "revoked-token") {
      parsed.kind = Parsed::Kind::kRevokedToken;
    }
    parsed.name = std::string{parts[2]};
  } else if (count == 4 && parts[0] == "service" && parts[1] == "v1" && !parts[2].empty() &&
             !parts[3].empty()) {
    parsed.kind = Parsed::Kind::kService;
    parsed.name = std::string{parts[2]};
    parsed.id = std::string{parts[3]};
  }
  return parsed;
}

Repository::Repository(store::Store& store, Keys keys) : store_(store), keys_(std::move(keys)) {}

absl::StatusOr<store::KeyValue> Repository::GetKey(const std::string& key) const {
  return store_.Get(key);
}

absl::StatusOr<Versioned<Namespace>> Repository::GetNamespace(std::string_view name) const {
  DISCOVERY_RETURN_IF_ERROR(ValidateNamespaceName(name));
  absl::StatusOr<store::KeyValue> kv = GetKey(keys_.Namespace(name));
  if (absl::IsNotFound(kv.status())) {
    return absl::NotFoundError(fmt::format("namespace {} not found", name));
  }
  DISCOVERY_RETURN_IF_ERROR(kv.status());
  DISCOVERY_ASSIGN_OR_RETURN(Namespace ns, DecodeNamespace(kv->value));
  return Versioned<Namespace>{std::move(ns), kv->mod_revision};
}

absl::StatusOr<Versioned<Server>> Repository::GetServer(std::string_view name) const {
  DISCOVERY_RETURN_IF_ERROR(ValidateExistingServerName(name));
  absl::StatusOr<store::KeyValue> kv = GetKey(keys_.Server(name));
  if (absl::IsNotFound(kv.status())) {
    return absl::NotFoundError(fmt::format("server {} not found", name));
  }
  DISCOVERY_RETURN_IF_ERROR(kv.status());
  DISCOVERY_ASSIGN_OR_RETURN(Server server, DecodeServer(kv->value));
  return Versioned<Server>{std::move(server), kv->mod_revision};
}

absl::StatusOr<Versioned<Service>> Repository::GetService(std::string_view ns,
                                                          std::string_view id) const {
  DISCOVERY_RETURN_IF_ERROR(ValidateNamespaceName(ns));
  DISCOVERY_RETURN_IF_ERROR(ValidateServiceId(id));
  absl::StatusOr<store::KeyValue> kv = GetKey(keys_.Service(ns, id));
  if (absl::IsNotFound(kv.status())) {
    return absl::NotFoundError(fmt::format("service {} not found in namespace {}", id, ns));
  }
  DISCOVERY_RETURN_IF_ERROR(kv.status());
  DISCOVERY_ASSIGN_OR_RETURN(Service service, DecodeService(kv->value));
  return Versioned<Service>{std::move(service), kv->mod_revision};
}

absl::StatusOr<std::vector<Namespace>> Repository::ListNamespaces() const {
  DISCOVERY_ASSIGN_OR_RETURN(store::RangeResult range, store_.Range(keys_.Namespaces()));
  return DecodeAll<Namespace>(range.kvs, DecodeNamespace);
}

absl::StatusOr<std::vector<Server>> Repository::ListServers() const {
  DISCOVERY_ASSIGN_OR_RETURN(store::RangeResult range, store_.Range(keys_.Servers()));
  return DecodeAll<Server>(range.kvs, DecodeServer);
}

absl::StatusOr<std::vector<Service>> Repository::ListServices(
    std::optional<std::string_view> ns) const {
  std::string prefix = keys_.Services();
  if (ns.has_value()) {
    DISCOVERY_RETURN_IF_ERROR(ValidateNamespaceName(*ns));
    prefix = keys_.ServicesIn(*ns);
  }
  DISCOVERY_ASSIGN_OR_RETURN(store::RangeResult range, store_.Range(prefix));
  return DecodeAll<Service>(range.kvs, DecodeService);
}

absl::StatusOr<store::Op> Repository::PutNamespaceOp(const Namespace& ns) const {
  DISCOVERY_RETURN_IF_ERROR(Validate(ns));
  return store::Op::Put(keys_.Namespace(ns.name), EncodeNamespace(ns));
}

absl::StatusOr<store::Op> Repository::PutServerOp(const Server& server) const {
  DISCOVERY_RETURN_IF_ERROR(Validate(server));
  return store::Op::Put(keys_.Server(server.name), EncodeServer(server));
}

absl::StatusOr<store::Op> Repository::PutServiceOp(const Service& service) const {
  DISCOVERY_RETURN_IF_ERROR(Validate(service));
  store::Op op =
      store::Op::Put(keys_.Service(service.namespace_name, service.id), EncodeService(service));
  if (service.HasTtl()) {
    // The store deletes it at the expiry unless it is put again: no replica has to be alive
    // for an expired service to go, and a live one never depends on which replica renewed it.
    op.expires = service.expires;
  }
  return op;
}

absl::StatusOr<int64_t> Repository::CommitOne(store::Op op) {
  DISCOVERY_ASSIGN_OR_RETURN(store::TxnResult result, store_.Commit({.ops = {std::move(op)}}));
  return result.revision;
}

absl::StatusOr<int64_t> Repository::PutNamespace(const Namespace& ns) {
  DISCOVERY_ASSIGN_OR_RETURN(store::Op op, PutNamespaceOp(ns));
  return CommitOne(std::move(op));
}

absl::StatusOr<int64_t> Repository::PutPlacementSettings(const placement::Settings& settings) {
  DISCOVERY_RETURN_IF_ERROR(placement::Validate(settings));
  return CommitOne(store::Op::Put(keys_.PlacementSettings(), EncodePlacementSettings(settings)));
}

absl::StatusOr<int64_t> Repository::PutRevocation(const TokenRevocation& revocation) {
  DISCOVERY_RETURN_IF_ERROR(ValidateTokenId(revocation.id));
  return CommitOne(store::Op::Put(keys_.RevokedToken(revocation.id), EncodeRevocation(revocation)));
}

absl::StatusOr<int64_t> Repository::PutServer(const Server& server) {
  DISCOVERY_ASSIGN_OR_RETURN(store::Op op, PutServerOp(server));
  return CommitOne(std::move(op));
}

absl::StatusOr<int64_t> Repository::PutService(const Service& service) {
  DISCOVERY_ASSIGN_OR_RETURN(store::Op op, PutServiceOp(service));
  return CommitOne(std::move(op));
}

absl::StatusOr<int64_t> Repository::DeleteExisting(const std::string& key, std::string_view what) {
  DISCOVERY_ASSIGN_OR_RETURN(store::TxnResult result,
                             store_.Commit({.ops = {store::Op::Delete(key)}}));
  if (result.deleted == 0) {
    return absl::NotFoundError(fmt::format("{} not found", what));
  }
  return result.revision;
}

absl::StatusOr<int64_t> Repository::DeleteNamespace(
    std::string_view name, const std::vector<std::string>& service_bounds) {
  DISCOVERY_RETURN_IF_ERROR(ValidateNamespaceName(name));
  const std::string key = keys_.Namespace(name);
  // The compare makes "namespace exists" and "delete its services" one atomic step, so a
  // missing namespace deletes nothing at all.
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<store::KeyValue> kv = store_.Get(key);
    if (absl::IsNotFound(kv.status())) {
      return absl::NotFoundError(fmt::format("namespace {} not found", name));
    }
    DISCOVERY_RETURN_IF_ERROR(kv.status());
    std::string from = keys_.ServicesIn(name);
    bool changed = false;
    for (const std::string& id : service_bounds) {
      std::string to = keys_.Service(name, id);
      if (to <= from) {
        continue;
      }
      DISCOVERY_ASSIGN_OR_RETURN(
          const store::TxnResult part,
          store_.Commit({.compares = {{.key = key, .mod_revision = kv->mod_revision}},
                         .ops = {store::Op::DeleteRange(from, to)}}));
      if (!part.succeeded) {
        changed = true;
        break;
      }
      from = std::move(to);
    }
    if (changed) {
      continue;
    }
    DISCOVERY_ASSIGN_OR_RETURN(
        store::TxnResult result,
        store_.Commit(
            {.compares = {{.key = key, .mod_revision = kv->mod_revision}},
             .ops = {store::Op::Delete(key), store::Op::DeletePrefix(keys_.ServicesIn(name))}}));
    if (result.succeeded) {
      return result.revision;
    }
  }
  return absl::AbortedError(
      fmt::format("namespace {} changed concurrently while deleting it; retry", name));
}

absl::StatusOr<int64_t> Repository::DeleteServer(std::string_view name) {
  DISCOVERY_RETURN_IF_ERROR(ValidateExistingServerName(name));
  return DeleteExisting(keys_.Server(name), fmt::format("server {}", name));
}

absl::StatusOr<int64_t> Repository::DeleteService(std::string_view ns, std::string_view id) {
  DISCOVERY_RETURN_IF_ERROR(ValidateNamespaceName(ns));
  DISCOVERY_RETURN_IF_ERROR(ValidateServiceId(id));
  return DeleteExisting(keys_.Service(ns, id), fmt::format("service {} in namespace {}", id, ns));
}

}  // namespace discovery::repo
