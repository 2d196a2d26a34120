#include "server/daemon.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "fmt/format.h"

#include "api/dispatcher.h"
#include "api/grpc/grpc_server.h"
#include "api/handlers.h"
#include "api/peer.h"
#include "auth/authenticator.h"
#include "auth/authorizer.h"
#include "auth/oidc_verifier.h"
#include "common/format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/wait.h"
#include "compress/gzip.h"
#include "http/server.h"
#include "metrics/metrics.h"
#include "openapi/docs.h"
#include "registry/registry.h"
#include "repo/repo.h"
#include "rest/json.h"
#include "rest/rest_api.h"
#include "server/process_settings.h"
#include "ui/ui.h"

namespace discovery::server {
namespace {

http::Response PlainText(int status, std::string body) {
  return {.status = status,
          .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
          .body = std::move(body)};
}

}  // namespace

struct Daemon::Parts {
  ServerConfig config;
  metrics::Metrics metrics;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<registry::Registry> registry;
  std::unique_ptr<auth::Authorizer> authorizer;
  std::unique_ptr<auth::OidcVerifier> oidc;
  std::unique_ptr<auth::Authenticator> authenticator;
  std::unique_ptr<api::Handlers> handlers;
  std::unique_ptr<api::Dispatcher> dispatcher;
  std::unique_ptr<rest::RestApi> rest;
  std::unique_ptr<ui::WebUi> web_ui;
  std::unique_ptr<grpc_api::GrpcServer> grpc;
  std::unique_ptr<http::Server> http;
  bool shut_down = false;

  http::Response Serve(const http::Request& request) {
    const absl::Time start = absl::Now();
    std::string route;
    http::Response response;
    if (request.path == "/metrics") {
      route = "/metrics";
      // Read at scrape time, so the alert on it sees what /readyz would answer now.
      metrics.SetReady(registry->Ready().ok());
      response = {.status = 200,
                  .headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                  .body = metrics.Serialize()};
    } else if (request.path == "/healthz") {
      route = "/healthz";
      response = PlainText(200, "ok\n");
    } else if (request.path == "/readyz") {
      route = "/readyz";
      const absl::Status ready = registry->Ready();
      response = ready.ok() ? PlainText(200, "ok\n")
                            : PlainText(503, fmt::format("{}\n", ready.message()));
    } else if (openapi::Handles(request.path)) {
      route = std::string{openapi::Route(request.path).value_or("unmatched")};
      response = openapi::Serve(request);
    } else if (ui::WebUi::Handles(request.path)) {
      route = std::string{ui::WebUi::Route(request.path).value_or("unmatched")};
      response = web_ui->Serve(request);
    } else {
      route = std::string{rest::RestApi::Route(request.path).value_or("unmatched")};
      response = rest->Handle(request);
    }
    CompressLargeAnswer(request, response);
    Report(route, request, response, start);
    return response;
  }

  // Serve's answer when the REST API can give it from memory (a repeated http_sd refresh), on
  // the HTTP server's I/O thread; nullopt sends the request on to Serve.
  std::optional<http::Response> ServeFromMemory(const http::Request& request) {
    const absl::Time start = absl::Now();
    std::optional<http::Response> response = rest->HandleFromMemory(request);
    if (response.has_value()) {
      Report(rest::RestApi::Route(request.path).value_or("unmatched"), request, *response, start);
    }
    return response;
  }

  void Report(std::string_view route, const http::Request& request, const http::Response& response,
              absl::Time start) {
    metrics.HttpHandled(route, request.method, response.status, absl::Now() - start);
    if (request.method != "HEAD") {
      const size_t bytes =
          response.shared_body != nullptr ? response.shared_body->size() : response.body.size();
      metrics.HttpBodySent(route, IsGzipped(response), bytes);
    }
  }

  static bool IsGzipped(const http::Response& response) {
    return std::any_of(response.headers.begin(), response.headers.end(), [](const auto& header) {
      return absl::EqualsIgnoreCase(header.first, "Content-Encoding") && header.second == "gzip";
    });
  }

  // REST lists (not cached: every answer is built anew) are compressed on the fly when large
  // and the client takes gzip; their weak ETag names the JSON whatever its encoding. Answers
  // with a strong ETag or a shared body choose their encoding themselves (http_sd, Swagger UI),
  // so that each encoding keeps its own tag.
  static void CompressLargeAnswer(const http::Request& request, http::Response& response) {
    constexpr size_t kCompressFromBytes = 1024;
    if (response.status != 200 || response.shared_body != nullptr ||
        response.body.size() < kCompressFromBytes || IsGzipped(response)) {
      return;
    }
    bool json = false;
    for (const auto& [name, value] : response.headers) {
      if ((absl::EqualsIgnoreCase(name, "ETag") && !absl::StartsWith(value, "W/")) ||
          absl::EqualsIgnoreCase(name, "Content-Encoding")) {
        return;
      }
      json = json || (absl::EqualsIgnoreCase(name, "Content-Type") &&
                      absl::StartsWith(value, "application/json"));
    }
    const std::optional<std::string_view> accept = request.Header("Accept-Encoding");
    if (!json || !accept.has_value() || !compress::AcceptsGzip(*accept)) {
      return;
    }
    response.body = compress::Gzip(response.body, 1);
    response.headers.emplace_back("Content-Encoding", "gzip");
    response.headers.emplace_back("Vary", "Accept-Encoding");
  }
};

Daemon::Daemon() : parts_(std::make_unique<Parts>()) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(ServerConfig config) {
  ApplyProcessSettings();
  std::unique_ptr<Daemon> daemon(new Daemon());
  Parts& parts = *daemon->parts_;
  parts.config = std::move(config);
  const ServerConfig& cfg = parts.config;
  parts.metrics.RecordStartup(cfg.build, cfg.redacted_flags);
  SetLogCounter([&metrics = parts.metrics](std::string_view level) { metrics.LogMessage(level); });

  std::vector<api::Cidr> trusted_proxies;
  for (const std::string& item : cfg.trusted_proxies) {
    absl::StatusOr<std::vector<api::Cidr>> parsed = api::ParseCidrs(item);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("--trusted-proxies: {}", parsed.status().message()));
    }
    trusted_proxies.insert(trusted_proxies.end(), parsed->begin(), parsed->end());
  }
  DISCOVERY_ASSIGN_OR_RETURN(std::string secret, ResolveTokenSecret(cfg, /*create=*/true));
  // Declared before the store, the metrics outlive it.
  DISCOVERY_ASSIGN_OR_RETURN(parts.store, OpenObservedStore(cfg.store, parts.metrics));

  registry::RegistryOptions registry_options{.placement = cfg.placement};
  registry_options.on_counts = [&metrics = parts.metrics](const registry::ServiceCounts& counts) {
    metrics.SetServiceCounts(counts);
  };
  registry_options.on_invalid = [&metrics = parts.metrics](const registry::InvalidCounts& counts) {
    metrics.SetInvalidRecords(counts);
  };
  registry_options.on_ttl = [&metrics = parts.metrics](int64_t with_ttl, int64_t expired) {
    metrics.SetTtlServices(with_ttl, expired);
  };
  registry_options.on_renewals = [&metrics = parts.metrics](int64_t renewed) {
    metrics.ServicesRenewed(renewed);
  };
  registry_options.min_ttl = cfg.min_ttl;
  registry_options.max_ttl = cfg.max_ttl;
  parts.registry = std::make_unique<registry::Registry>(*parts.store, repo::Keys(cfg.store.prefix),
                                                        std::move(registry_options));
  parts.authorizer = std::make_unique<auth::Authorizer>(cfg.admin_roles);
  auth::AuthenticatorOptions authentication{
      .issuer = cfg.token_issuer, .secret = secret, .previous_secrets = cfg.previous_token_secrets};
  // Revocations come from the view, which follows the store: every replica refuses a revoked
  // token as soon as its view has the record.
  authentication.revoked = [&registry = *parts.registry](std::string_view token_id) {
    return registry.IsTokenRevoked(token_id);
  };
  if (cfg.oidc.has_value()) {
    parts.oidc = std::make_unique<auth::OidcVerifier>(
        auth::OidcOptions{.issuer = cfg.oidc->endpoint,
                          .client_id = cfg.oidc->client_id,
                          .ui_client_id = cfg.oidc->ui_client_id,
                          .username_claim = cfg.oidc->username_claim,
                          .roles_claim = cfg.oidc->roles_claim,
                          .ca_cert_file = cfg.oidc->ca_cert_file});
    authentication.user_tokens = [&oidc = *parts.oidc](std::string_view token) {
      return oidc.Verify(token);
    };
  }
  parts.authenticator = std::make_unique<auth::Authenticator>(std::move(authentication));
  parts.handlers = std::make_unique<api::Handlers>(
      *parts.registry, *parts.authorizer,
      api::HandlerOptions{.tokens = {.issuer = cfg.token_issuer,
                                     .secret = secret,
                                     .previous_secrets = cfg.previous_token_secrets}});
  parts.dispatcher = std::make_unique<api::Dispatcher>(
      *parts.handlers, *parts.authenticator,
      api::CallObserver{
          .started = [&metrics =
                          parts.metrics](std::string_view method) { metrics.RpcStarted(method); },
          .handled = [&metrics = parts.metrics](
                         std::string_view method, absl::StatusCode code,
                         absl::Duration elapsed) { metrics.RpcHandled(method, code, elapsed); },
          .changed = [&metrics = parts.metrics](
                         std::string_view object, std::string_view op,
                         std::string_view outcome) { metrics.Change(object, op, outcome); }},
      std::move(trusted_proxies));
  parts.rest = std::make_unique<rest::RestApi>(*parts.dispatcher);
  parts.web_ui = std::make_unique<ui::WebUi>(
      cfg.oidc.has_value() ? ui::UiOptions{.oidc_issuer = cfg.oidc->endpoint,
                                           .oidc_client_id = cfg.oidc->ui_client_id}
                           : ui::UiOptions{});

  grpc_api::GrpcServerOptions grpc_options{.listen = cfg.grpc_listen,
                                           .workers = cfg.grpc_limits.workers,
                                           .max_queued_calls = cfg.grpc_limits.max_queued_calls};
  http::ServerOptions http_options{
      .listen = cfg.http_listen,
      .max_body_bytes = cfg.http_limits.max_body_bytes,
      .max_header_bytes = cfg.http_limits.max_header_bytes,
      .read_timeout = cfg.http_limits.read_timeout,
      .idle_timeout = cfg.http_limits.idle_timeout,
      .write_timeout = cfg.http_limits.write_timeout,
      .io_threads = cfg.http_limits.io_threads,
      .worker_threads = cfg.http_limits.worker_threads,
      .max_connections = cfg.http_limits.max_connections,
      .max_connections_per_client = cfg.http_limits.max_connections_per_client,
      .max_buffered_body_bytes = cfg.http_limits.max_buffered_body_bytes,
      // REST clients get the same JSON error shape from the transport as from the API.
      .error_renderer = rest::TransportErrorResponse,
      // Prometheus refreshing http_sd with a known token is answered from memory on the I/O
      // thread, without the hand-off to a worker and back.
      .quick_handler =
          [&parts](const http::Request& request) { return parts.ServeFromMemory(request); },
  };
  if (cfg.tls.has_value()) {
    grpc_options.tls =
        grpc_api::TlsFiles{.cert_file = cfg.tls->cert_file, .key_file = cfg.tls->key_file};
    http_options.tls =
        http::TlsOptions{.cert_file = cfg.tls->cert_file, .key_file = cfg.tls->key_file};
  }
  DISCOVERY_ASSIGN_OR_RETURN(parts.grpc,
                             grpc_api::GrpcServer::Start(grpc_options, *parts.dispatcher));
  DISCOVERY_ASSIGN_OR_RETURN(
      parts.http, http::Server::Start(http_options, [&parts](const http::Request& request) {
        return parts.Serve(request);
      }));
  LogInfo("discoveryd listening", {{"grpc", cfg.grpc_listen},
                                   {"grpc_port", std::to_string(parts.grpc->port())},
                                   {"http", cfg.http_listen},
                                   {"http_port", std::to_string(parts.http->port())},
                                   {"store", UsesEmbeddedStore(cfg.store) ? "embedded" : "etcd"},
                                   {"tls", cfg.tls.has_value() ? "on" : "off"}});
  daemon->initializer_ =
      std::jthread([d = daemon.get()](const std::stop_token& stop) { d->Initialize(stop); });
  daemon->oidc_loader_ =
      std::jthread([d = daemon.get()](const std::stop_token& stop) { d->LoadOidcProvider(stop); });
  return daemon;
}

void Daemon::Initialize(const std::stop_token& stop) {
  absl::Duration backoff = absl::Milliseconds(200);
  while (!stop.stop_requested()) {
    absl::Status status = parts_->registry->Initialize(absl::Seconds(5));
    if (status.ok()) {
      parts_->grpc->SetServing(true);
      LogInfo("registry loaded; ready");
      return;
    }
    if (absl::IsDeadlineExceeded(status)) {
      // A large store still being read: wait on for it, without a pause that would only delay
      // readiness past the end of the load.
      LogInfo("registry still loading", {{"status", std::string{status.message()}}});
      backoff = absl::Milliseconds(200);
      continue;
    }
    LogWarn("registry not ready yet", {{"error", std::string{status.message()}}});
    SleepUnlessStopped(stop, backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

// A provider that is down at start must not keep machine tokens out, so the server starts
// anyway and keeps trying; until then user tokens are answered Unavailable.
void Daemon::LoadOidcProvider(const std::stop_token& stop) {
  auth::OidcVerifier* oidc = parts_->oidc.get();
  if (oidc == nullptr) {
    return;
  }
  absl::Duration backoff = absl::Seconds(1);
  while (!stop.stop_requested()) {
    const absl::Status loaded = oidc->Load();
    if (loaded.ok()) {
      LogInfo("OIDC provider loaded", {{"issuer", parts_->config.oidc->endpoint}});
      return;
    }
    LogWarn("OIDC provider not usable yet; machine tokens work meanwhile",
            {{"issuer", parts_->config.oidc->endpoint},
             {"error", std::string{loaded.message()}},
             {"retry-in", absl::FormatDuration(backoff)}});
    SleepUnlessStopped(stop, backoff);
    backoff = std::min(backoff * 2, absl::Seconds(30));
  }
}

int Daemon::grpc_port() const { return parts_->grpc->port(); }
int Daemon::http_port() const { return parts_->http->port(); }

void Daemon::Shutdown() {
  if (parts_ == nullptr || parts_->shut_down) {
    return;
  }
  parts_->shut_down = true;
  for (std::jthread* thread : {&initializer_, &oidc_loader_}) {
    thread->request_stop();
    if (thread->joinable()) {
      thread->join();
    }
  }
  LogInfo("shutting down", {{"grace", absl::FormatDuration(parts_->config.shutdown_grace)}});
  if (parts_->grpc != nullptr) {
    parts_->grpc->Shutdown(parts_->config.shutdown_grace);
  }
  if (parts_->http != nullptr) {
    parts_->http->Shutdown(parts_->config.shutdown_grace);
  }
  SetLogCounter(nullptr);
}

Daemon::~Daemon() { Shutdown(); }

}  // namespace discovery::server
