// One HTTP/1.1 connection: reading a request within the server's bounds, handing it to the
// handlers and writing the response.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boost/asio/post.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"

#include "common/logging.h"
#include "http/server.h"
#include "http/server_core.h"

namespace discovery::http::server_internal {
namespace {

namespace bhttp = boost::beast::http;
using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kServerName = "discoveryd";
// How much a connection waiting for its next request reads at once.
constexpr size_t kFirstReadBytes = 4096;
// Upper bound on draining a connection we close after an error response (see Linger).
constexpr absl::Duration kLingerTimeout = absl::Seconds(1);
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

// Durations beyond a century mean "never": steady_clock::now() + InfiniteDuration overflows.
SteadyClock::time_point DeadlineAfter(absl::Duration timeout) {
  if (timeout >= absl::Hours(24 * 365 * 100)) {
    return SteadyClock::time_point::max();
  }
  return SteadyClock::now() +
         std::chrono::duration_cast<SteadyClock::duration>(absl::ToChronoNanoseconds(timeout));
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

bool IsValidResponse(const Response& response) {
  if (response.status < 200 || response.status > 599) {
    return false;
  }
  return std::all_of(response.headers.begin(), response.headers.end(), [](const auto& header) {
    return !header.first.empty() && IsHeaderSafe(header.first) && IsHeaderSafe(header.second) &&
           header.first.find_first_of(" \t:") == std::string::npos;
  });
}

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
      stream_.async_handshake(
          ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) {
              LogDebug("http tls handshake failed",
                       {{"remote", self->remote_address_}, {"error", ec.message()}});
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
      LogDebug("http request refused",
               {{"remote", remote_address_}, {"reason", "max_buffered_body_bytes"}});
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
      LogDebug("http malformed request", {{"remote", remote_address_}, {"error", ec.message()}});
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
      if (DebugLogEnabled()) {
        LogDebug("http request", {{"method", request.method},
                                  {"path", request.path},
                                  {"status", std::to_string(quick->status)},
                                  {"remote", request.remote_address},
                                  {"quick", "true"}});
      }
      WriteResponse(*std::move(quick));
      return;
    }
    // The handler may block, so it runs on a worker and never on this I/O thread.
    asio::post(core_.workers(), [self = this->shared_from_this(), request = std::move(request)] {
      if (self->core_.abandoned()) {
        return;
      }
      Response response = self->core_.Invoke(request);
      if (DebugLogEnabled()) {
        LogDebug("http request", {{"method", request.method},
                                  {"path", request.path},
                                  {"status", std::to_string(response.status)},
                                  {"remote", request.remote_address}});
      }
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
      LogError("http handler returned an invalid response",
               {{"status", std::to_string(response.status)}, {"remote", remote_address_}});
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

}  // namespace

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

}  // namespace discovery::http::server_internal
