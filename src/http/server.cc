#include "http/server.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/post.hpp"

#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "http/server_core.h"

namespace discovery::http {
namespace server_internal {

Response PlainResponse(int status, std::string body) {
  return Response{
      .status = status,
      .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
      .body = std::move(body),
  };
}

absl::Status ServerCore::Run() {
  try {
    // First, so that Shutdown joins whatever a failure below leaves started.
    work_.emplace(asio::make_work_guard(ioc_));
    // A pool without threads of its own: ours attach to it, so they carry a name.
    workers_.emplace(0);
    for (int i = 0; i < options_.worker_threads; ++i) {
      worker_threads_.emplace_back([this] {
        NameThisThread("http-worker");
        workers_->attach();
      });
    }
    asio::post(accept_strand_, [this] { Accept(); });
    for (int i = 0; i < options_.io_threads; ++i) {
      io_threads_.emplace_back([this] {
        NameThisThread("http-io");
        RunIo();
      });
    }
  } catch (const std::exception& e) {
    Shutdown(absl::ZeroDuration());
    return absl::InternalError(absl::StrCat("http server threads: ", e.what()));
  }
  LogInfo("http server listening",
          {{"address", address_}, {"tls", options_.tls.has_value() ? "true" : "false"}});
  return absl::OkStatus();
}

void ServerCore::RunIo() {
  // Handlers report errors through error codes; anything thrown is a bug that must not take
  // the whole process down with it, and run() may simply be resumed afterwards.
  for (;;) {
    try {
      ioc_.run();
      return;
    } catch (const std::exception& e) {
      LogError("http io thread caught an exception", {{"error", e.what()}});
    } catch (...) {
      LogError("http io thread caught an unknown exception");
    }
  }
}

Response ServerCore::Invoke(const Request& request) const {
  try {
    return handler_(request);
  } catch (const std::exception& e) {
    LogError("http handler threw",
             {{"method", request.method}, {"path", request.path}, {"error", e.what()}});
  } catch (...) {
    LogError("http handler threw",
             {{"method", request.method}, {"path", request.path}, {"error", "unknown exception"}});
  }
  return PlainResponse(500, "internal server error\n");
}

std::optional<Response> ServerCore::InvokeQuick(const Request& request) const {
  if (!options_.quick_handler) {
    return std::nullopt;
  }
  try {
    return options_.quick_handler(request);
  } catch (const std::exception& e) {
    LogError("http quick handler threw",
             {{"method", request.method}, {"path", request.path}, {"error", e.what()}});
  } catch (...) {
    LogError("http quick handler threw",
             {{"method", request.method}, {"path", request.path}, {"error", "unknown exception"}});
  }
  return PlainResponse(500, "internal server error\n");
}

Response ServerCore::RenderError(int status, std::string_view message) const {
  if (options_.error_renderer) {
    try {
      Response response = options_.error_renderer(status, message);
      response.status = status;
      return response;
    } catch (const std::exception& e) {
      LogError("http error renderer threw",
               {{"status", std::to_string(status)}, {"error", e.what()}});
    } catch (...) {
      LogError("http error renderer threw",
               {{"status", std::to_string(status)}, {"error", "unknown exception"}});
    }
  }
  return PlainResponse(status, absl::StrCat(ToAbsl(message), "\n"));
}

std::vector<std::shared_ptr<ConnectionBase>> ServerCore::OpenConnections() {
  std::vector<std::shared_ptr<ConnectionBase>> open;
  absl::MutexLock lock(&mu_);
  open.reserve(connections_.size());
  for (const auto& [raw, weak] : connections_) {
    if (std::shared_ptr<ConnectionBase> connection = weak.lock()) {
      open.push_back(std::move(connection));
    }
  }
  return open;
}

void ServerCore::Shutdown(absl::Duration grace) {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (shut_down_) {
    return;
  }
  shut_down_ = true;
  if (!work_.has_value()) {
    return;  // never started: Listen failed, nothing runs
  }
  try {
    StopServing(grace);
  } catch (const std::exception& e) {
    // Only std::thread::join can throw here, and only for a thread that cannot be joined.
    LogError("http server shutdown failed", {{"address", address_}, {"error", e.what()}});
  }
}

void ServerCore::StopServing(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    accepting_ = false;
  }
  asio::post(accept_strand_, [this] {
    beast::error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
  });
  // Drop the references right away: a drained connection must be able to go.
  for (const std::shared_ptr<ConnectionBase>& connection : OpenConnections()) {
    connection->Drain();
  }
  {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(this, &ServerCore::NoConnections), grace);
  }

  abandoned_.store(true, std::memory_order_release);
  for (const std::shared_ptr<ConnectionBase>& connection : OpenConnections()) {
    connection->Abort();
  }
  // A handler still running keeps this waiting: a thread cannot be cancelled. The attached
  // threads return once the pool has no work left.
  if (workers_.has_value()) {
    workers_->wait();
  }
  for (std::thread& thread : worker_threads_) {
    thread.join();
  }
  // With every socket closed and the acceptor gone, run() returns once the last completion
  // handlers (which release the connections) have run.
  work_.reset();
  for (std::thread& thread : io_threads_) {
    thread.join();
  }
  LogInfo("http server stopped", {{"address", address_}});
}

}  // namespace server_internal

using server_internal::ServerCore;
using server_internal::ToAbsl;

std::optional<std::string_view> Request::Header(std::string_view name) const {
  for (const auto& [header_name, value] : headers) {
    if (absl::EqualsIgnoreCase(header_name, ToAbsl(name))) {
      return value;
    }
  }
  return std::nullopt;
}

class Server::Impl final : public ServerCore {
 public:
  using ServerCore::ServerCore;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options, Handler handler) {
  if (!handler) {
    return absl::InvalidArgumentError("http server: no handler");
  }
  try {
    auto impl = std::make_unique<Impl>(std::move(options), std::move(handler));
    DISCOVERY_RETURN_IF_ERROR(impl->Listen());
    DISCOVERY_RETURN_IF_ERROR(impl->Run());
    return std::unique_ptr<Server>(new Server(std::move(impl)));
  } catch (const std::exception& e) {
    // Asio and OpenSSL report resource exhaustion (no file descriptors, no SSL_CTX) by throwing.
    return absl::InternalError(absl::StrCat("http server: ", e.what()));
  }
}

int Server::port() const { return impl_->port(); }

void Server::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }

namespace {

int Cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

}  // namespace

int DefaultIoThreads() { return std::clamp(Cores() / 2, 1, 8); }

int DefaultWorkerThreads() { return std::clamp(Cores() * 2, 4, 64); }

}  // namespace discovery::http
