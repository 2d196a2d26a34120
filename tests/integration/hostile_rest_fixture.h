// What the hostile REST client tests share: a raw TCP client for what libcurl will not send, the
// latency record of the well-behaved client, the gateway's error shape and the discoveryd fixture.
#pragma once

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

namespace hostile_rest {

// Debian's abseil has its own string_view type, distinct from std::string_view.
inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

using Json = ::nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using std::string_literals::operator""s;  // "\0"s keeps its NUL

// What a well-behaved client allows one request; far above what an unloaded server needs.
inline constexpr absl::Duration kNormalTimeout = absl::Seconds(5);
// The read and write timeouts the slow-client tests give discoveryd, short to keep them short.
inline constexpr absl::Duration kShortTimeout = absl::Seconds(3);

// ---------------------------------------------------------------------------------------------
// A raw TCP client, for what libcurl will not send: partial, malformed or never-ending requests.

// A parsed HTTP/1.1 response as far as it arrived.
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool complete = false;  // status line, header and the whole Content-Length body arrived
};

inline RawResponse ParseResponse(std::string_view data) {
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
inline RawResponse SendWhileReading(RawConnection& connection, const std::string& head,
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

inline std::optional<ErrorBody> ParseErrorBody(const std::string& body) {
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

}  // namespace hostile_rest
}  // namespace discovery::testing
