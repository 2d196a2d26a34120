#include "cli/discoveryd_flags.h"

#include <cstddef>
#include <limits>
#include <string>

#include "CLI/CLI.hpp"

#include "config/command_line.h"
#include "server/exporter_daemon.h"
#include "server/server_config.h"

namespace discovery::cli::discoveryd_internal {
namespace {

// What protects the HTTP listener from oversized, slow and too many clients.
void AddHttpLimitFlags(CLI::App& command, server::HttpLimits& limits) {
  // CLI::PositiveNumber would report "not in range 0.000000 to 1797693134862315...".
  const CLI::Range at_least_one(size_t{1}, std::numeric_limits<size_t>::max());
  command
      .add_option("--http-max-body-bytes", limits.max_body_bytes,
                  "Largest HTTP request body; a larger one is answered with 413")
      ->check(at_least_one)
      ->capture_default_str();
  command
      .add_option("--http-max-header-bytes", limits.max_header_bytes,
                  "Largest HTTP request line plus header fields; larger is answered with 431")
      ->check(at_least_one)
      ->capture_default_str();
  config::AddDurationOption(command, "--http-read-timeout", &limits.read_timeout,
                            "How long a client may take to send a whole HTTP request (header and "
                            "body); a slower one is disconnected");
  config::AddDurationOption(command, "--http-idle-timeout", &limits.idle_timeout,
                            "How long a keep-alive HTTP connection may wait for its next request");
  config::AddDurationOption(command, "--http-write-timeout", &limits.write_timeout,
                            "How long a client may take to receive one HTTP response; a slower "
                            "one is disconnected");
  command
      .add_option("--http-max-connections", limits.max_connections,
                  "Open HTTP connections at most; more are answered 503 with Retry-After and "
                  "closed")
      ->check(at_least_one)
      ->capture_default_str();
  command
      .add_option("--http-max-connections-per-client", limits.max_connections_per_client,
                  "Open HTTP connections from one client IP address at most; more are answered "
                  "429 with Retry-After and closed")
      ->check(at_least_one)
      ->capture_default_str();
  command
      .add_option("--http-max-buffered-body-bytes", limits.max_buffered_body_bytes,
                  "Request body bytes being received over all HTTP connections at most; a "
                  "request beyond is answered 503 with Retry-After")
      ->check(at_least_one)
      ->capture_default_str();
  command
      .add_option("--http-io-threads", limits.io_threads,
                  "Threads doing HTTP socket I/O; the default is half the machine's cores (1 to 8)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  command
      .add_option("--http-worker-threads", limits.worker_threads,
                  "Threads running HTTP requests; further requests wait in a queue. The default "
                  "is two per core of the machine (4 to 64)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
}

// How many calls the gRPC listener runs at once and how many more it lets wait.
void AddGrpcLimitFlags(CLI::App& command, server::GrpcLimits& limits) {
  command
      .add_option("--grpc-workers", limits.workers,
                  "Threads running gRPC calls; further calls wait in a queue")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  command
      .add_option("--grpc-max-queued-calls", limits.max_queued_calls,
                  "gRPC calls waiting for a worker at most; more are answered UNAVAILABLE, which "
                  "clients retry")
      ->check(CLI::Range(size_t{1}, std::numeric_limits<size_t>::max()))
      ->capture_default_str();
}

}  // namespace

// Flags shared by every subcommand: where the store is and how to log.
void AddGlobalFlags(CLI::App& app, Flags& flags) {
  server::StoreConfig& store = flags.config.store;
  app.add_option("--store", flags.store_kind,
                 "Store backend: embedded (single node, default) or etcd (default when "
                 "--etcd-endpoints is set)")
      ->check(CLI::IsMember({"embedded", "etcd"}));
  app.add_option("--data-dir", flags.data_dir,
                 "Directory of the embedded store and its token secret (default "
                 "$XDG_DATA_HOME/discovery, else ~/.local/share/discovery; the Debian "
                 "package uses /var/lib/discovery)");
  config::AddListOption(app, "--etcd-endpoints", &flags.etcd_endpoints, "etcd endpoints")
      ->default_str("localhost:2379");
  app.add_option("--etcd-user", store.etcd.username, "etcd user name");
  app.add_option("--etcd-password", store.etcd.password, "etcd password");
  app.add_option("--etcd-cert", store.etcd.cert_pem, "etcd client certificate (PEM content)");
  app.add_option("--etcd-key", store.etcd.key_pem, "etcd client key (PEM content)");
  app.add_option("--etcd-ca", store.etcd.ca_pem, "etcd CA certificate (PEM content)");
  app.add_option("--etcd-cert-file", store.etcd.cert_file, "etcd client certificate file");
  app.add_option("--etcd-key-file", store.etcd.key_file, "etcd client key file");
  app.add_option("--etcd-ca-file", store.etcd.ca_file, "etcd CA certificate file");
  app.add_option("--etcd-prefix", store.prefix, "Key prefix in the store")
      ->default_str("/discovery");
  store.etcd.auto_sync_interval = absl::Seconds(10);  // the original's default
  config::AddDurationOption(app, "--etcd-auto-sync-interval", &store.etcd.auto_sync_interval,
                            "How often the etcd endpoints are replaced by the cluster's member "
                            "list (0 keeps the endpoints as given)")
      ->default_str("10s");
  config::AddDurationOption(app, "--etcd-dial-timeout", &store.etcd.dial_timeout,
                            "Timeout for connecting to etcd");
  config::AddDurationOption(app, "--etcd-request-timeout", &store.etcd.request_timeout,
                            "Timeout of each etcd request");
  app.add_flag("--debug", flags.debug, "Log at debug level");
  app.add_option("--log-format", flags.log_format,
                 "Log format: auto (JSON unless stderr is a terminal), json or text")
      ->check(CLI::IsMember({"auto", "json", "text"}));
}

// Token flags exist on `server` and `token create`: both must agree on issuer and secret.
void AddTokenFlags(CLI::App& command, Flags& flags) {
  command.add_option("--token-issuer", flags.config.token_issuer, "Issuer of machine tokens")
      ->default_str("discovery.postfinance.ch");
  command.add_option("--token-secret", flags.config.token_secret,
                     "Secret signing machine tokens (default with the embedded store: generated "
                     "once into <data-dir>/token-secret)");
}

void AddServerFlags(CLI::App& command, Flags& flags) {
  server::ServerConfig& config = flags.config;
  command.add_option("-l,--grpc-listen", config.grpc_listen, "gRPC listen address")
      ->default_str("localhost:3001");
  command
      .add_option("--http-listen", config.http_listen,
                  "HTTP listen address (REST, http_sd, /metrics, health, Swagger UI)")
      ->default_str("localhost:3002");
  command
      .add_option("--replicas", flags.replicas,
                  "Number of Prometheus servers each service is placed on (stored for every "
                  "replica)")
      ->default_str("1");
  command
      .add_option("--placement", flags.placement,
                  "Placement algorithm: rendezvous, or jump for the original's assignment")
      ->check(CLI::IsMember({"rendezvous", "jump"}))
      ->default_str("rendezvous");
  AddTokenFlags(command, flags);
  config::AddListOption(command, "--previous-token-secrets", &config.previous_token_secrets,
                        "Earlier token secrets: machine tokens they signed are still accepted "
                        "while tokens are reissued after a rotation (never used to sign)");
  command.add_option("--tls-cert", flags.tls_cert, "PEM certificate for both listeners");
  command.add_option("--tls-key", flags.tls_key, "PEM private key for both listeners");
  command.add_option("--oidc-endpoint", flags.oidc_endpoint, "The URL to the OIDC provider");
  command.add_option("--oidc-client-id", flags.oidc_client_id, "The OIDC client id");
  command.add_option("--oidc-ui-client-id", flags.oidc_ui_client_id,
                     "The OIDC client id of the web UI (/ui/): a public client using the "
                     "authorization code flow with PKCE and the redirect URI <server>/ui/; its "
                     "tokens are accepted like those of --oidc-client-id");
  config::AddListOption(command, "--oidc-roles", &config.admin_roles,
                        "Roles allowed to administer namespaces, servers and tokens");
  command
      .add_option("--oidc-username-claim", flags.oidc_username_claim, "Claim holding the user name")
      ->default_str("username");
  command.add_option("--oidc-roles-claim", flags.oidc_roles_claim, "Claim holding the roles")
      ->default_str("roles");
  command.add_option("--ca-cert", flags.ca_cert, "CA certificate file for the OIDC provider")
      ->check(CLI::ExistingFile);
  config::AddListOption(command, "--trusted-proxies", &config.trusted_proxies,
                        "CIDRs of load balancers whose X-Forwarded-For names the client in the "
                        "audit trail (ignored from other peers)");
  config::AddDurationOption(command, "--shutdown-grace", &config.shutdown_grace,
                            "How long calls in flight may take to finish on shutdown");
  config::AddDurationOption(command, "--min-ttl", &config.min_ttl,
                            "Shortest TTL of a registration; a shorter one asked for is raised");
  config::AddDurationOption(command, "--max-ttl", &config.max_ttl,
                            "Longest TTL of a registration; a longer one asked for is lowered");
  AddGrpcLimitFlags(command, config.grpc_limits);
  AddHttpLimitFlags(command, config.http_limits);
}

void AddExporterFlags(CLI::App& command, Flags& flags) {
  server::ExporterConfig& exporter = flags.exporter;
  command.add_option("--server", exporter.server, "Prometheus server whose targets are exported")
      ->required();
  command
      .add_option("--directory", exporter.directory,
                  "Directory of the file_sd files (<directory>/<server>/<namespace>/<job>.json)")
      ->default_str("/tmp/discovery");
  config::AddDurationOption(command, "--resync-interval", &exporter.resync_interval,
                            "How often every file is rewritten from the store's state");
  command
      .add_option("--http-listen", exporter.http_listen,
                  "Listen address of /metrics and /healthz (empty disables it)")
      ->default_str("localhost:3003");
}

}  // namespace discovery::cli::discoveryd_internal
