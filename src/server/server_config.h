// Everything `discoveryd server` is configured with, as plain values. The command line
// (src/cli) fills it from flags, DISCOVERY_* variables and config files; tests fill it directly.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "http/server.h"
#include "metrics/metrics.h"
#include "placement/placement.h"
#include "store/etcd/etcd_store.h"
#include "store/store.h"

namespace discovery::server {

struct StoreConfig {
  // "embedded" or "etcd"; "" picks etcd when etcd endpoints were configured, else embedded.
  std::string kind;
  // Directory of the embedded store (and of its generated token secret). "" = the default:
  // $XDG_DATA_HOME/discovery, else ~/.local/share/discovery, for every user including root
  // (the Debian package's units set /var/lib/discovery).
  std::string data_dir;
  store::EtcdOptions etcd;
  bool etcd_endpoints_set = false;
  std::string prefix = "/discovery";
};

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
};

// Users of an OpenID Connect provider (docs/decisions.md D33).
struct OidcConfig {
  std::string endpoint;   // --oidc-endpoint: the issuer URL
  std::string client_id;  // --oidc-client-id
  // --oidc-ui-client-id: the web UI's public client (authorization code + PKCE); its tokens
  // are accepted like the CLI's. "" offers no "Sign in" in the UI.
  std::string ui_client_id;
  std::string username_claim = "username";
  std::string roles_claim = "roles";
  std::string ca_cert_file;  // --ca-cert
};

// Limits of the HTTP listener against oversized, slow and too many clients; see
// http::ServerOptions, whose defaults these are.
struct HttpLimits {
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 16 << 10;
  absl::Duration read_timeout = absl::Seconds(10);
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration write_timeout = absl::Seconds(10);
  size_t max_connections = 4096;
  size_t max_connections_per_client = 256;
  size_t max_buffered_body_bytes = 64 << 20;
  int io_threads = http::DefaultIoThreads();
  int worker_threads = http::DefaultWorkerThreads();
};

// How the gRPC listener runs calls; see grpc_api::GrpcServerOptions, whose defaults these are.
struct GrpcLimits {
  int workers = 64;                  // threads running calls
  size_t max_queued_calls = 100000;  // calls waiting for a worker; beyond, UNAVAILABLE
};

struct ServerConfig {
  StoreConfig store;
  std::string grpc_listen = "localhost:3001";
  GrpcLimits grpc_limits;
  std::string http_listen = "localhost:3002";
  HttpLimits http_limits;
  // Set when the placement flags were given; see registry::RegistryOptions::placement.
  std::optional<placement::Settings> placement;
  std::string token_issuer = "discovery.postfinance.ch";
  // "" with the embedded store: a random secret kept in <data-dir>/token-secret.
  std::string token_secret;
  // --previous-token-secrets: machine tokens signed with these still verify (secret rotation).
  std::vector<std::string> previous_token_secrets;
  // Set when --oidc-endpoint is given; otherwise only machine tokens are accepted.
  std::optional<OidcConfig> oidc;
  // --oidc-roles: users holding one of them administer namespaces, servers and tokens.
  std::vector<std::string> admin_roles;
  // --trusted-proxies: CIDRs of load balancers whose X-Forwarded-For names the client in the
  // audit trail; from anybody else the header is ignored.
  std::vector<std::string> trusted_proxies;
  // TLS for both listeners when set.
  std::optional<TlsFiles> tls;
  absl::Duration shutdown_grace = absl::Seconds(10);
  // --min-ttl, --max-ttl: the bounds of a registration's TTL (registry::RegistryOptions).
  absl::Duration min_ttl = absl::Seconds(5);
  absl::Duration max_ttl = absl::Hours(24);
  // What kong_build_info and kong_flag report.
  metrics::BuildInfo build;
  std::vector<std::pair<std::string, std::string>> redacted_flags;
};

// The data directory of `config` (the default when unset).
std::string DataDir(const StoreConfig& config);

// Opens the configured store: the embedded database in DataDir()/discovery.db, or an etcd
// connection. InvalidArgument for an unknown kind or a bad prefix.
absl::StatusOr<std::unique_ptr<store::Store>> OpenStore(const StoreConfig& config);

// OpenStore for a daemon: every failed operation of the store, and of the embedded store's own
// threads (checkpoint, reaper), is counted in `metrics` (discovery_store_errors_total{op}),
// which must outlive the store.
absl::StatusOr<std::unique_ptr<store::Store>> OpenObservedStore(const StoreConfig& config,
                                                                metrics::Metrics& metrics);

// The machine-token secret: `config.token_secret` when set; with the embedded store, the
// secret in DataDir()/token-secret, created (random, mode 0600) when `create` and missing.
// FailedPrecondition when there is none, naming the flag to set.
absl::StatusOr<std::string> ResolveTokenSecret(const ServerConfig& config, bool create);

// Whether the embedded store is selected.
bool UsesEmbeddedStore(const StoreConfig& config);

}  // namespace discovery::server
