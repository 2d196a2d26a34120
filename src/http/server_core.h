// The server's internals shared by its translation units: ServerCore (listening in
// listener.cc, connections in connection.cc, the rest in server.cc) and the interface it keeps
// of each open connection. Boost stays behind this header; only this module's sources see it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/thread_pool.hpp"
#include "boost/beast/core.hpp"

#include "http/server.h"

namespace discovery::http::server_internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// Debian's abseil has its own string_view type, distinct from std::string_view.
inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

Response PlainResponse(int status, std::string body);

// Why a connection is answered and closed without reading a request.
struct Refusal {
  int status = 503;
  std::string message;
};

// The server side of one connection, as seen by the registry of open connections.
class ConnectionBase {
 public:
  ConnectionBase(std::string client_address, bool refused)
      : client_address_(std::move(client_address)), refused_(refused) {}
  virtual ~ConnectionBase() = default;
  ConnectionBase(const ConnectionBase&) = delete;
  ConnectionBase& operator=(const ConnectionBase&) = delete;
  ConnectionBase(ConnectionBase&&) = delete;
  ConnectionBase& operator=(ConnectionBase&&) = delete;

  const std::string& client_address() const { return client_address_; }
  // Refused connections count against neither limit; they only carry their answer.
  bool refused() const { return refused_; }

  // Closes the connection now if it waits for a request; otherwise after the current response.
  virtual void Drain() = 0;
  // Closes the connection now, whatever it is doing.
  virtual void Abort() = 0;
  // Begins serving; called once, after the connection is registered.
  virtual void Start() = 0;

 private:
  const std::string client_address_;
  const bool refused_;
};

// Everything but the public face of Server::Impl. Connections refer to it, so it must outlive
// them all; Shutdown (also run by the destructor) joins every thread that could hold one.
class ServerCore {
 public:
  ServerCore(ServerOptions options, Handler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        accept_strand_(asio::make_strand(ioc_)),
        acceptor_(accept_strand_),
        accept_retry_(accept_strand_) {}

  ~ServerCore() { Shutdown(absl::ZeroDuration()); }

  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;
  ServerCore(ServerCore&&) = delete;
  ServerCore& operator=(ServerCore&&) = delete;

  absl::Status Listen();
  absl::Status Run();
  // Never throws: destructors call it.
  void Shutdown(absl::Duration grace);

  int port() const { return port_; }
  const ServerOptions& options() const { return options_; }
  asio::thread_pool& workers() { return *workers_; }
  // After the grace period of Shutdown queued requests are dropped instead of handled.
  bool abandoned() const { return abandoned_.load(std::memory_order_acquire); }

  // Runs the handler; never throws.
  Response Invoke(const Request& request) const;
  // The QuickHandler's answer; nullopt when there is none or it passed.
  std::optional<Response> InvokeQuick(const Request& request) const;
  // The server's own answer with `status` and `message`; never throws.
  Response RenderError(int status, std::string_view message) const;

  void Unregister(ConnectionBase* connection) {
    absl::MutexLock lock(&mu_);
    connections_.erase(connection);
    if (connection->refused()) {
      --refused_connections_;
      return;
    }
    --active_connections_;
    auto it = connections_per_client_.find(connection->client_address());
    if (it != connections_per_client_.end() && --it->second == 0) {
      connections_per_client_.erase(it);
    }
  }

  // Takes `bytes` of the budget for request bodies being received; false when that would
  // exceed max_buffered_body_bytes.
  bool ReserveBody(size_t bytes) {
    size_t current = buffered_body_bytes_.load(std::memory_order_relaxed);
    do {
      if (bytes >
          options_.max_buffered_body_bytes - std::min(current, options_.max_buffered_body_bytes)) {
        return false;
      }
    } while (!buffered_body_bytes_.compare_exchange_weak(current, current + bytes,
                                                         std::memory_order_relaxed));
    return true;
  }
  void ReleaseBody(size_t bytes) {
    buffered_body_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }

 private:
  absl::Status LoadTls(const TlsOptions& tls);
  absl::Status Bind(const tcp::endpoint& endpoint, bool dual_stack);
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  std::shared_ptr<ConnectionBase> MakeConnection(tcp::socket socket, std::string remote_address,
                                                 std::string client_address,
                                                 std::optional<Refusal> refusal);
  // Whether a new connection from `client_address` is served, refused with an answer, or
  // (beyond even the refusals' bound) closed at once.
  std::optional<Refusal> Admit(const std::string& client_address, bool& close_silently)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunIo();
  void StopServing(absl::Duration grace) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shutdown_mu_);
  std::vector<std::shared_ptr<ConnectionBase>> OpenConnections() ABSL_LOCKS_EXCLUDED(mu_);
  bool NoConnections() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return connections_.empty(); }

  const ServerOptions options_;
  const Handler handler_;
  // Declared first so that it is destroyed last: sockets and timers below belong to it.
  asio::io_context ioc_;
  asio::strand<asio::io_context::executor_type> accept_strand_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_;
  std::optional<ssl::context> ssl_context_;
  std::string address_;  // for logs
  int port_ = 0;         // written by Listen before any thread starts
  std::optional<asio::thread_pool> workers_;
  std::vector<std::thread> worker_threads_;  // attached to workers_
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
  std::atomic<bool> abandoned_{false};
  std::atomic<size_t> buffered_body_bytes_{0};

  // Held for the whole of Shutdown so that concurrent callers return only once it is done.
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;

  absl::Mutex mu_;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  // Weak, so that the registry never keeps a closed connection alive.
  absl::flat_hash_map<ConnectionBase*, std::weak_ptr<ConnectionBase>> connections_
      ABSL_GUARDED_BY(mu_);
  size_t active_connections_ ABSL_GUARDED_BY(mu_) = 0;
  size_t refused_connections_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, size_t> connections_per_client_ ABSL_GUARDED_BY(mu_);
};

}  // namespace discovery::http::server_internal
