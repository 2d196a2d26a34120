// The gRPC listener: the four services of postfinance.discovery.v1 as thin adapters over
// api::Dispatcher, plus server reflection and the standard grpc.health.v1 service.
//
// Calls arrive on gRPC's callback API and are queued for a fixed pool of worker threads, which
// run api::Dispatcher::Dispatch (and may block there on the store). A burst of calls therefore
// waits in the queue instead of being refused, as the synchronous server refused everything
// beyond its thread quota with RESOURCE_EXHAUSTED.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

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
  // Threads running calls. A call mostly waits for the store (an etcd round trip, or the watch
  // reaching a write's revision), so they are many more than cores; more calls wait queued.
  int workers = 64;
  // Calls waiting for a worker at most; beyond it a call is answered UNAVAILABLE (which clients
  // retry) rather than letting the queue grow without bound. Far above any fleet's burst.
  size_t max_queued_calls = 100000;
  // Request messages larger than this are rejected with ResourceExhausted.
  int max_receive_message_bytes = 4 << 20;
};

// The queue of calls and the workers running them; defined in grpc_server.cc.
class CallQueue;

class GrpcServer {
 public:
  // Binds and starts serving. InvalidArgument for unreadable TLS files or a worker count or
  // queue bound below 1; Unavailable when the address cannot be bound. `dispatcher` must outlive
  // the server.
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
  // Stops accepting calls; queued and running calls get up to `grace` to finish. Calls still
  // queued then are answered UNAVAILABLE, and the workers are joined once their running calls
  // return. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  struct Services;
  GrpcServer();

  // Declared before the services, which queue into it, and the server, which calls them.
  std::unique_ptr<CallQueue> calls_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

// "host:port" as gRPC wants it: ":port" becomes "[::]:port".
std::string GrpcListenAddress(std::string_view listen);

}  // namespace discovery::grpc_api
