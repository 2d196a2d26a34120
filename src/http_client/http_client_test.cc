#include "http_client/http_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::http_client {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::SizeIs;

// A request as the test server received it.
struct Received {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::optional<std::string> Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) {
        return value;
      }
    }
    return std::nullopt;
  }
};

// Binds a TCP socket to 127.0.0.1 on a free port; -1 on failure.
int BoundSocket(int* port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(address.sin_port);
  return fd;
}

// An HTTP/1.1 server on 127.0.0.1 that answers each request (one per connection) with the raw
// bytes `respond` returns, and records what it received.
class TestServer {
 public:
  using Responder = std::function<std::string(const Received&)>;

  explicit TestServer(Responder respond) : respond_(std::move(respond)) {
    fd_ = BoundSocket(&port_);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  TestServer(TestServer&&) = delete;
  TestServer& operator=(TestServer&&) = delete;

  std::string Url(std::string_view path = "/") const {
    return fmt::format("http://127.0.0.1:{}{}", port_, path);
  }
  std::vector<Received> received() const {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd poll_fd{.fd = fd_, .events = POLLIN, .revents = 0};
      if (poll(&poll_fd, 1, 20) <= 0) {
        continue;
      }
      const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        continue;
      }
      if (std::optional<Received> request = Read(client); request.has_value()) {
        const std::string response = respond_(*request);
        {
          absl::MutexLock lock(&mu_);
          received_.push_back(*std::move(request));
        }
        WriteAll(client, response);
      }
      close(client);
    }
  }

  static std::optional<Received> Read(int client) {
    std::string data;
    std::size_t header_end = std::string::npos;
    std::size_t content_length = 0;
    std::array<char, 4096> buffer{};
    while (true) {
      if (header_end == std::string::npos) {
        header_end = data.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          const std::string head = absl::AsciiStrToLower(data.substr(0, header_end));
          if (const std::size_t pos = head.find("\r\ncontent-length:"); pos != std::string::npos) {
            content_length = std::stoul(head.substr(pos + 17));
          }
        }
      }
      if (header_end != std::string::npos && data.size() >= header_end + 4 + content_length) {
        break;
      }
      const ssize_t n = recv(client, buffer.data(), buffer.size(), 0);
      if (n <= 0) {
        return std::nullopt;
      }
      data.append(buffer.data(), static_cast<std::size_t>(n));
    }
    Received request;
    request.body = data.substr(header_end + 4, content_length);
    std::string_view head(data.data(), header_end);
    const std::size_t line_end = head.find("\r\n");
    const std::string_view request_line = head.substr(0, line_end);
    const std::size_t space = request_line.find(' ');
    request.method = std::string(request_line.substr(0, space));
    request.target =
        std::string(request_line.substr(space + 1, request_line.rfind(' ') - space - 1));
    head.remove_prefix(line_end == std::string_view::npos ? head.size() : line_end + 2);
    while (!head.empty()) {
      const std::size_t end = head.find("\r\n");
      const std::string_view line = head.substr(0, end);
      const std::size_t colon = line.find(':');
      std::string value(line.substr(colon + 1));
      value.erase(0, value.find_first_not_of(' '));
      request.headers.emplace_back(absl::AsciiStrToLower(std::string(line.substr(0, colon))),
                                   std::move(value));
      head.remove_prefix(end == std::string_view::npos ? head.size() : end + 2);
    }
    return request;
  }

  static void WriteAll(int client, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(client, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  Responder respond_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

std::string Canned(int status, std::string_view reason, std::string_view body,
                   std::string_view extra_headers = "") {
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{}",
                     status, reason, body.size(), extra_headers, body);
}

TEST(HttpClientTest, ReturnsStatusHeadersAndBody) {
  TestServer server([](const Received&) {
    return Canned(201, "Created", R"({"ok":true})",
                  "Content-Type: application/json\r\nX-Trace:  abc \r\n");
  });
  absl::StatusOr<Response> response = Send({.url = server.Url("/path?q=1")});
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, R"({"ok":true})");
  EXPECT_THAT(response->headers, Contains(Pair("Content-Type", "application/json")));
  EXPECT_THAT(response->headers, Contains(Pair("X-Trace", "abc")));
  ASSERT_THAT(server.received(), SizeIs(1));
  EXPECT_EQ(server.received()[0].method, "GET");
  EXPECT_EQ(server.received()[0].target, "/path?q=1");
}

TEST(HttpClientTest, ErrorStatusesAreResponses) {
  TestServer server([](const Received&) { return Canned(503, "Unavailable", "try later"); });
  absl::StatusOr<Response> response = Send({.url = server.Url()});
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->body, "try later");
}

TEST(HttpClientTest, DoesNotFollowRedirects) {
  TestServer server([&](const Received&) {
    return Canned(302, "Found", "", "Location: http://127.0.0.1:1/elsewhere\r\n");
  });
  absl::StatusOr<Response> response = Send({.url = server.Url()});
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 302);
  EXPECT_THAT(response->headers, Contains(Pair("Location", "http://127.0.0.1:1/elsewhere")));
  EXPECT_THAT(server.received(), SizeIs(1));
}

TEST(HttpClientTest, SendsHeadersAndBasicAuth) {
  TestServer server([](const Received&) { return Canned(200, "OK", ""); });
  ASSERT_THAT(Send({.url = server.Url(),
                    .headers = {{"Accept", "application/json"}, {"X-Empty", ""}},
                    .basic_auth = std::make_pair("client", "s3cret:x")}),
              IsOk());
  ASSERT_THAT(server.received(), SizeIs(1));
  const Received got = server.received()[0];
  EXPECT_EQ(got.Header("accept"), "application/json");
  EXPECT_EQ(got.Header("x-empty"), "");
  EXPECT_EQ(got.Header("authorization"), "Basic Y2xpZW50OnMzY3JldDp4");
}

TEST(HttpClientTest, PostsFormBodies) {
  TestServer server([](const Received& request) { return Canned(200, "OK", request.body); });
  const std::string form =
      FormEncode({{"grant_type", "password"}, {"username", "al ice"}, {"password", "p&w=d+%"}});
  EXPECT_EQ(form, "grant_type=password&username=al%20ice&password=p%26w%3Dd%2B%25");
  absl::StatusOr<Response> response =
      Send({.method = "POST",
            .url = server.Url("/token"),
            .headers = {{"Content-Type", "application/x-www-form-urlencoded"}},
            .body = form});
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->body, form);
  ASSERT_THAT(server.received(), SizeIs(1));
  const Received got = server.received()[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.body, form);
  EXPECT_EQ(got.Header("content-type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(got.Header("expect"), std::nullopt);
}

TEST(HttpClientTest, SendsOtherMethods) {
  TestServer server([](const Received&) { return Canned(204, "No Content", ""); });
  ASSERT_THAT(Send({.method = "DELETE", .url = server.Url()}), IsOk());
  ASSERT_THAT(Send({.method = "PUT", .url = server.Url(), .body = "x"}), IsOk());
  ASSERT_THAT(server.received(), SizeIs(2));
  EXPECT_EQ(server.received()[0].method, "DELETE");
  EXPECT_EQ(server.received()[1].method, "PUT");
  EXPECT_EQ(server.received()[1].body, "x");
}

TEST(HttpClientTest, FormEncodeEscapesLikeCurl) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) {
    all_bytes += static_cast<char>(c);
  }
  char* escaped = curl_easy_escape(nullptr, all_bytes.data(), static_cast<int>(all_bytes.size()));
  ASSERT_NE(escaped, nullptr);
  const std::string expected = escaped;
  curl_free(escaped);
  EXPECT_EQ(FormEncode({{all_bytes, all_bytes}}), expected + "=" + expected);
  EXPECT_EQ(FormEncode({}), "");
  EXPECT_EQ(FormEncode({{"a", ""}, {"", "b"}}), "a=&=b");
}

TEST(HttpClientTest, SilentServerTimesOut) {
  // Listening but never accepting: the kernel completes the handshake, no answer ever comes.
  int port = 0;
  const int fd = BoundSocket(&port);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(listen(fd, 4), 0);
  const std::string url = fmt::format("http://127.0.0.1:{}/slow", port);
  const absl::Time start = absl::Now();
  EXPECT_THAT(Send({.url = url, .timeout = absl::Milliseconds(300)}),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr(url)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  close(fd);
}

TEST(HttpClientTest, RefusedConnectionIsUnavailable) {
  // Bound but not listening: connecting is refused, and the port stays ours meanwhile.
  int port = 0;
  const int fd = BoundSocket(&port);
  ASSERT_GE(fd, 0);
  const std::string url = fmt::format("http://127.0.0.1:{}/", port);
  EXPECT_THAT(Send({.url = url}), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(url)));
  close(fd);
}

TEST(HttpClientTest, RefusesOversizedResponses) {
  const std::string big(kMaxResponseBytes + 1, 'x');
  TestServer announced([&](const Received&) { return Canned(200, "OK", big); });
  EXPECT_THAT(Send({.url = announced.Url()}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("larger than")));
  // Without Content-Length the limit applies while reading.
  TestServer streamed(
      [&](const Received&) { return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + big; });
  EXPECT_THAT(Send({.url = streamed.Url()}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("larger than")));
  // Exactly at the limit is fine.
  TestServer at_limit(
      [&](const Received&) { return Canned(200, "OK", std::string(kMaxResponseBytes, 'y')); });
  absl::StatusOr<Response> response = Send({.url = at_limit.Url()});
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->body.size(), kMaxResponseBytes);
}

TEST(HttpClientTest, ExtraCaFile) {
  TestServer server([](const Received&) { return Canned(200, "OK", "fine"); });
  EXPECT_THAT(Send({.url = server.Url(), .ca_cert_file = "/nonexistent/ca.pem"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/nonexistent/ca.pem")));
  // A readable file is combined with the system's bundle (plain HTTP does not use it).
  absl::StatusOr<Response> response =
      Send({.url = server.Url(), .ca_cert_file = "/etc/ssl/certs/ca-certificates.crt"});
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->body, "fine");
}

TEST(HttpClientTest, RefusesUnusableUrls) {
  EXPECT_THAT(Send({.url = "ftp://127.0.0.1/file"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ftp://127.0.0.1/file")));
  EXPECT_THAT(Send({.url = "http://[::1"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(HttpClientTest, ConcurrentSends) {
  TestServer server([](const Received& request) { return Canned(200, "OK", request.target); });
  constexpr int kThreads = 6;
  constexpr int kRequests = 5;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        const std::string path = fmt::format("/t{}/r{}", t, i);
        absl::StatusOr<Response> response = Send({.url = server.Url(path)});
        if (response.ok() && response->body == path) {
          ++ok;
        }
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(ok.load(), kThreads * kRequests);
}

}  // namespace
}  // namespace discovery::http_client
