#include "http/server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ip/v6_only.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/thread_pool.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "openssl/ssl.h"
#include "spdlog/spdlog.h"

#include "common/status_macros.h"

namespace discovery::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kServerName = "discoveryd";
// How much a connection waiting for its next request reads at once.
constexpr size_t kFirstReadBytes = 4096;
// Upper bound on draining a connection we close after an error response (see Linger).
constexpr absl::Duration kLingerTimeout = absl::Seconds(1);
// Keeps a persistently failing accept (EMFILE) from spinning an I/O thread.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
// What a client refused for the server's own bounds is told to wait before it tries again.
constexpr std::string_view kRetryAfterSeconds = "1";

// The unparsed input a connection may hold: a whole request line and header section at the
// limit plus one read. Beast bounds the header section itself but not a chunk-size line (with
// its extensions) or a trailer section, which it buffers until the line ends; a buffer with a
// maximum bounds those too.
size_t FramingBufferLimit(const ServerOptions& options) {
  return options.max_header_bytes + kFirstReadBytes;
}

std::string_view ToStd(beast::string_view s) { return {s.data(), s.size()}; }
// Debian's abseil has its own string_view type, distinct from std::string_view.
absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

// The peer's IP address without the port, the key of the per-client connection limit.
std::string ClientAddress(const tcp::endpoint& endpoint) {
  asio::ip::address address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  return address.to_string();
}

// Durations beyond a century mean "never": steady_clock::now() + InfiniteDuration overflows.
SteadyClock::time_point DeadlineAfter(absl::Duration timeout) {
  if (timeout >= absl::Hours(24 * 365 * 100)) {
    return SteadyClock::time_point::max();
  }
  return SteadyClock::now() +
         std::chrono::duration_cast<SteadyClock::duration>(absl::ToChronoNanoseconds(timeout));
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

bool IsHeaderSafe(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool HasConnectionToken(std::string_view value, std::string_view token) {
  const std::vector<absl::string_view> parts = absl::StrSplit(ToAbsl(value), ',');
  return std::any_of(parts.begin(), parts.end(), [token](absl::string_view part) {
    return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(part), ToAbsl(token));
  });
}

Response PlainResponse(int status, std::string body) {
  return Response{
      .status = status,
      .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
      .body = std::move(body),
  };
}

bool IsValidResponse(const Response& response) {
  if (response.status < 200 || response.status > 599) {
    return false;
  }
  return std::all_of(response.headers.begin(), response.headers.end(), [](const auto& header) {
    return !header.first.empty() && IsHeaderSafe(header.first) && IsHeaderSafe(header.second) &&
           header.first.find_first_of(" \t:") == std::string::npos;
  });
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

// One HTTP/1.1 connection over Stream (beast::tcp_stream or beast::ssl_stream of it). Every
// member is touched only on the connection's strand, except strand_, core_ and remote_address_,
// which are immutable. It stays alive through the shared_ptr captured by its pending operation,
// or by the request while a worker handles it.
template <typename Stream>
class Connection final : public ConnectionBase,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  template <typename... StreamArgs>
  Connection(ServerCore& core, std::string remote_address, std::string client_address,
             std::optional<Refusal> refusal, tcp::socket socket, StreamArgs&... stream_args)
      : ConnectionBase(std::move(client_address), refusal.has_value()),
        core_(core),
        strand_(socket.get_executor()),
        remote_address_(std::move(remote_address)),
        refusal_(std::move(refusal)),
        stream_(std::move(socket), stream_args...),
        buffer_(FramingBufferLimit(core.options())) {}

  ~Connection() override {
    ReleaseBody();
    core_.Unregister(this);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;

  void Start() override {
    // Posted, not dispatched: the caller may be an I/O thread that would run it inline.
    asio::post(strand_, [self = this->shared_from_this()] { self->OnStart(); });
  }

  void Drain() override {
    asio::post(strand_, [self = this->shared_from_this()] {
      self->draining_ = true;
      if (self->state_ == State::kHandshake || self->state_ == State::kIdle) {
        self->CloseNow();
      }
    });
  }

  void Abort() override {
    asio::post(strand_, [self = this->shared_from_this()] { self->CloseNow(); });
  }

 private:
  enum class State { kHandshake, kIdle, kReading, kHandling, kWriting, kClosing };

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  const ServerOptions& options() const { return core_.options(); }

  void OnStart() {
    // The first request's deadline starts at the accept, so a silent client cannot hold the
    // connection for longer than read_timeout.
    request_deadline_ = DeadlineAfter(options().read_timeout);
    if (draining_) {
      CloseNow();
      return;
    }
    if constexpr (kTls) {
      state_ = State::kHandshake;
      Lowest().expires_at(request_deadline_);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) {
                                  spdlog::debug("http tls handshake failed remote={} error={}",
                                                self->remote_address_, ec.message());
                                  self->CloseNow();
                                  return;
                                }
                                self->Proceed();
                              });
    } else {
      Proceed();
    }
  }

  void Proceed() {
    if (refusal_.has_value()) {
      // Answered before reading: the request may not even have been sent yet, and reading it
      // would cost what the refusal is there to save. Linger then drains what arrives.
      WriteError(refusal_->status, refusal_->message, /*retry_after=*/true);
      return;
    }
    WaitForRequest();
  }

  // Waits for the first byte of the next request under the idle timeout; only then does the
  // (usually shorter) read timeout for the whole request begin.
  void WaitForRequest() {
    state_ = State::kIdle;
    if (draining_) {
      CloseNow();
      return;
    }
    if (buffer_.size() > 0) {  // pipelined: the next request has already begun
      BeginRequest();
      return;
    }
    Lowest().expires_at(first_request_ ? request_deadline_ : DeadlineAfter(options().idle_timeout));
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t bytes) {
                              if (ec) {  // idle timeout, peer gone, or drained
                                self->CloseNow();
                                return;
                              }
                              self->buffer_.commit(bytes);
                              self->BeginRequest();
                            });
  }

  void BeginRequest() {
    if (!first_request_) {
      request_deadline_ = DeadlineAfter(options().read_timeout);
    }
    state_ = State::kReading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(options().max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser_->body_limit(static_cast<std::uint64_t>(options().max_body_bytes));
    Lowest().expires_at(request_deadline_);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t header_bytes) {
          self->OnHeader(ec, header_bytes);
        });
  }

  // `header_bytes`: what the parser took for the request line and header fields.
  void OnHeader(beast::error_code ec, size_t header_bytes) {
    if (ec) {
      OnReadError(ec);
      return;
    }
    // Beast measures the request line and the header fields against header_limit apart when
    // they arrive in one read, which lets up to twice the limit through.
    if (header_bytes > options().max_header_bytes) {
      OnReadError(bhttp::error::header_limit);
      return;
    }
    const auto& header = parser_->get();
    // RFC 9112 §6.3: with a transfer coding other than a final "chunked" the body length is
    // unknown. Beast would read an empty body and take the rest for the next request, which is
    // how requests are smuggled past a proxy that reads it differently.
    if (header.count(bhttp::field::transfer_encoding) > 0 && !parser_->chunked()) {
      WriteError(400, "malformed HTTP request: unsupported transfer coding (only a final chunked)");
      return;
    }
    if (parser_->is_done()) {
      OnRequest();
      return;
    }
    // An announced body takes its share of the budget before any of it is read, so a client
    // waiting for 100-continue is turned away before it sends anything.
    if (const boost::optional<std::uint64_t> length = parser_->content_length();
        length.has_value() && !ReserveBodyUpTo(static_cast<size_t>(*length))) {
      return;
    }
    // Clients such as curl hold back a large body until told to send it; answering only after
    // the body would cost them a second of waiting.
    if (header.version() >= 11 &&
        absl::EqualsIgnoreCase(ToAbsl(ToStd(header[bhttp::field::expect])), "100-continue")) {
      continue_.emplace(bhttp::status::continue_, header.version());
      Lowest().expires_at(DeadlineAfter(options().write_timeout));
      bhttp::async_write(stream_, *continue_,
                         [self = this->shared_from_this()](beast::error_code write_ec, size_t) {
                           self->continue_.reset();
                           if (write_ec) {
                             self->CloseNow();
                             return;
                           }
                           self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  // Reads the body piece by piece so that what it holds is always covered by the budget of
  // buffered request bodies (a chunked body announces no length).
  void ReadBody() {
    Lowest().expires_at(request_deadline_);
    bhttp::async_read_some(stream_, buffer_, *parser_,
                           [self = this->shared_from_this()](beast::error_code ec, size_t) {
                             if (ec) {
                               self->OnReadError(ec);
                               return;
                             }
                             if (!self->ReserveBodyUpTo(self->parser_->get().body().size())) {
                               return;
                             }
                             if (self->parser_->is_done()) {
                               self->OnRequest();
                               return;
                             }
                             self->ReadBody();
                           });
  }

  // Grows this request's share of the body budget to `bytes`; when the server has no room
  // left, answers 503 and returns false.
  bool ReserveBodyUpTo(size_t bytes) {
    if (bytes <= body_reserved_) {
      return true;
    }
    // Never more than the body limit: the parser answers 413 beyond it.
    bytes = std::min(bytes, options().max_body_bytes);
    if (bytes > body_reserved_ && !core_.ReserveBody(bytes - body_reserved_)) {
      spdlog::debug("http request refused remote={} reason=max_buffered_body_bytes",
                    remote_address_);
      WriteError(503,
                 absl::StrCat("server busy: request bodies being received exceed ",
                              options().max_buffered_body_bytes, " bytes; retry later"),
                 /*retry_after=*/true);
      return false;
    }
    body_reserved_ = std::max(body_reserved_, bytes);
    return true;
  }

  void ReleaseBody() {
    if (body_reserved_ > 0) {
      core_.ReleaseBody(body_reserved_);
      body_reserved_ = 0;
    }
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::buffer_overflow) {
      // Only framing outside the header section can fill the buffer: header_limit fires first.
      if (parser_.has_value() && parser_->is_header_done()) {
        WriteError(400, absl::StrCat("malformed HTTP request: a chunk-size line or the trailer "
                                     "section is longer than the limit of ",
                                     FramingBufferLimit(options()), " bytes"));
      } else {
        WriteError(431, absl::StrCat("request header fields too large: the limit is ",
                                     options().max_header_bytes,
                                     " bytes for the request line and header fields"));
      }
      return;
    }
    if (ec == bhttp::error::body_limit) {
      WriteError(413, absl::StrCat("request body too large: the limit is ",
                                   options().max_body_bytes, " bytes"));
      return;
    }
    if (ec == bhttp::error::header_limit) {
      WriteError(431, absl::StrCat("request header fields too large: the limit is ",
                                   options().max_header_bytes,
                                   " bytes for the request line and header fields"));
      return;
    }
    // Every other parser error is a malformed request; end_of_stream and partial_message only
    // mean that the peer went away, and other categories are socket errors or the read timeout.
    const bool malformed =
        ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
    if (malformed) {
      spdlog::debug("http malformed request remote={} error={}", remote_address_, ec.message());
      WriteError(400, absl::StrCat("malformed HTTP request: ", ec.message()));
      return;
    }
    CloseNow();
  }

  void OnRequest() {
    state_ = State::kHandling;
    bhttp::request<bhttp::string_body> message = parser_->release();
    parser_.reset();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    head_ = message.method() == bhttp::verb::head;

    Request request;
    request.method = std::string(ToStd(message.method_string()));
    request.target = std::string(ToStd(message.target()));
    const size_t question = request.target.find('?');
    request.path = request.target.substr(0, question);
    if (question != std::string::npos) {
      request.query = request.target.substr(question + 1);
    }
    request.headers.reserve(std::distance(message.begin(), message.end()));
    for (const auto& field : message) {
      request.headers.emplace_back(ToStd(field.name_string()), ToStd(field.value()));
    }
    request.body = std::move(message.body());
    request.remote_address = remote_address_;

    if (std::optional<Response> quick = core_.InvokeQuick(request); quick.has_value()) {
      spdlog::debug("http request method={} path={} status={} remote={} quick=true", request.method,
                    request.path, quick->status, request.remote_address);
      WriteResponse(*std::move(quick));
      return;
    }
    // The handler may block, so it runs on a worker and never on this I/O thread.
    asio::post(core_.workers(), [self = this->shared_from_this(), request = std::move(request)] {
      if (self->core_.abandoned()) {
        return;
      }
      Response response = self->core_.Invoke(request);
      spdlog::debug("http request method={} path={} status={} remote={}", request.method,
                    request.path, response.status, request.remote_address);
      asio::post(self->strand_, [self, response = std::move(response)]() mutable {
        self->WriteResponse(std::move(response));
      });
    });
  }

  void WriteError(int status, const std::string& message, bool retry_after = false) {
    keep_alive_ = false;
    version_ = 11;
    head_ = false;
    Response response = core_.RenderError(status, message);
    if (retry_after) {
      response.headers.emplace_back("Retry-After", std::string(kRetryAfterSeconds));
    }
    WriteResponse(std::move(response));
  }

  void WriteResponse(Response response) {
    state_ = State::kWriting;
    // The request and its body are gone once the handler has answered.
    ReleaseBody();
    if (!IsValidResponse(response)) {
      spdlog::error("http handler returned an invalid response status={} remote={}",
                    response.status, remote_address_);
      response = PlainResponse(500, "internal server error\n");
    }
    bool close = !keep_alive_ || draining_;
    close_after_write_ = false;
    if (response.shared_body != nullptr) {
      // A cached body: written straight from the shared buffer, never copied.
      shared_body_ = std::move(response.shared_body);
      shared_response_.emplace();
      Fill(*shared_response_, response, close);
      if (response.status != 204 && response.status != 304) {
        shared_response_->content_length(shared_body_->size());
        if (!head_) {
          shared_response_->body() = {shared_body_->data(), shared_body_->size()};
        }
      }
      Send(*shared_response_);
      return;
    }
    response_.emplace();
    Fill(*response_, response, close);
    // RFC 9110 §8.6: a HEAD response announces the length the GET would have; 204 and 304
    // carry neither.
    if (response.status != 204 && response.status != 304) {
      response_->content_length(response.body.size());
      if (!head_) {
        response_->body() = std::move(response.body);
      }
    }
    Send(*response_);
  }

  // Status line and header fields of `response` into `message`; sets `close` when the handler
  // asked for the connection to close.
  template <typename Message>
  void Fill(Message& message, const Response& response, bool& close) {
    bool has_server = false;
    message.version(version_);
    message.result(static_cast<unsigned>(response.status));
    for (const auto& [name, value] : response.headers) {
      if (absl::EqualsIgnoreCase(name, "Content-Length") ||
          absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
        continue;
      }
      if (absl::EqualsIgnoreCase(name, "Connection")) {
        close = close || HasConnectionToken(value, "close");
        continue;
      }
      has_server = has_server || absl::EqualsIgnoreCase(name, "Server");
      message.insert(name, value);
    }
    if (!has_server) {
      message.set(bhttp::field::server, beast::string_view(kServerName.data(), kServerName.size()));
    }
    message.keep_alive(!close);
    close_after_write_ = close;
  }

  template <typename Message>
  void Send(Message& message) {
    Lowest().expires_at(DeadlineAfter(options().write_timeout));
    bhttp::async_write(stream_, message,
                       [self = this->shared_from_this()](beast::error_code ec, size_t) {
                         self->response_.reset();
                         self->shared_response_.reset();
                         self->shared_body_.reset();
                         if (ec) {
                           self->CloseNow();
                           return;
                         }
                         if (self->close_after_write_) {
                           self->CloseGracefully();
                           return;
                         }
                         self->first_request_ = false;
                         self->WaitForRequest();
                       });
  }

  void CloseGracefully() {
    state_ = State::kClosing;
    const SteadyClock::time_point deadline =
        DeadlineAfter(std::min(kLingerTimeout, options().write_timeout));
    if constexpr (kTls) {
      Lowest().expires_at(deadline);
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->CloseNow(); });
    } else {
      beast::error_code ec;
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) {
        CloseNow();
        return;
      }
      Lowest().expires_at(deadline);
      Linger();
    }
  }

  // Closing a socket with unread input makes the kernel send a reset, which can destroy the
  // response before the peer has read it (typically after a 413 for a body still in flight).
  // So read and discard until the peer closes or the linger deadline passes.
  void Linger() {
    buffer_.consume(buffer_.size());
    Lowest().async_read_some(buffer_.prepare(kFirstReadBytes),
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
                               if (ec) {
                                 self->CloseNow();
                                 return;
                               }
                               self->Linger();
                             });
  }

  void CloseNow() {
    state_ = State::kClosing;
    Lowest().close();
  }

  ServerCore& core_;
  const asio::any_io_executor strand_;
  const std::string remote_address_;
  const std::optional<Refusal> refusal_;
  Stream stream_;
  // Unparsed input, bounded by FramingBufferLimit.
  beast::flat_buffer buffer_;
  // This request's share of the server's budget for request bodies.
  size_t body_reserved_ = 0;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  // A response whose body is a shared, immutable buffer, kept alive until it is written.
  std::optional<bhttp::response<bhttp::span_body<const char>>> shared_response_;
  std::shared_ptr<const std::string> shared_body_;
  SteadyClock::time_point request_deadline_;
  State state_ = State::kIdle;
  bool first_request_ = true;
  bool draining_ = false;
  bool keep_alive_ = false;
  bool head_ = false;
  bool close_after_write_ = false;
  unsigned version_ = 11;
};

using PlainConnection = Connection<beast::tcp_stream>;
using TlsConnection = Connection<beast::ssl_stream<beast::tcp_stream>>;

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

absl::Status ServerCore::Run() {
  try {
    workers_.emplace(static_cast<size_t>(options_.worker_threads));
    work_.emplace(asio::make_work_guard(ioc_));
    asio::post(accept_strand_, [this] { Accept(); });
    for (int i = 0; i < options_.io_threads; ++i) {
      io_threads_.emplace_back([this] { RunIo(); });
    }
  } catch (const std::exception& e) {
    Shutdown(absl::ZeroDuration());
    return absl::InternalError(absl::StrCat("http server threads: ", e.what()));
  }
  spdlog::info("http server listening address={} tls={}", address_, options_.tls.has_value());
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
      spdlog::error("http io thread caught an exception error={}", e.what());
    } catch (...) {
      spdlog::error("http io thread caught an unknown exception");
    }
  }
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
    spdlog::warn("http accept failed address={} error={}", address_, ec.message());
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
      spdlog::debug("http connection closed remote={} reason=refusals_exhausted", remote_address);
    } else {
      if (refusal.has_value()) {
        spdlog::debug("http connection refused remote={} status={} reason={}", remote_address,
                      refusal->status, refusal->message);
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

std::shared_ptr<ConnectionBase> ServerCore::MakeConnection(tcp::socket socket,
                                                           std::string remote_address,
                                                           std::string client_address,
                                                           std::optional<Refusal> refusal) {
  if (ssl_context_.has_value()) {
    return std::make_shared<TlsConnection>(*this, std::move(remote_address),
                                           std::move(client_address), std::move(refusal),
                                           std::move(socket), *ssl_context_);
  }
  return std::make_shared<PlainConnection>(*this, std::move(remote_address),
                                           std::move(client_address), std::move(refusal),
                                           std::move(socket));
}

Response ServerCore::Invoke(const Request& request) const {
  try {
    return handler_(request);
  } catch (const std::exception& e) {
    spdlog::error("http handler threw method={} path={} error={}", request.method, request.path,
                  e.what());
  } catch (...) {
    spdlog::error("http handler threw method={} path={} error=unknown exception", request.method,
                  request.path);
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
    spdlog::error("http quick handler threw method={} path={} error={}", request.method,
                  request.path, e.what());
  } catch (...) {
    spdlog::error("http quick handler threw method={} path={} error=unknown exception",
                  request.method, request.path);
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
      spdlog::error("http error renderer threw status={} error={}", status, e.what());
    } catch (...) {
      spdlog::error("http error renderer threw status={} error=unknown exception", status);
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
    spdlog::error("http server shutdown failed address={} error={}", address_, e.what());
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
  // A handler still running keeps this waiting: a thread cannot be cancelled.
  workers_->join();
  // With every socket closed and the acceptor gone, run() returns once the last completion
  // handlers (which release the connections) have run.
  work_.reset();
  for (std::thread& thread : io_threads_) {
    thread.join();
  }
  spdlog::info("http server stopped address={}", address_);
}

}  // namespace

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

}  // namespace discovery::http
