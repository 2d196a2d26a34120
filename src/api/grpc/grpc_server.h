// The gRPC listener: the four services of postfinance.discovery.v1 as thin adapters over
// api::Dispatcher, plus server reflection and the standard grpc.health.v1 service.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "api/dispatcher.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace discovery::grpc_api {

struct TlsFiles {
  std::string cert_file;  // PEM certificate chain
  std::string key_file;   // PEM private key
};

struct GrpcServerOptions {
  // host:port; ":3001" listens on every interface, port 0 picks a free one.
  std::string listen = "localhost:3001";
  std::optional<TlsFiles> tls;
  // Upper bound of threads serving calls; beyond it calls wait (sync server resource quota).
  int max_threads = 64;
  // Request messages larger than this are rejected with ResourceExhausted.
  int max_receive_message_bytes = 4 << 20;
};

class GrpcServer {
 public:
  // Binds and starts serving. InvalidArgument for unreadable TLS files; Unavailable when the
  // address cannot be bound. `dispatcher` must outlive the server.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(const GrpcServerOptions& options,
                                                           api::Dispatcher& dispatcher);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;
  GrpcServer(GrpcServer&&) = delete;
  GrpcServer& operator=(GrpcServer&&) = delete;

  int port() const { return port_; }
  // What grpc.health.v1 reports for "" and every service: SERVING or NOT_SERVING.
  void SetServing(bool serving);
  // Stops accepting calls; calls in flight get up to `grace` to finish. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  struct Services;
  GrpcServer() = default;

  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

// "host:port" as gRPC wants it: ":port" becomes "[::]:port".
std::string GrpcListenAddress(std::string_view listen);

}  // namespace discovery::grpc_api
