// An asynchronous HTTP/1.1 server (Boost.Beast/Asio behind a pimpl) that hands every complete
// request to one Handler on a worker pool, unless an optional QuickHandler answers it on the
// I/O thread. Transport only: routing, the REST API, http_sd,
// /metrics and the health endpoints are built on top of it by callers.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery::http {

// A complete request as received. Owned by the server; valid for the duration of the Handler
// call only.
struct Request {
  // As sent, e.g. "GET"; the server does not restrict methods.
  std::string method;
  // The raw request-target, e.g. "/v1/sd/a/b?config=blackbox".
  std::string target;
  // `target` before the first '?', still percent-encoded.
  std::string path;
  // `target` after the first '?' without it; "" when there is none.
  std::string query;
  // In the order received, names as sent (not case-folded).
  std::vector<std::pair<std::string, std::string>> headers;
  // De-chunked when the client used chunked transfer coding.
  std::string body;
  // The peer as "ip:port" ("[ip]:port" for IPv6); "" when the socket could not tell.
  std::string remote_address;

  // The value of the first header named `name` (ASCII case-insensitive); nullopt when absent.
  // The view points into `headers`.
  std::optional<std::string_view> Header(std::string_view name) const;
};

struct Response {
  // 200-599; anything else is answered with 500 (and logged) since 1xx cannot end a request.
  int status = 200;
  // Sent as given (e.g. Content-Type, ETag). The server owns message framing: Content-Length
  // and Transfer-Encoding given here are ignored; it adds `Server: discoveryd` unless a Server
  // header is present; `Connection: close` here closes the connection after the response.
  // A name or value containing CR, LF or NUL turns the response into a 500.
  std::vector<std::pair<std::string, std::string>> headers;
  // Dropped (Content-Length kept) for HEAD requests and never sent with 204 and 304.
  std::string body;
  // When set, sent instead of `body` straight from this buffer, without a copy: a cached body
  // shared by every answer that sends it. It is kept alive until written.
  std::shared_ptr<const std::string> shared_body;
};

// Called on a worker thread, concurrently for different connections, so it must be
// thread-safe. May block (e.g. on a store). An exception it throws becomes a 500 with a short
// plain-text body and is logged at error.
using Handler = std::function<Response(const Request&)>;

// Answers, right on the I/O thread that read the request, what can be answered from memory
// without blocking (e.g. a cached body for a caller whose credentials are cached too), saving
// the hand-off to a worker and back; nullopt passes the request on to the Handler. It must be
// quick, must never block (no I/O, no waiting on locks held for long) and must be thread-safe.
// An exception it throws becomes a 500 as for the Handler.
using QuickHandler = std::function<std::optional<Response>(const Request&)>;

// Renders the answers the server gives by itself, for requests that never reach the Handler:
// 400 for a malformed request, 413 for a body over max_body_bytes, 431 for header fields over
// max_header_bytes, 429 and 503 (with `Retry-After`) for connections and bodies beyond the
// server's bounds. `message` says what is wrong, e.g. "request body too large: the limit is
// 1048576 bytes". Runs on an I/O thread, so it must be quick and must not block. The response is
// sent with `status` whatever it says, and the connection is closed after it.
using ErrorRenderer = std::function<Response(int status, std::string_view message)>;

struct TlsOptions {
  // PEM certificate chain, leaf first.
  std::string cert_file;
  // PEM private key matching the leaf certificate.
  std::string key_file;
};

// Thread counts that follow the machine's cores (std::thread::hardware_concurrency): I/O gets
// half the cores (1 to 8), since a request costs it little; the Handler gets two threads per
// core (4 to 64), since handlers may block on the store. On 2 cores: 1 and 4. Thread-safe.
int DefaultIoThreads();
int DefaultWorkerThreads();

struct ServerOptions {
  // "host:port", "[v6-address]:port" or ":port" (all interfaces, IPv6 and IPv4 where the host
  // supports dual-stack sockets). Port 0 binds an ephemeral port (see Server::port()). A host
  // name is resolved once at Start; the first IPv4 address wins, as for Go's net.Listen.
  std::string listen = "localhost:3002";
  // A request announcing or sending a larger body is answered with 413 and the connection is
  // closed.
  size_t max_body_bytes = 1 << 20;
  // Request line plus header fields; larger is answered with 431 and the connection is closed.
  // A connection never buffers more than this plus one read (4 KiB) of unparsed input, so a
  // chunk-size line (with its extensions) or the trailer section of a chunked body that does
  // not fit that is answered with 400.
  size_t max_header_bytes = 16 << 10;
  // The whole request (header and body) must arrive within this, counted from its first byte
  // (from the accept, including the TLS handshake, for the first request of a connection);
  // otherwise the connection is closed without a response.
  absl::Duration read_timeout = absl::Seconds(10);
  // How long a keep-alive connection may wait for the first byte of its next request.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Sending one response (or a 100 Continue) must finish within this.
  absl::Duration write_timeout = absl::Seconds(10);
  // Threads doing socket I/O. They never run the Handler (only the QuickHandler), so slow
  // handlers cannot stall I/O.
  int io_threads = DefaultIoThreads();
  // Threads running the Handler. Requests beyond this wait in a queue; each connection has at
  // most one request in flight.
  int worker_threads = DefaultWorkerThreads();
  // Connections beyond this are answered 503 with `Retry-After` and closed, without reading a
  // request.
  size_t max_connections = 4096;
  // Connections from one client IP address at most; more are answered 429 with `Retry-After`
  // and closed, so one host cannot take every connection.
  size_t max_connections_per_client = 256;
  // Request bodies being received, summed over all connections, at most: a request whose body
  // would take the total beyond it is answered 503 with `Retry-After` and closed. With the
  // framing bound below this caps what unfinished requests hold in memory.
  size_t max_buffered_body_bytes = 64 << 20;
  // Serve HTTPS (TLS 1.2 and later) instead of plain HTTP.
  std::optional<TlsOptions> tls;
  // How the server's own error answers look; empty: text/plain with the message. A renderer
  // that throws falls back to that too.
  ErrorRenderer error_renderer;
  // Tried first for every complete request; empty: every request goes to the Handler.
  QuickHandler quick_handler;
};

// A running server. Owns its threads; every method is thread-safe.
class Server {
 public:
  // Binds, listens and starts serving on threads owned by the returned object; `handler` is
  // called until Shutdown returns.
  // InvalidArgument for an empty `handler`, a malformed or unresolvable `listen`, non-positive
  // thread counts, timeouts or max_connections, and TLS files that cannot be read, are not PEM
  // or do not match; Unavailable when the address cannot be bound (in use, not local, not
  // permitted); Internal when the system refuses resources (threads, sockets).
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Handler handler);

  // Shutdown(absl::ZeroDuration()) unless already shut down.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  Server(Server&&) = delete;
  Server& operator=(Server&&) = delete;

  // The bound port, also after Shutdown; useful with port 0.
  int port() const;

  // Stops accepting and closes connections waiting for a request. Requests already arriving or
  // being handled may finish (their connection then closes) for up to `grace`; after that every
  // connection is closed and queued requests are dropped without calling the handler. Returns
  // once all threads are joined, which includes waiting for handler calls still running: a
  // handler that never returns blocks Shutdown. Idempotent; concurrent callers all return after
  // the first one has finished. Must not be called from the handler (it would join its own
  // thread).
  void Shutdown(absl::Duration grace);

 private:
  class Impl;
  explicit Server(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace discovery::http
