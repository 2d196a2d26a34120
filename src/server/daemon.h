// The composition root of `discoveryd server`: builds and owns the store, the registry, the
// API, both listeners and the metrics, and tears them down in reverse order.
#pragma once

#include <memory>
#include <stop_token>
#include <thread>

#include "absl/status/statusor.h"

#include "server/server_config.h"

namespace discovery::server {

class Daemon {
 public:
  // Opens the store and starts both listeners. Returns once they accept connections; the
  // store is loaded in the background (until then /readyz and http_sd answer 503 and the gRPC
  // health service reports NOT_SERVING). Fails for bad configuration, an unreachable etcd, or
  // an address that cannot be bound.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(ServerConfig config);
  // Shuts down (see Shutdown) if not done yet.
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  Daemon(Daemon&&) = delete;
  Daemon& operator=(Daemon&&) = delete;

  int grpc_port() const;
  int http_port() const;
  // Stops accepting, gives calls in flight the configured grace, closes the store.
  void Shutdown();

 private:
  struct Parts;
  Daemon();
  void Initialize(const std::stop_token& stop);
  void LoadOidcProvider(const std::stop_token& stop);

  std::unique_ptr<Parts> parts_;
  std::jthread initializer_;  // last two: they use parts_
  std::jthread oidc_loader_;
};

}  // namespace discovery::server
