// The CLI's connection to discoveryd: one gRPC channel per command, TLS unless --insecure, every
// call with a deadline and the bearer token. Wraps the four APIs of postfinance.discovery.v1 in
// calls on domain values, with gRPC statuses turned into absl::Status of the same code (transport
// failures explained by DescribeCallError).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "client_format/output.h"
#include "model/model.h"

namespace discovery::cli {

struct ConnectionOptions {
  std::string address = "localhost:3001";      // gRPC target
  absl::Duration timeout = absl::Seconds(15);  // deadline of each call
  // The command's overall deadline (--deadline): no call runs past it.
  absl::Time deadline = absl::InfiniteFuture();
  bool insecure = false;     // plaintext instead of TLS
  std::string ca_cert_file;  // PEM file trusted in addition to the system's CAs
  std::string token;         // sent as "authorization: bearer <token>"
};

struct ServiceRegistration {
  std::string name;
  std::string namespace_name = "default";
  std::string endpoint;
  Labels labels;
  std::string selector;
  std::string description;
  // Zero: no TTL (what every server before TTLs knows, docs/decisions.md D49).
  absl::Duration ttl = absl::ZeroDuration();
};

// What ServiceAPI/KeepAlive answers.
struct KeepAliveAnswer {
  std::vector<Service> renewed;
  std::vector<std::string> not_found;  // ids or endpoints as asked for
};

// What ListServiceStream lists: the filters the server applies and the order it sends rows in.
struct ServiceQuery {
  std::string namespace_name;  // empty: every namespace
  std::string filter_name;     // RE2, unanchored; empty matches everything
  std::string filter_endpoint;
  std::string filter_server;
  std::string filter_selector;       // label selector
  std::string sort_by = "endpoint";  // or "date", newest first
  bool served_only = false;          // leave out stored records that cannot be served
};

struct RevokedTokenDetails {
  std::string id;
  absl::Time revoked_at;
  std::string revoked_by;
};

struct TokenDetails {
  std::string id;
  std::vector<std::string> namespaces;
  std::optional<absl::Time> expires;  // nullopt: never expires
};

// One command's client. Not thread-safe.
class ApiClient {
 public:
  class Channels;

  // Creates the channel; fails only when the CA file cannot be read. Connecting happens on the
  // first call, so an unreachable server shows up as Unavailable there.
  static absl::StatusOr<ApiClient> Connect(const ConnectionOptions& options);

  absl::StatusOr<std::vector<Server>> ListServers() const;
  absl::StatusOr<Server> RegisterServer(const std::string& name, const Labels& labels) const;
  absl::Status UnregisterServer(const std::string& name) const;

  absl::StatusOr<std::vector<Namespace>> ListNamespaces() const;
  absl::StatusOr<Namespace> RegisterNamespace(const std::string& name,
                                              ExportConfig export_config) const;
  absl::Status UnregisterNamespace(const std::string& name) const;

  // `namespace_name` empty lists every namespace. The stored records that cannot be served go to
  // `invalid` when it is given (a server of the Go original sends none).
  absl::StatusOr<std::vector<Service>> ListServices(
      const std::string& namespace_name, std::vector<InvalidService>* invalid = nullptr) const;
  // The rows of `query` one by one, as the server sends them, to `row`; `total` (may be empty)
  // first gets the number of rows to come. The timeout bounds each wait for the next message,
  // not the whole list. Unimplemented from a server without ListServiceStream (the Go original
  // and older discoveryd): ListServices is the way there.
  absl::Status StreamServices(const ServiceQuery& query,
                              const std::function<void(size_t total)>& total,
                              const std::function<void(client_format::ListedService)>& row) const;
  absl::StatusOr<Service> RegisterService(const ServiceRegistration& registration) const;
  // Renews services with a TTL by id or endpoint (Unimplemented from servers without TTLs).
  absl::StatusOr<KeepAliveAnswer> KeepAlive(const std::string& namespace_name,
                                            const std::vector<std::string>& ids) const;
  // RegisterService and UnregisterService without waiting: `done` gets the outcome on a gRPC
  // thread. Many calls may be in flight on the one channel; the caller bounds how many. The
  // channel is kept on failures (other calls are in flight on it).
  void RegisterServiceAsync(const ServiceRegistration& registration,
                            std::function<void(const absl::Status&)> done) const;
  void UnregisterServiceAsync(const std::string& namespace_name, const std::string& id_or_endpoint,
                              std::function<void(const absl::Status&)> done) const;
  // `id_or_endpoint` is a service ID or its endpoint URL.
  absl::Status UnregisterService(const std::string& namespace_name,
                                 const std::string& id_or_endpoint) const;

  // `expires` is a Go duration; "0s" never expires.
  absl::StatusOr<std::string> CreateToken(const std::string& id,
                                          const std::vector<std::string>& namespaces,
                                          const std::string& expires) const;
  absl::StatusOr<TokenDetails> TokenInfo(const std::string& token) const;
  // TokenAPI/Revoke and TokenAPI/ListRevoked (servers older than them answer UNIMPLEMENTED).
  absl::StatusOr<RevokedTokenDetails> RevokeToken(const std::string& id) const;
  absl::StatusOr<std::vector<RevokedTokenDetails>> ListRevokedTokens() const;

 private:
  ApiClient(std::shared_ptr<Channels> channels, ConnectionOptions options);

  std::shared_ptr<Channels> channels_;
  ConnectionOptions options_;
};

}  // namespace discovery::cli
