#include "server/exporter_daemon.h"

#include <utility>

#include "fmt/format.h"

#include "common/format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "exporter/exporter.h"
#include "http/server.h"
#include "repo/repo.h"
#include "server/process_settings.h"

namespace discovery::server {

struct ExporterDaemon::Parts {
  ExporterConfig config;
  metrics::Metrics metrics;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<exporter::Exporter> exporter;
  std::unique_ptr<http::Server> http;
  bool shut_down = false;

  http::Response Serve(const http::Request& request) {
    const absl::Time start = absl::Now();
    http::Response response;
    std::string route = "unmatched";
    if (request.path == "/metrics") {
      route = "/metrics";
      response = {.status = 200,
                  .headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                  .body = metrics.Serialize()};
    } else if (request.path == "/healthz") {
      route = "/healthz";
      const absl::Status health = exporter->Health();
      response = {.status = health.ok() ? 200 : 503,
                  .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
                  .body = health.ok() ? "ok\n" : fmt::format("{}\n", health.message())};
    } else {
      response = {.status = 404,
                  .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
                  .body = "404 page not found\n"};
    }
    metrics.HttpHandled(route, request.method, response.status, absl::Now() - start);
    return response;
  }
};

ExporterDaemon::ExporterDaemon() : parts_(std::make_unique<Parts>()) {}

absl::StatusOr<std::unique_ptr<ExporterDaemon>> ExporterDaemon::Start(ExporterConfig config) {
  ApplyProcessSettings();
  std::unique_ptr<ExporterDaemon> daemon(new ExporterDaemon());
  Parts& parts = *daemon->parts_;
  parts.config = std::move(config);
  const ExporterConfig& cfg = parts.config;
  parts.metrics.RecordStartup(cfg.build, cfg.redacted_flags);
  SetLogCounter([&metrics = parts.metrics](std::string_view level) { metrics.LogMessage(level); });

  // Declared before the store, the metrics outlive it.
  DISCOVERY_ASSIGN_OR_RETURN(parts.store, OpenObservedStore(cfg.store, parts.metrics));
  DISCOVERY_ASSIGN_OR_RETURN(parts.exporter,
                             exporter::Exporter::Start(*parts.store, repo::Keys(cfg.store.prefix),
                                                       {.server = cfg.server,
                                                        .directory = cfg.directory,
                                                        .resync_interval = cfg.resync_interval,
                                                        .metrics = &parts.metrics}));
  if (!cfg.http_listen.empty()) {
    DISCOVERY_ASSIGN_OR_RETURN(
        parts.http,
        http::Server::Start({.listen = cfg.http_listen}, [&parts](const http::Request& request) {
          return parts.Serve(request);
        }));
  }
  LogInfo("exporter running", {{"server", cfg.server},
                               {"directory", (cfg.directory / cfg.server).string()},
                               {"http_port", std::to_string(daemon->http_port())},
                               {"store", UsesEmbeddedStore(cfg.store) ? "embedded" : "etcd"}});
  return daemon;
}

int ExporterDaemon::http_port() const { return parts_->http == nullptr ? 0 : parts_->http->port(); }

void ExporterDaemon::Shutdown() {
  if (parts_ == nullptr || parts_->shut_down) {
    return;
  }
  parts_->shut_down = true;
  if (parts_->http != nullptr) {
    parts_->http->Shutdown(parts_->config.shutdown_grace);
  }
  parts_->exporter.reset();
  SetLogCounter(nullptr);
}

ExporterDaemon::~ExporterDaemon() { Shutdown(); }

}  // namespace discovery::server
