// Listening: the listen address, TLS setup, binding, and accepting and admitting connections.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ip/v6_only.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "openssl/ssl.h"

#include "common/logging.h"
#include "common/status_macros.h"
#include "http/server.h"
#include "http/server_core.h"

namespace discovery::http::server_internal {
namespace {

// Keeps a persistently failing accept (EMFILE) from spinning an I/O thread.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

// The peer's IP address without the port, the key of the per-client connection limit.
std::string ClientAddress(const tcp::endpoint& endpoint) {
  asio::ip::address address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  return address.to_string();
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  asio::ip::address address = endpoint.address();
  // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; callers expect a.b.c.d.
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  if (address.is_v6()) {
    return absl::StrCat("[", address.to_string(), "]:", endpoint.port());
  }
  return absl::StrCat(address.to_string(), ":", endpoint.port());
}

struct ListenAddress {
  std::string host;  // without brackets; empty means all interfaces
  uint16_t port = 0;
};

absl::StatusOr<ListenAddress> ParseListen(std::string_view listen) {
  const auto invalid = [listen](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", ToAbsl(listen), "\": ", ToAbsl(why)));
  };
  std::string_view host;
  std::string_view port;
  if (absl::StartsWith(ToAbsl(listen), "[")) {
    const size_t close = listen.find(']');
    if (close == std::string_view::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return invalid("want [address]:port");
    }
    host = listen.substr(1, close - 1);
    if (host.empty()) {
      return invalid("empty IPv6 address");
    }
    port = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) {
      return invalid("missing port");
    }
    host = listen.substr(0, colon);
    if (host.find(':') != std::string_view::npos) {
      return invalid("an IPv6 address must be in brackets");
    }
    port = listen.substr(colon + 1);
  }
  uint32_t port_number = 0;
  // SimpleAtoi alone would accept signs and surrounding blanks.
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(ToAbsl(port), &port_number) || port_number > 65535) {
    return invalid("port must be a number from 0 to 65535");
  }
  return ListenAddress{.host = std::string(host), .port = static_cast<uint16_t>(port_number)};
}

absl::Status ValidateOptions(const ServerOptions& options) {
  if (options.io_threads < 1 || options.worker_threads < 1) {
    return absl::InvalidArgumentError("io_threads and worker_threads must be at least 1");
  }
  if (options.max_connections < 1 || options.max_header_bytes < 1 ||
      options.max_connections_per_client < 1 || options.max_buffered_body_bytes < 1) {
    return absl::InvalidArgumentError(
        "max_connections, max_connections_per_client, max_header_bytes and "
        "max_buffered_body_bytes must be at least 1");
  }
  if (options.read_timeout <= absl::ZeroDuration() ||
      options.idle_timeout <= absl::ZeroDuration() ||
      options.write_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeouts must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ServerCore::LoadTls(const TlsOptions& tls) {
  ssl_context_.emplace(ssl::context::tls_server);
  SSL_CTX* native = ssl_context_->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    return absl::InternalError("tls: cannot set the minimum protocol version");
  }
  beast::error_code ec;
  ssl_context_->set_options(ssl::context::default_workarounds | ssl::context::single_dh_use, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("tls options: ", ec.message()));
  }
  ssl_context_->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls certificate ", tls.cert_file, ": ", ec.message()));
  }
  ssl_context_->use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat("tls key ", tls.key_file, ": ", ec.message()));
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls key ", tls.key_file, " does not match certificate ", tls.cert_file));
  }
  return absl::OkStatus();
}

absl::Status ServerCore::Bind(const tcp::endpoint& endpoint, bool dual_stack) {
  const std::string address = FormatEndpoint(endpoint);
  beast::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("listen ", address, ": ", ec.message()));
  }
  if (dual_stack) {
    // Best effort: without it ":port" would serve IPv6 only on hosts defaulting to v6only.
    acceptor_.set_option(asio::ip::v6_only(false), ec);
  }
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  acceptor_.bind(endpoint, ec);
  if (!ec) {
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    beast::error_code ignored;
    acceptor_.close(ignored);
    return absl::UnavailableError(absl::StrCat("listen ", address, ": ", ec.message()));
  }
  const tcp::endpoint local = acceptor_.local_endpoint(ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("listen ", address, ": ", ec.message()));
  }
  port_ = local.port();
  address_ = FormatEndpoint(local);
  return absl::OkStatus();
}

absl::Status ServerCore::Listen() {
  DISCOVERY_RETURN_IF_ERROR(ValidateOptions(options_));
  DISCOVERY_ASSIGN_OR_RETURN(const ListenAddress listen, ParseListen(options_.listen));
  if (options_.tls.has_value()) {
    DISCOVERY_RETURN_IF_ERROR(LoadTls(*options_.tls));
  }

  if (listen.host.empty()) {
    // All interfaces: one dual-stack socket, or IPv4 only where the host has no IPv6.
    absl::Status status = Bind(tcp::endpoint(tcp::v6(), listen.port), /*dual_stack=*/true);
    if (!status.ok()) {
      status = Bind(tcp::endpoint(tcp::v4(), listen.port), /*dual_stack=*/false);
    }
    return status;
  }

  std::vector<tcp::endpoint> candidates;
  beast::error_code ec;
  const asio::ip::address literal = asio::ip::make_address(listen.host, ec);
  if (!ec) {
    candidates.emplace_back(literal, listen.port);
  } else {
    tcp::resolver resolver(ioc_);
    const auto results = resolver.resolve(listen.host, std::to_string(listen.port),
                                          tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("listen address \"", options_.listen,
                                                     "\": cannot resolve host \"", listen.host,
                                                     "\": ", ec ? ec.message() : "no addresses"));
    }
    for (const auto& entry : results) {
      candidates.push_back(entry.endpoint());
    }
    std::stable_partition(candidates.begin(), candidates.end(),
                          [](const tcp::endpoint& endpoint) { return endpoint.address().is_v4(); });
  }
  absl::Status status;
  for (const tcp::endpoint& endpoint : candidates) {
    status = Bind(endpoint, /*dual_stack=*/false);
    if (status.ok()) {
      break;
    }
  }
  return status;
}

void ServerCore::Accept() {
  acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void ServerCore::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
    return;
  }
  if (ec == asio::error::connection_aborted) {
    Accept();
    return;
  }
  if (ec) {
    LogWarn("http accept failed", {{"address", address_}, {"error", ec.message()}});
    accept_retry_.expires_after(kAcceptRetryDelay);
    accept_retry_.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec) {
        Accept();
      }
    });
    return;
  }

  beast::error_code endpoint_ec;
  const tcp::endpoint remote = socket.remote_endpoint(endpoint_ec);
  std::string remote_address = endpoint_ec ? std::string() : FormatEndpoint(remote);
  std::string client_address = endpoint_ec ? std::string() : ClientAddress(remote);
  std::shared_ptr<ConnectionBase> connection;
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_) {
      return;  // the socket closes as it goes out of scope
    }
    bool close_silently = false;
    std::optional<Refusal> refusal = Admit(client_address, close_silently);
    if (close_silently) {
      LogDebug("http connection closed",
               {{"remote", remote_address}, {"reason", "refusals_exhausted"}});
    } else {
      if (refusal.has_value()) {
        LogDebug("http connection refused", {{"remote", remote_address},
                                             {"status", std::to_string(refusal->status)},
                                             {"reason", refusal->message}});
        ++refused_connections_;
      } else {
        ++active_connections_;
        ++connections_per_client_[client_address];
      }
      connection = MakeConnection(std::move(socket), std::move(remote_address),
                                  std::move(client_address), std::move(refusal));
      connections_.emplace(connection.get(), connection);
    }
  }
  if (connection != nullptr) {
    connection->Start();
  }
  Accept();
}

std::optional<Refusal> ServerCore::Admit(const std::string& client_address, bool& close_silently) {
  std::optional<Refusal> refusal;
  if (active_connections_ >= options_.max_connections) {
    refusal = Refusal{.status = 503,
                      .message = absl::StrCat("server busy: ", options_.max_connections,
                                              " connections are open; retry later")};
  } else if (auto it = connections_per_client_.find(client_address);
             it != connections_per_client_.end() &&
             it->second >= options_.max_connections_per_client) {
    refusal = Refusal{.status = 429,
                      .message = absl::StrCat("too many connections from ", client_address,
                                              ": at most ", options_.max_connections_per_client,
                                              " per client address; retry later")};
  }
  // Answering costs a little per connection too; a flood beyond this many refusals in
  // progress is closed without one.
  close_silently = refusal.has_value() && refused_connections_ >= options_.max_connections;
  return refusal;
}

}  // namespace discovery::http::server_internal
