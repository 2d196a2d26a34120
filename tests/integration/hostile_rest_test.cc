// Hostile REST clients against the real `discoveryd` binary (DISCOVERYD_BINARY, set by CMake) on
// its embedded store (docs/decisions.md D40): oversized bodies, slowloris clients, clients that
// never read, connection floods, malformed JSON and malformed HTTP must never crash the server,
// starve other clients or write anything to the store.
//
// Timing is never asserted beyond generous functional deadlines ("the other client's request
// succeeded within its normal timeout"); observed latencies are printed for the record.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "auth/base64url.h"
#include "testing/discoveryd_process.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

// Debian's abseil has its own string_view type, distinct from std::string_view.
absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

using Json = ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using std::string_literals::operator""s;  // "\0"s keeps its NUL

// What a well-behaved client allows one request; far above what an unloaded server needs.
constexpr absl::Duration kNormalTimeout = absl::Seconds(5);
// The read and write timeouts the slow-client tests give discoveryd, short to keep them short.
constexpr absl::Duration kShortTimeout = absl::Seconds(3);

// ---------------------------------------------------------------------------------------------
// A raw TCP client, for what libcurl will not send: partial, malformed or never-ending requests.

// A parsed HTTP/1.1 response as far as it arrived.
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool complete = false;  // status line, header and the whole Content-Length body arrived
};

RawResponse ParseResponse(std::string_view data) {
  RawResponse response;
  const size_t header_end = data.find("\r\n\r\n");
  if (!data.starts_with("HTTP/1.") || data.size() < 12 || header_end == std::string_view::npos) {
    return response;
  }
  if (!absl::SimpleAtoi(ToAbsl(data.substr(9, 3)), &response.status)) {
    return response;
  }
  std::string_view rest = data.substr(0, header_end);
  rest.remove_prefix(std::min(rest.size(), rest.find("\r\n") + 2));
  while (!rest.empty()) {
    const size_t line_end = std::min(rest.find("\r\n"), rest.size());
    const std::string_view line = rest.substr(0, line_end);
    rest.remove_prefix(std::min(rest.size(), line_end + 2));
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    response.headers[absl::AsciiStrToLower(std::string(line.substr(0, colon)))] =
        std::string(absl::StripAsciiWhitespace(ToAbsl(line.substr(colon + 1))));
  }
  size_t length = 0;
  if (const auto it = response.headers.find("content-length");
      it != response.headers.end() && !absl::SimpleAtoi(it->second, &length)) {
    return response;
  }
  response.body = std::string(data.substr(header_end + 4));
  response.complete = response.body.size() >= length;
  response.body.resize(std::min(response.body.size(), length));
  return response;
}

// One non-blocking socket to 127.0.0.1:port. Not thread-safe.
class RawConnection {
 public:
  // nullptr when the connection cannot be made (the test then fails on it).
  // `receive_buffer` > 0 caps the socket's receive buffer (and so the window it advertises).
  static std::unique_ptr<RawConnection> Open(int port, int receive_buffer = 0) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return nullptr;
    }
    if (receive_buffer > 0) {
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      close(fd);
      return nullptr;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return std::unique_ptr<RawConnection>(new RawConnection(fd));
  }

  ~RawConnection() { close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Sends what the socket takes right now; the number of bytes sent, or -1 once the connection
  // is broken (reset or closed by the peer).
  ssize_t TrySend(std::string_view data) {
    const ssize_t sent = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
    return sent;
  }

  // Sends all of `data` within `timeout`; false when the connection broke or it did not fit.
  bool SendAll(std::string_view data, absl::Duration timeout = kNormalTimeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!data.empty()) {
      const ssize_t sent = TrySend(data);
      if (sent < 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(sent));
      if (!data.empty() && !Wait(POLLOUT, deadline)) {
        return false;
      }
    }
    return true;
  }

  // Reads what has arrived without waiting; false once the peer closed or reset.
  bool Poll() {
    char buffer[16384];
    while (true) {
      const ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
      if (got > 0) {
        received_.append(buffer, static_cast<size_t>(got));
        continue;
      }
      if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        closed_ = true;
      }
      return !closed_;
    }
  }

  // Reads until a complete response arrived, the peer closed or `timeout` passed.
  RawResponse ReadResponse(absl::Duration timeout = kNormalTimeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Poll() && !ParseResponse(received_).complete && Wait(POLLIN, deadline)) {
    }
    return ParseResponse(received_);
  }

  // Reads (and keeps) everything until the peer closes; false when it is still open after
  // `timeout`.
  bool WaitClosed(absl::Duration timeout = kNormalTimeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Poll() && Wait(POLLIN, deadline)) {
    }
    return closed_;
  }

  // Without reading: true once the peer has reset or half-closed the connection.
  bool PeerGone() const {
    pollfd entry{.fd = fd_, .events = POLLRDHUP, .revents = 0};
    return poll(&entry, 1, 0) > 0 && (entry.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  const std::string& received() const { return received_; }
  bool closed() const { return closed_; }

 private:
  explicit RawConnection(int fd) : fd_(fd) {}

  bool Wait(short events, absl::Time deadline) {  // NOLINT(google-runtime-int): poll's type
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return false;
    }
    pollfd entry{.fd = fd_, .events = events, .revents = 0};
    return poll(&entry, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) > 0;
  }

  int fd_;
  std::string received_;
  bool closed_ = false;
};

// Sends `head` and then `body_piece` over and over (up to `body_bytes`, unbounded when 0) while
// reading, until a complete response arrives, the connection breaks or `timeout` passes: a
// client pushing a huge body that the server may refuse at any point.
RawResponse SendWhileReading(RawConnection& connection, const std::string& head,
                             const std::string& body_piece, size_t body_bytes,
                             absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time deadline = absl::Now() + timeout;
  if (!connection.SendAll(head)) {
    return ParseResponse(connection.received());
  }
  size_t sent_body = 0;
  size_t piece_offset = 0;
  bool sending = true;
  while (absl::Now() < deadline) {
    if (!connection.Poll() || ParseResponse(connection.received()).complete) {
      break;
    }
    // The server stops reading once it has answered; the answer matters, not the rest.
    sending =
        sending && connection.received().empty() && (body_bytes == 0 || sent_body < body_bytes);
    if (sending) {
      std::string_view piece = std::string_view(body_piece).substr(piece_offset);
      if (body_bytes != 0) {
        piece = piece.substr(0, body_bytes - sent_body);
      }
      const ssize_t sent = connection.TrySend(piece);
      if (sent < 0) {
        sending = false;
      } else {
        sent_body += static_cast<size_t>(sent);
        piece_offset = (piece_offset + static_cast<size_t>(sent)) % body_piece.size();
      }
      if (sent == 0) {
        absl::SleepFor(absl::Milliseconds(5));
      }
    } else {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  return ParseResponse(connection.received());
}

// ---------------------------------------------------------------------------------------------
// Latency bookkeeping of the well-behaved client.

struct Latencies {
  std::vector<absl::Duration> samples;
  int failures = 0;

  void Print(std::string_view what) {
    std::sort(samples.begin(), samples.end());
    if (samples.empty()) {
      std::cout << "[ latency  ] " << what << ": no successful requests, " << failures
                << " failures\n";
      return;
    }
    std::cout << "[ latency  ] " << what << ": " << samples.size() << " ok, " << failures
              << " failed; min " << absl::FormatDuration(samples.front()) << ", median "
              << absl::FormatDuration(samples[samples.size() / 2]) << ", max "
              << absl::FormatDuration(samples.back()) << "\n";
  }
};

// ---------------------------------------------------------------------------------------------

// The grpc-gateway error shape of a raw or curl response: the status, code and message.
struct ErrorBody {
  int code = -1;
  std::string message;
};

std::optional<ErrorBody> ParseErrorBody(const std::string& body) {
  const Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object() || json.size() != 3 || !json.contains("code") ||
      !json["code"].is_number_integer() || !json.contains("message") ||
      !json["message"].is_string() || json.value("details", Json()) != Json::array()) {
    return std::nullopt;
  }
  return ErrorBody{.code = json["code"].get<int>(), .message = json["message"].get<std::string>()};
}

class HostileRestTest : public ::testing::Test {
 protected:
  // Starts discoveryd with `extra_args`, registers server prom1 (environment=test) and service
  // svc1 on it, so that http_sd has something to serve.
  void StartDaemon(std::vector<std::string> extra_args = {}) {
    absl::StatusOr<std::unique_ptr<DiscoverydProcess>> daemon = DiscoverydProcess::Start(
        {.binary = DISCOVERYD_BINARY, .extra_args = std::move(extra_args)});
    ASSERT_THAT(daemon, IsOk());
    daemon_ = *std::move(daemon);
    absl::StatusOr<std::string> token = daemon_->AdminToken();
    ASSERT_THAT(token, IsOk());
    auth_ = {{"Authorization", "Bearer " + *token}};
    ASSERT_EQ(Post("/v1/servers", R"({"name":"prom1","labels":{"environment":"test"}})"), 200);
    ASSERT_EQ(Post("/v1/services", R"({"name":"svc1","endpoint":"http://svc1.example/metrics",)"
                                   R"("selector":"environment=test"})"),
              200);
  }

  void TearDown() override {
    if (daemon_ != nullptr) {
      EXPECT_TRUE(daemon_->IsRunning()) << daemon_->LogTail();
      // A clean SIGTERM shutdown: no crash, no hang, exit status 0.
      EXPECT_THAT(daemon_->Stop(), IsOk());
    }
  }

  std::string Url(std::string_view path) const { return daemon_->http_url() + std::string(path); }

  // POST with the admin token; the HTTP status, or -1 when the request failed.
  int Post(std::string_view path, const std::string& body, Latencies* latencies = nullptr) {
    const absl::Time start = absl::Now();
    absl::StatusOr<HttpResult> result = HttpRequest(
        "POST", Url(path), body, {auth_[0], {"Content-Type", "application/json"}}, kNormalTimeout);
    return Record(result, start, latencies);
  }

  int Get(std::string_view path, Latencies* latencies = nullptr) {
    const absl::Time start = absl::Now();
    absl::StatusOr<HttpResult> result = HttpRequest("GET", Url(path), "", auth_, kNormalTimeout);
    return Record(result, start, latencies);
  }

  static int Record(const absl::StatusOr<HttpResult>& result, absl::Time start,
                    Latencies* latencies) {
    const int status = result.ok() ? result->status : -1;
    if (latencies != nullptr) {
      if (status == 200) {
        latencies->samples.push_back(absl::Now() - start);
      } else {
        ++latencies->failures;
        std::cout << "[ failed   ] " << (result.ok() ? result->body : result.status().ToString())
                  << "\n";
      }
    }
    return status;
  }

  // Everything the store holds, as the REST API lists it.
  Json Snapshot() {
    Json snapshot = Json::object();
    for (const char* path : {"/v1/servers", "/v1/services", "/v1/namespaces"}) {
      absl::StatusOr<HttpResult> result = HttpRequest("GET", Url(path), "", auth_, kNormalTimeout);
      EXPECT_THAT(result, IsOk());
      if (result.ok()) {
        EXPECT_EQ(result->status, 200) << result->body;
        snapshot[path] = Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
      }
    }
    return snapshot;
  }

  // The head of a raw request to `path` carrying the admin token.
  std::string Head(std::string_view method, std::string_view path,
                   std::string_view extra_headers) const {
    return fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}: {}\r\n{}\r\n", method, path,
                       auth_[0].first, auth_[0].second, extra_headers);
  }

  std::unique_ptr<DiscoverydProcess> daemon_;
  HttpHeaders auth_;
};

// ---------------------------------------------------------------------------------------------
// 1. Oversized bodies.

TEST_F(HostileRestTest, OversizedBodyIs413WithAJsonErrorAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const Json before = Snapshot();
  constexpr size_t kTenMiB = size_t{10} << 20;
  const std::string json_piece =
      R"({"name":"big","endpoint":"http://big/m","description":")" + std::string(64 << 10, 'x');

  const auto expect_413 = [this](const RawResponse& response, RawConnection& connection,
                                 std::string_view what) {
    SCOPED_TRACE(what);
    EXPECT_TRUE(response.complete) << connection.received().substr(0, 300);
    EXPECT_EQ(response.status, 413);
    EXPECT_EQ(
        response.headers.count("content-type") == 0 ? "" : response.headers.at("content-type"),
        "application/json");
    const std::optional<ErrorBody> error = ParseErrorBody(response.body);
    ASSERT_TRUE(error.has_value()) << response.body;
    EXPECT_EQ(error->code, 8);  // ResourceExhausted
    EXPECT_THAT(error->message, HasSubstr("request body too large: the limit is 1048576 bytes"));
    EXPECT_TRUE(connection.WaitClosed()) << "the server kept the connection open";
    std::cout << "[ 413      ] " << what << ": " << response.body << "\n";
    // Meanwhile everybody else is served.
    EXPECT_EQ(Get("/v1/sd/prom1/default"), 200);
  };

  {  // Content-Length announces 10 MiB: refused on the header, before the body is read.
    std::unique_ptr<RawConnection> connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(connection, nullptr);
    const RawResponse response = SendWhileReading(
        *connection,
        Head("POST", "/v1/services",
             fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", kTenMiB)),
        json_piece, kTenMiB);
    expect_413(response, *connection, "Content-Length: 10 MiB");
  }
  {  // Chunked, no Content-Length: refused once the body passes the limit.
    std::unique_ptr<RawConnection> connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(connection, nullptr);
    const std::string chunk = fmt::format("{:x}\r\n{}\r\n", json_piece.size(), json_piece);
    const RawResponse response =
        SendWhileReading(*connection,
                         Head("POST", "/v1/services",
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"),
                         chunk, kTenMiB);
    expect_413(response, *connection, "chunked, 10 MiB");
  }
  {  // Chunked, never ending: the same.
    std::unique_ptr<RawConnection> connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(connection, nullptr);
    const std::string chunk = fmt::format("{:x}\r\n{}\r\n", json_piece.size(), json_piece);
    const RawResponse response = SendWhileReading(
        *connection, Head("POST", "/v1/servers", "Transfer-Encoding: chunked\r\n"), chunk, 0);
    expect_413(response, *connection, "chunked, endless");
  }
  {  // libcurl, which sends Expect: 100-continue and gets the 413 instead of the go-ahead.
    std::string body = json_piece;
    body.resize(kTenMiB, 'x');
    const absl::StatusOr<HttpResult> result =
        HttpRequest("POST", Url("/v1/services"), body + "\"}",
                    {auth_[0], {"Content-Type", "application/json"}}, absl::Seconds(15));
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->status, 413) << result->body;
    const std::optional<ErrorBody> error = ParseErrorBody(result->body);
    ASSERT_TRUE(error.has_value()) << result->body;
    EXPECT_THAT(error->message, HasSubstr("request body too large"));
  }

  EXPECT_EQ(Snapshot(), before) << "a refused body changed the store";
  EXPECT_EQ(Post("/v1/services", R"({"name":"after","endpoint":"http://after.example/m"})"), 200);
}

// ---------------------------------------------------------------------------------------------
// 2. Slow clients.

TEST_F(HostileRestTest, SlowlorisClientsDoNotStarveOthersAndAreClosedAfterTheReadTimeout) {
  const std::string timeout = absl::FormatDuration(kShortTimeout);
  ASSERT_NO_FATAL_FAILURE(
      StartDaemon({"--http-read-timeout=" + timeout, "--http-write-timeout=" + timeout}));
  constexpr int kSlowClients = 220;

  // Half trickle their header, half their body (the header complete, Content-Length 1000), one
  // byte a second each, from one thread.
  struct Slow {
    std::unique_ptr<RawConnection> connection;
    absl::Time opened;
    std::optional<absl::Duration> closed_after;
    int bytes_sent = 0;
  };
  std::vector<Slow> slow(kSlowClients);
  for (int i = 0; i < kSlowClients; ++i) {
    slow[i].connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(slow[i].connection, nullptr) << "slow client " << i;
    slow[i].opened = absl::Now();
    const std::string start =
        i % 2 == 0 ? Head("GET", "/v1/sd/prom1/default", "").substr(0, 40)
                   : Head("POST", "/v1/services", "Content-Length: 1000\r\n") + "{\"name\":";
    ASSERT_TRUE(slow[i].connection->SendAll(start));
  }
  std::atomic<bool> stop{false};
  std::thread trickler([&slow, &stop] {
    while (!stop.load()) {
      for (Slow& client : slow) {
        if (client.closed_after.has_value()) {
          continue;
        }
        if (!client.connection->Poll() || client.connection->TrySend("a") < 0) {
          client.closed_after = absl::Now() - client.opened;
          continue;
        }
        ++client.bytes_sent;
      }
      for (int i = 0; i < 10 && !stop.load(); ++i) {
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
  });

  // Meanwhile a normal client reads http_sd and registers services, for longer than the slow
  // clients are allowed to live.
  Latencies sd;
  Latencies registrations;
  const absl::Time until = absl::Now() + kShortTimeout + absl::Seconds(3);
  for (int i = 0; absl::Now() < until; ++i) {
    EXPECT_EQ(Get("/v1/sd/prom1/default", &sd), 200);
    EXPECT_EQ(Post("/v1/services",
                   fmt::format(R"({{"name":"normal{}","endpoint":"http://n{}/m"}})", i, i),
                   &registrations),
              200);
  }
  sd.Print("http_sd GET while 220 slowloris clients trickle");
  registrations.Print("POST /v1/services while 220 slowloris clients trickle");
  EXPECT_EQ(sd.failures + registrations.failures, 0);

  // Every slow client is disconnected by the server once its read timeout has passed.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline && std::any_of(slow.begin(), slow.end(), [](const Slow& client) {
           return !client.closed_after.has_value();
         })) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  stop.store(true);
  trickler.join();
  absl::Duration first = absl::InfiniteDuration();
  absl::Duration last = absl::ZeroDuration();
  int open = 0;
  int min_bytes = 1 << 30;
  for (const Slow& client : slow) {
    if (!client.closed_after.has_value()) {
      ++open;
      continue;
    }
    first = std::min(first, *client.closed_after);
    last = std::max(last, *client.closed_after);
    min_bytes = std::min(min_bytes, client.bytes_sent);
  }
  EXPECT_EQ(open, 0) << "slow clients the server did not disconnect";
  std::cout << "[ slowloris] " << kSlowClients - open << " of " << kSlowClients
            << " slow clients disconnected by the server " << absl::FormatDuration(first) << " to "
            << absl::FormatDuration(last) << " after they connected (read timeout " << timeout
            << "), each having trickled at least " << min_bytes << " bytes\n";
  EXPECT_EQ(Get("/v1/sd/prom1/default"), 200);
}

TEST_F(HostileRestTest, ClientThatNeverReadsDoesNotBlockOthers) {
  const std::string timeout = absl::FormatDuration(kShortTimeout);
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--http-write-timeout=" + timeout}));

  // Pipelined requests for /metrics (some kB each) whose answers it never reads, with a small
  // receive window: the server's writes stall once the socket buffers are full.
  std::unique_ptr<RawConnection> sink = RawConnection::Open(daemon_->http_port(), 4096);
  ASSERT_NE(sink, nullptr);
  const std::string request = Head("GET", "/metrics", "");
  std::string batch;
  for (int i = 0; i < 64; ++i) {
    batch += request;
  }
  const absl::Time started = absl::Now();
  size_t requests_sent = 0;
  std::optional<absl::Duration> gone_after;
  Latencies others;
  // Keep pushing requests while the server takes them; a normal client works alongside.
  while (absl::Now() - started < absl::Seconds(30)) {
    const ssize_t sent = sink->TrySend(batch);
    if (sent < 0 || sink->PeerGone()) {
      gone_after = absl::Now() - started;
      break;
    }
    if (sent > 0) {
      requests_sent += static_cast<size_t>(sent) / request.size();
    }
    EXPECT_EQ(Get("/v1/sd/prom1/default", &others), 200);
  }
  others.Print("http_sd GET next to a client that never reads");
  EXPECT_EQ(others.failures, 0);
  ASSERT_TRUE(gone_after.has_value()) << "the server never gave up on the client that never reads";
  std::cout << "[ no-read  ] about " << requests_sent
            << " pipelined requests sent; the server dropped the connection "
            << absl::FormatDuration(absl::Now() - started) << " after the first one (write timeout "
            << timeout << ")\n";
  EXPECT_EQ(Post("/v1/services", R"({"name":"after","endpoint":"http://after.example/m"})"), 200);
}

// ---------------------------------------------------------------------------------------------
// 3. Connection floods.

TEST_F(HostileRestTest, ConnectionsBeyondTheLimitAreClosedQuicklyAndServiceResumes) {
  constexpr int kMaxConnections = 50;
  // A long read timeout, so that only the connection limit can explain a quick close.
  ASSERT_NO_FATAL_FAILURE(StartDaemon(
      {fmt::format("--http-max-connections={}", kMaxConnections), "--http-read-timeout=60s"}));

  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < kMaxConnections; ++i) {
    held.push_back(RawConnection::Open(daemon_->http_port()));
    ASSERT_NE(held.back(), nullptr);
  }
  // Until the server has registered them all, a newcomer may still get a slot; afterwards every
  // newcomer must be closed at once.
  std::vector<std::unique_ptr<RawConnection>> extra;
  absl::Duration slowest_close = absl::ZeroDuration();
  int refused = 0;
  constexpr int kExtra = 200;
  for (int i = 0; i < kExtra; ++i) {
    const absl::Time start = absl::Now();
    std::unique_ptr<RawConnection> connection = RawConnection::Open(daemon_->http_port());
    if (connection == nullptr) {
      ++refused;  // refused by the kernel: the backlog is full, which is fine too
      continue;
    }
    const bool closed = connection->WaitClosed(absl::Seconds(5));
    if (closed) {
      slowest_close = std::max(slowest_close, absl::Now() - start);
    }
    if (i >= 10) {  // the first few may race the registration of the held ones
      EXPECT_TRUE(closed) << "connection " << kMaxConnections + i
                          << " beyond the limit stayed open";
    }
    extra.push_back(std::move(connection));
  }
  std::cout << "[ flood    ] " << kMaxConnections << " held; " << extra.size() - refused
            << " extra connections closed by the server within "
            << absl::FormatDuration(slowest_close) << " each (read timeout 60s), " << refused
            << " refused\n";

  // A storm of connections opened and dropped at once, some with half a request.
  for (int i = 0; i < 2000; ++i) {
    std::unique_ptr<RawConnection> connection = RawConnection::Open(daemon_->http_port());
    if (connection != nullptr && i % 2 == 0) {
      connection->TrySend("GET /v1/servers HTTP/1.1\r\nHo");
    }
  }

  held.clear();
  extra.clear();
  Latencies resumed;
  const absl::Time flood_gone = absl::Now();
  bool served = false;
  while (!served && absl::Now() - flood_gone < absl::Seconds(10)) {
    served = HttpRequest("GET", Url("/v1/servers"), "", auth_, absl::Seconds(1)).ok();
  }
  ASSERT_TRUE(served) << "service did not resume once the flood was gone";
  std::cout << "[ flood    ] served again " << absl::FormatDuration(absl::Now() - flood_gone)
            << " after the flood went away\n";
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Get("/v1/sd/prom1/default", &resumed), 200);
  }
  EXPECT_EQ(
      Post("/v1/services", R"({"name":"after","endpoint":"http://after.example/m"})", &resumed),
      200);
  resumed.Print("requests after the flood");
}

// ---------------------------------------------------------------------------------------------
// 4. Malformed JSON bodies.

struct BadBody {
  std::string what;
  std::string body;
  // A part of the error message that names the problem.
  std::string message_part;
};

std::string Nested(char open, char close, int depth, std::string_view inner = "") {
  return std::string(depth, open) + std::string(inner) + std::string(depth, close);
}

// Every route gets these; `field` is a string field of its request.
std::vector<BadBody> CommonBadBodies(const std::string& field) {
  std::string deep_objects;
  for (int i = 0; i < 50000; ++i) {
    deep_objects += R"({"a":)";
  }
  return {
      {"truncated", "{\"" + field + "\":\"x", "invalid string: missing closing quote"},
      {"truncated after colon", "{\"" + field + "\":", "unexpected end of input"},
      {"100k [ unbalanced", std::string(100000, '['), "nested deeper than 32 levels"},
      {"100k [ balanced, unknown field", "{\"x\":" + Nested('[', ']', 100000) + "}",
       "nested deeper than 32 levels"},
      {"100k [ in a known field", "{\"" + field + "\":" + Nested('[', ']', 100000) + "}",
       "nested deeper than 32 levels"},
      {"1 MiB - 1 of [", std::string((1 << 20) - 1, '['), "nested deeper than 32 levels"},
      {"50k nested objects", deep_objects + "1" + std::string(50000, '}'),
       "nested deeper than 32 levels"},
      {"array at the top", "[]", "want a JSON object, got an array"},
      {"string at the top", R"("name")", "want a JSON object, got a string"},
      {"number for a string", "{\"" + field + "\":5}", "invalid value 5"},
      {"object for a string", "{\"" + field + "\":{}}", "want a single value, got an object"},
      {"list for a string", "{\"" + field + "\":[\"a\"]}", "want a single value, got an array"},
      {"invalid UTF-8", "{\"" + field + "\":\"a\xff\"}", "ill-formed UTF-8"},
      {"overlong UTF-8", "{\"" + field + "\":\"\xc0\xaf\"}", "ill-formed UTF-8"},
      {"UTF-16 surrogate in UTF-8", "{\"" + field + "\":\"\xed\xa0\x80\"}", "ill-formed UTF-8"},
      {"lone surrogate escape", "{\"" + field + "\":\"\\ud800\"}", "surrogate"},
      {"invalid UTF-8 in a key", "{\"\xff\":1}", "ill-formed UTF-8"},
      {"number beyond double", "{\"" + field + "\":\"a\",\"x\":1e400}", "number overflow"},
      {"100k digits", "{\"x\":" + std::string(100000, '9') + "}", "number overflow"},
      {"duplicate key", "{\"" + field + "\":\"a\",\"" + field + "\":\"b\"}",
       "duplicate field \"" + field + "\""},
      {"duplicate unknown key", R"({"x":1,"x":2})", "duplicate field \"x\""},
      {"raw NUL in a string", "{\"" + field + "\":\"a\0b\"}"s, "NUL byte at offset "},
      {"NUL after the object", "{\"" + field + "\":\"a\"}\0"s, "NUL byte at offset "},
      {"NUL only", "\0"s, "NUL byte at offset 0"},
      {"single quotes", "{'" + field + "':'a'}", "invalid literal"},
      {"bare key", "{" + field + ":\"a\"}", "invalid literal"},
      {"trailing comma", "{\"" + field + "\":\"a\",}", "expected string literal"},
      {"two documents", "{} {}", "expected end of input"},
      {"comment", "{/* x */}", "invalid literal"},
  };
}

TEST_F(HostileRestTest, MalformedJsonIs400NamingTheProblemAndStoresNothing) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const Json before = Snapshot();

  std::map<std::string, std::vector<BadBody>> routes = {
      {"/v1/servers", CommonBadBodies("name")},
      {"/v1/services", CommonBadBodies("endpoint")},
      {"/v1/namespaces", CommonBadBodies("name")},
      {"/v1/tokens", CommonBadBodies("id")},
  };
  auto add = [&routes](const std::string& route, std::vector<BadBody> bodies) {
    for (BadBody& body : bodies) {
      routes[route].push_back(std::move(body));
    }
  };
  add("/v1/servers",
      {{"list for a map", R"({"name":"p9","labels":["a"]})", "field \"labels\": want an object"},
       {"number in a map", R"({"name":"p9","labels":{"a":1}})", "labels"},
       {"list in a map", R"({"name":"p9","labels":{"a":["b"]}})",
        "field \"labels.a\": want a single value"},
       {"duplicate map key", R"({"name":"p9","labels":{"a":"1","a":"2"}})",
        "duplicate field \"a\""},
       {"map given twice", R"({"name":"p9","labels":{"a":"1"},"labels":{"b":"2"}})",
        "duplicate field \"labels\""},
       {"escaped NUL in the name", R"({"name":"p\u00009"})", "name"}});
  add("/v1/services",
      {{"number for the name", R"({"name":1,"endpoint":"http://e9/m"})", "invalid value 1"},
       {"string for labels", R"({"name":"s9","endpoint":"http://e9/m","labels":"a=b"})",
        "field \"labels\": want an object, got a string"},
       {"escaped NUL in the endpoint", R"({"name":"s9","endpoint":"http://e9/\u0000"})",
        "endpoint"}});
  add("/v1/namespaces",
      {{"string for export", R"({"name":"n9","export":"two"})", "export"},
       {"fraction for export", R"({"name":"n9","export":1.5})", "export"},
       {"export beyond int32", R"({"name":"n9","export":99999999999999999999999999})", "export"},
       {"export beyond int64", R"({"name":"n9","export":-99999999999999999999999999})", "export"},
       {"list for export", R"({"name":"n9","export":[1]})",
        "field \"export\": want a single value, got an array"}});
  add("/v1/tokens", {{"string for a list", R"({"id":"t9","namespaces":"default"})",
                      "field \"namespaces\": want an array, got a string"},
                     {"nested list", R"({"id":"t9","namespaces":[["default"]]})",
                      "field \"namespaces[0]\": want a single value, got an array"},
                     {"number in a list", R"({"id":"t9","namespaces":[1]})", "namespaces"},
                     {"number for expires", R"({"id":"t9","expires":5})", "expires"},
                     {"absurd expires", R"({"id":"t9","expires":"99999999999999999999h"})",
                      "invalid expiry duration"}});

  int checked = 0;
  for (const auto& [route, bodies] : routes) {
    for (const BadBody& bad : bodies) {
      SCOPED_TRACE(route + ": " + bad.what);
      const absl::StatusOr<HttpResult> result =
          HttpRequest("POST", Url(route), bad.body,
                      {auth_[0], {"Content-Type", "application/json"}}, absl::Seconds(10));
      ASSERT_THAT(result, IsOk());
      EXPECT_EQ(result->status, 400) << result->body;
      const std::optional<ErrorBody> error = ParseErrorBody(result->body);
      ASSERT_TRUE(error.has_value()) << result->body;
      EXPECT_EQ(error->code, 3);  // InvalidArgument
      EXPECT_THAT(error->message, HasSubstr(bad.message_part));
      EXPECT_LE(error->message.size(), 400U) << "the message echoes the body";
      std::cout << "[ 400      ] POST " << route << " " << bad.what << ": " << error->message
                << "\n";
      ++checked;
    }
  }
  std::cout << "[ 400      ] " << checked << " malformed bodies refused\n";
  EXPECT_EQ(Snapshot(), before) << "a refused body changed the store";
  EXPECT_EQ(Get("/v1/sd/prom1/default"), 200);
}

// ---------------------------------------------------------------------------------------------
// 5. Malformed request lines and header fields.

TEST_F(HostileRestTest, MalformedRequestLinesAndHeadersAre4xx) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const Json before = Snapshot();
  const std::string deep_jwt_payload =
      auth::Base64UrlEncode("{\"a\":" + Nested('[', ']', 5000) + "}");
  struct BadRequest {
    std::string what;
    std::string request;
    int status;                // 0: any 4xx
    std::string message_part;  // of a JSON error body; "" when not checked
  };
  const std::vector<BadRequest> requests = {
      {"control character in the method", "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400,
       "malformed HTTP request: bad method"},
      {"NUL in the method", "GE\0T / HTTP/1.1\r\nHost: x\r\n\r\n"s, 400, "malformed HTTP request"},
      {"not HTTP at all", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400,
       "malformed HTTP request"},
      {"unknown method", Head("BREW", "/v1/servers", ""), 405, "Method Not Allowed"},
      {"lower-case method", Head("get", "/v1/servers", ""), 405, "Method Not Allowed"},
      {"absurd URL", Head("GET", "/v1/servers/" + std::string(100000, 'a'), ""), 431,
       "request header fields too large: the limit is 16384 bytes"},
      {"long URL under the limit", Head("GET", "/v1/tokens/" + std::string(15000, 'a'), ""), 400,
       "token is not valid"},
      {"bad percent-encoding in the path", Head("DELETE", "/v1/servers/%zz", ""), 400,
       "invalid URL escape \"%zz\""},
      {"truncated percent-encoding", Head("GET", "/v1/sd/prom1/%", ""), 400,
       "invalid URL escape \"%\""},
      {"bad percent-encoding in the query", Head("GET", "/v1/services?namespace=%g0", ""), 400,
       "invalid URL escape \"%g0\""},
      {"percent-encoded NUL", Head("DELETE", "/v1/servers/a%00b", ""), 400, ""},
      {"space in the target", "GET /v1/ser vers HTTP/1.1\r\nHost: x\r\n\r\n", 400,
       "malformed HTTP request"},
      {"absolute-form target", Head("GET", "http://x/v1/servers", ""), 400, ""},
      {"asterisk target", Head("OPTIONS", "*", ""), 400, ""},
      {"bad version", "GET /v1/servers HTTP/9.9\r\nHost: x\r\n\r\n", 400, "malformed HTTP request"},
      {"no version", "GET /v1/servers\r\nHost: x\r\n\r\n", 400, "malformed HTTP request"},
      {"huge header", Head("GET", "/v1/servers", "X-Big: " + std::string(20000, 'a') + "\r\n"), 431,
       "request header fields too large"},
      {"many headers",
       Head("GET", "/v1/servers",
            [] {
              std::string many;
              for (int i = 0; i < 3000; ++i) {
                many += fmt::format("X-{}: a\r\n", i);
              }
              return many;
            }()),
       431, "request header fields too large"},
      {"header without a colon", Head("GET", "/v1/servers", "NoColonHere\r\n"), 400,
       "malformed HTTP request"},
      {"space before the colon", Head("GET", "/v1/servers", "X-Bad : a\r\n"), 400,
       "malformed HTTP request"},
      {"NUL in a header value", Head("GET", "/v1/servers", "X-Nul: a\0b\r\n"s), 400,
       "malformed HTTP request"},
      {"bare CR in a header value", Head("GET", "/v1/servers", "X-Cr: a\rb\r\n"), 400,
       "malformed HTTP request"},
      {"non-numeric Content-Length", Head("POST", "/v1/servers", "Content-Length: abc\r\n"), 400,
       "malformed HTTP request"},
      {"negative Content-Length", Head("POST", "/v1/servers", "Content-Length: -1\r\n"), 400,
       "malformed HTTP request"},
      {"Content-Length beyond 64 bits",
       Head("POST", "/v1/servers", "Content-Length: 99999999999999999999999\r\n"), 400,
       "malformed HTTP request"},
      {"two different Content-Lengths",
       Head("POST", "/v1/servers", "Content-Length: 2\r\nContent-Length: 3\r\n") + "{}x", 400,
       "malformed HTTP request"},
      {"bad chunk size", Head("POST", "/v1/servers", "Transfer-Encoding: chunked\r\n") + "zz\r\n",
       400, "malformed HTTP request"},
      {"chunk size beyond 64 bits",
       Head("POST", "/v1/servers", "Transfer-Encoding: chunked\r\n") + "fffffffffffffffffff\r\n", 0,
       ""},
      {"unknown transfer coding", Head("POST", "/v1/servers", "Transfer-Encoding: gzip\r\n"), 400,
       "malformed HTTP request: unsupported transfer coding"},
      {"chunked not last", Head("POST", "/v1/servers", "Transfer-Encoding: chunked, gzip\r\n"), 400,
       "malformed HTTP request: unsupported transfer coding"},
      {"Content-Length and chunked",
       Head("POST", "/v1/servers", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") +
           "0\r\n\r\n",
       400, "malformed HTTP request"},
      {"control bytes in the bearer token",
       "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x01.\x02.\r\n\r\n", 400,
       "malformed HTTP request: bad value"},
      {"garbage bearer token",
       "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer !!.??.**\r\n\r\n", 401,
       "token"},
      {"deeply nested JWT payload",
       "GET /v1/servers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           auth::Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." + deep_jwt_payload +
           ".c2ln\r\n\r\n",
       401, ""},
  };
  for (const BadRequest& bad : requests) {
    SCOPED_TRACE(bad.what);
    std::unique_ptr<RawConnection> connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(connection, nullptr);
    // The server may answer (and close) before it has read all of a huge request.
    connection->SendAll(bad.request);
    const RawResponse response = connection->ReadResponse();
    ASSERT_TRUE(response.complete) << "no response: " << connection->received().substr(0, 200);
    if (bad.status == 0) {
      EXPECT_GE(response.status, 400) << response.body;
      EXPECT_LT(response.status, 500) << response.body;
    } else {
      EXPECT_EQ(response.status, bad.status) << response.body;
    }
    if (!bad.message_part.empty()) {
      const std::optional<ErrorBody> error = ParseErrorBody(response.body);
      ASSERT_TRUE(error.has_value()) << response.body;
      EXPECT_THAT(error->message, HasSubstr(bad.message_part));
    }
    std::cout << "[ " << response.status << "      ] " << bad.what << ": " << response.body << "\n";
  }
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(Get("/v1/sd/prom1/default"), 200);
}

// ---------------------------------------------------------------------------------------------
// What a second adversarial pass found (docs/decisions.md D40). Each test replays the attack
// against the real binary.

namespace second_pass {

// discoveryd's resident memory as its own /metrics reports it.
double ResidentBytes(const std::string& http_url) {
  absl::StatusOr<HttpResult> metrics = HttpGet(http_url + "/metrics", kNormalTimeout);
  EXPECT_THAT(metrics, IsOk());
  if (!metrics.ok()) {
    return 0;
  }
  for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
    if (absl::ConsumePrefix(&line, "process_resident_memory_bytes ")) {
      double value = 0;
      EXPECT_TRUE(absl::SimpleAtod(line, &value)) << line;
      return value;
    }
  }
  ADD_FAILURE() << "no process_resident_memory_bytes in /metrics";
  return 0;
}

}  // namespace second_pass

// A chunk-size line that never ends was buffered whole (2,000 MiB from one connection grew RSS
// to 2.17 GB, unauthenticated). Now the connection's input buffer is bounded: the attacker gets
// a 400 early, memory stays flat and everyone else is served.
TEST_F(HostileRestTest, EndlessChunkFramingIs400WithBoundedMemory) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  const double before = second_pass::ResidentBytes(daemon_->http_url());
  const std::string piece(64 << 10, 'a');
  constexpr int kAttackers = 16;
  constexpr size_t kAttempted = size_t{64} << 20;  // per attacker, if the server kept reading
  for (const std::string framing : {"2;", "2;ext=", "0000000000", "1\r\na\r\n0\r\nX-T: "}) {
    // Each attacker connects right before it attacks: connected all at once up front, the last
    // ones sat idle while the others were served and, on a loaded machine, could reach the
    // server's read timeout before sending a byte (a test of that timeout, not of framing).
    std::vector<std::unique_ptr<RawConnection>> attackers;
    for (int i = 0; i < kAttackers; ++i) {
      attackers.push_back(RawConnection::Open(daemon_->http_port()));
      ASSERT_NE(attackers.back(), nullptr);
      RawConnection* attacker = attackers.back().get();
      // No token: the attack needs none.
      const RawResponse response = SendWhileReading(
          *attacker,
          "POST /v1/servers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + framing,
          piece, kAttempted);
      ASSERT_TRUE(response.complete) << "framing " << framing << ": " << attacker->received();
      EXPECT_EQ(response.status, 400) << response.body;
      EXPECT_THAT(response.body, HasSubstr("longer than the limit of 20480 bytes"));
      EXPECT_TRUE(attacker->WaitClosed());
    }
    EXPECT_EQ(Get("/v1/servers"), 200);
  }
  const double after = second_pass::ResidentBytes(daemon_->http_url());
  std::cout << "[ framing  ] RSS " << before / (1 << 20) << " MiB before, " << after / (1 << 20)
            << " MiB after 64 endless chunk framings\n";
  // Unbounded, the 64 framings would have added up to 4 GiB; bounded, only the sanitizer's and
  // allocator's churn remains (about 35 MiB under ASan, whose quarantine keeps freed memory).
  EXPECT_LT(after - before, 128.0 * (1 << 20));
  EXPECT_EQ(Get("/v1/sd/prom1/default"), 200);
}

// 4,096 connections × 1 MiB bodies: what all unfinished requests hold is bounded, and a request
// beyond the budget is told to come back instead of being dropped silently.
TEST_F(HostileRestTest, BodiesBeingReceivedAreBoundedAcrossConnections) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--http-max-buffered-body-bytes=4194304"}));
  std::vector<std::unique_ptr<RawConnection>> uploads;
  for (int i = 0; i < 12; ++i) {
    auto upload = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(upload, nullptr);
    ASSERT_TRUE(
        upload->SendAll(Head("POST", "/v1/services",
                             "Content-Type: application/json\r\nContent-Length: 1048576\r\n") +
                        std::string(1000, ' ')));
    uploads.push_back(std::move(upload));
  }
  // A refused upload is answered at once; an accepted one waits for the rest of its body and
  // gets nothing (its read timeout, 10 s, closes it without an answer). So the answers are
  // collected until eight arrived or 6 s passed, however slowly a loaded machine sends them.
  std::vector<bool> answered(uploads.size(), false);
  int refused = 0;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(6);
       refused < 8 && absl::Now() < deadline;) {
    for (size_t i = 0; i < uploads.size(); ++i) {
      if (answered[i]) {
        continue;
      }
      uploads[i]->Poll();
      const RawResponse response = ParseResponse(uploads[i]->received());
      if (!response.complete) {
        continue;
      }
      answered[i] = true;
      EXPECT_EQ(response.status, 503) << response.body;
      EXPECT_EQ(response.headers.at("retry-after"), "1");
      const std::optional<ErrorBody> error = ParseErrorBody(response.body);
      ASSERT_TRUE(error.has_value()) << response.body;
      EXPECT_THAT(error->message, HasSubstr("request bodies being received exceed 4194304 bytes"));
      ++refused;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  // No ninth answer: the four that fit are still being received.
  absl::SleepFor(absl::Milliseconds(200));
  for (size_t i = 0; i < uploads.size(); ++i) {
    if (!answered[i]) {
      uploads[i]->Poll();
      EXPECT_FALSE(ParseResponse(uploads[i]->received()).complete) << "upload " << i;
    }
  }
  // Four fit the 4 MiB budget; the rest were refused.
  EXPECT_EQ(refused, 8);
  EXPECT_EQ(Get("/v1/servers"), 200);
  uploads.clear();
  // Their share comes back once they are gone.
  bool accepted = false;
  for (const absl::Time deadline = absl::Now() + kNormalTimeout;
       !accepted && absl::Now() < deadline;) {
    const std::string body = R"({"name":"big","endpoint":"http://big.example/m","description":")" +
                             std::string(900, 'd') + R"("})";
    accepted = Post("/v1/services", body) == 200;
  }
  EXPECT_TRUE(accepted);
}

TEST_F(HostileRestTest, ConnectionsPerClientAddressAre429WithRetryAfter) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({"--http-max-connections-per-client=5"}));
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(RawConnection::Open(daemon_->http_port()));
    ASSERT_NE(held.back(), nullptr);
    ASSERT_TRUE(held.back()->SendAll(Head("GET", "/v1/servers", "")));
    EXPECT_EQ(held.back()->ReadResponse().status, 200);
  }
  auto sixth = RawConnection::Open(daemon_->http_port());
  ASSERT_NE(sixth, nullptr);
  const RawResponse refused = sixth->ReadResponse();
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.headers.at("retry-after"), "1");
  const std::optional<ErrorBody> error = ParseErrorBody(refused.body);
  ASSERT_TRUE(error.has_value()) << refused.body;
  EXPECT_THAT(error->message, HasSubstr("at most 5 per client address"));
  EXPECT_TRUE(sixth->WaitClosed());
  held.pop_back();
  bool served = false;
  for (const absl::Time deadline = absl::Now() + kNormalTimeout;
       !served && absl::Now() < deadline;) {
    served = Get("/v1/servers") == 200;
  }
  EXPECT_TRUE(served);
}

// 3,000 requests with distinct 4 KB methods added 3,000 series to /metrics.
TEST_F(HostileRestTest, MetricLabelsNeverTakeTheirValueFromARequest) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  for (int i = 0; i < 300; ++i) {
    auto connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(connection, nullptr);
    const std::string method = fmt::format("M{:04d}{}", i, std::string(4000, 'X'));
    ASSERT_TRUE(connection->SendAll(method + " /no/such/path/" + std::to_string(i) +
                                    " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    EXPECT_TRUE(connection->WaitClosed());
  }
  absl::StatusOr<HttpResult> metrics = HttpGet(Url("/metrics"), kNormalTimeout);
  ASSERT_THAT(metrics, IsOk());
  int series = 0;
  for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
    EXPECT_LT(line.size(), 1000U) << line.substr(0, 200);
    if (absl::StartsWith(line, "discovery_http_requests_total{")) {
      ++series;
    }
  }
  EXPECT_LT(series, 20) << metrics->body;
  EXPECT_THAT(metrics->body, HasSubstr(R"(method="other",route="unmatched")"));
  EXPECT_LT(metrics->body.size(), 256U << 10);
}

// With --debug (the harness's default) the access log printed GET /v1/tokens/<token> whole.
TEST_F(HostileRestTest, TokensNeverReachTheLog) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  absl::StatusOr<std::string> token = daemon_->MachineToken("leaky", {"default"});
  ASSERT_THAT(token, IsOk());
  EXPECT_EQ(Get("/v1/tokens/" + *token), 200);
  EXPECT_EQ(Get("/v1/tokens/not-a-token-at-all"), 400);
  const std::string log = daemon_->LogTail(100000);
  EXPECT_THAT(log, HasSubstr("/v1/tokens/*****"));
  EXPECT_THAT(log, Not(HasSubstr(*token)));
  EXPECT_THAT(log, Not(HasSubstr("not-a-token-at-all")));
  // Neither the admin token the requests carried.
  EXPECT_THAT(log, Not(HasSubstr(auth_[0].second.substr(7))));
}

// The data directory and database followed the umask: 0777 under umask 000 let any local user
// replace the token secret or the database.
TEST(HostileLocalUserTest, DataDirectoryIsPrivateWhateverTheUmask) {
  absl::StatusOr<std::string> root = MakeTempDir("discovery-umask");
  ASSERT_THAT(root, IsOk());
  const mode_t old_umask = umask(0);
  const std::string fresh = *root + "/fresh/data";
  absl::StatusOr<std::vector<int>> ports = FreePorts(2);
  ASSERT_THAT(ports, IsOk());
  // Without --token-secret the server creates <data-dir>/token-secret (`token create` never does).
  absl::StatusOr<std::unique_ptr<ChildProcess>> server =
      ChildProcess::Start({.argv = {DISCOVERYD_BINARY, "server", "--data-dir=" + fresh,
                                    fmt::format("--grpc-listen=127.0.0.1:{}", (*ports)[0]),
                                    fmt::format("--http-listen=127.0.0.1:{}", (*ports)[1])},
                           .env = {"HOME=" + *root}},
                          *root + "/server.log");
  const std::string open_dir = *root + "/open";
  std::filesystem::create_directory(open_dir);
  absl::StatusOr<CommandResult> refused =
      RunCommand({.argv = {DISCOVERYD_BINARY, "server", "--data-dir=" + open_dir,
                           "--http-listen=127.0.0.1:0", "--grpc-listen=127.0.0.1:0"},
                  .env = {"HOME=" + *root}},
                 absl::Seconds(30), /*merge_stderr=*/true);
  umask(old_umask);

  ASSERT_THAT(server, IsOk());
  bool ready = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !ready && absl::Now() < deadline && (*server)->IsRunning();) {
    absl::StatusOr<HttpResult> readyz =
        HttpGet(fmt::format("http://127.0.0.1:{}/readyz", (*ports)[1]), absl::Seconds(1));
    ready = readyz.ok() && readyz->status == 200;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(ready) << (*server)->LogTail();
  // `token create` signs with the secret the server made.
  absl::StatusOr<CommandResult> created = RunCommand(
      {.argv = {DISCOVERYD_BINARY, "token", "create", "x", "--admin", "--data-dir=" + fresh},
       .env = {"HOME=" + *root}},
      absl::Seconds(30));
  ASSERT_THAT(created, IsOk());
  EXPECT_TRUE(created->status.success()) << created->err;
  const auto mode = [](const std::string& path) {
    return std::filesystem::status(path).permissions() & std::filesystem::perms::all;
  };
  using std::filesystem::perms;
  EXPECT_EQ(mode(*root + "/fresh"), perms::owner_all);
  EXPECT_EQ(mode(fresh), perms::owner_all);
  EXPECT_EQ(mode(fresh + "/token-secret"), perms::owner_read | perms::owner_write);
  EXPECT_EQ(mode(fresh + "/discovery.db"), perms::owner_read | perms::owner_write);
  for (const char* companion : {"/discovery.db-wal", "/discovery.db-shm"}) {
    if (std::filesystem::exists(fresh + companion)) {
      EXPECT_EQ(mode(fresh + companion), perms::owner_read | perms::owner_write) << companion;
    }
  }
  absl::StatusOr<ExitStatus> stopped = (*server)->Terminate(absl::Seconds(20));
  ASSERT_THAT(stopped, IsOk());
  EXPECT_TRUE(stopped->success());

  ASSERT_THAT(refused, IsOk());
  EXPECT_FALSE(refused->status.success());
  EXPECT_THAT(refused->out, HasSubstr("writable by other users (mode 0777)"));
  EXPECT_THAT(refused->out, HasSubstr("chmod o-w " + open_dir));
  EXPECT_FALSE(std::filesystem::exists(open_dir + "/discovery.db"));
  std::error_code ignored;
  std::filesystem::remove_all(*root, ignored);
}

}  // namespace
}  // namespace discovery::testing
