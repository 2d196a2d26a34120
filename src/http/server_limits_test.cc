// The HTTP server against oversized, malformed, slow and too many clients: its limits, its
// timeouts and the answers it gives when they are reached.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "curl/curl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

#include "http/server.h"
#include "http/server_test_util.h"
#include "testing/status_matchers.h"

namespace discovery::http {
namespace {

TEST(HttpServerTest, BodyOverLimitIs413) {
  std::atomic<int> calls{0};
  ServerOptions options = LocalOptions();
  options.max_body_bytes = 1024;
  auto server = StartOrDie(options, CountingEcho(calls));
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult result = client.Post(Url(*server, "/big"), std::string(4096, 'x'));
  CurlResult within = client.Post(Url(*server, "/small"), std::string(1024, 'x'));

  ASSERT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 413);
  EXPECT_EQ(result.Header("Connection"), "close");
  EXPECT_EQ(within.status, 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, AnnouncedBodyOverLimitIs413AndCloses) {
  ServerOptions options = LocalOptions();
  options.max_body_bytes = 1024;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 413);
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, ChunkedBodyOverLimitIs413) {
  ServerOptions options = LocalOptions();
  options.max_body_bytes = 1024;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  ASSERT_TRUE(client.Send(absl::StrCat("800\r\n", std::string(0x800, 'x'), "\r\n")));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 413);
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, HeaderOverLimitIs431) {
  ServerOptions options = LocalOptions();
  options.max_header_bytes = 1024;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult result = client.Get(Url(*server, "/"), {"X-Big: " + std::string(4096, 'a')});
  CurlResult small = client.Get(Url(*server, "/"), {"X-Small: a"});

  ASSERT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 431);
  EXPECT_EQ(small.status, 200);
}

TEST(HttpServerTest, HeaderOverLimitClosesTheConnection) {
  ServerOptions options = LocalOptions();
  options.max_header_bytes = 1024;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send(
      absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(2048, 'a'), "\r\n\r\n")));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 431);
  EXPECT_TRUE(client.WaitClosed());
}

// fuzz/corpus/http_framing/header_section_over_limit: Beast's header_limit bounds the request
// line and the header fields apart when they arrive in one read, so 1037 bytes of a 16-byte
// request line and 1021 of fields reached the handler under a limit of 1024.
TEST(HttpServerTest, RequestLineAndFieldsOverLimitTogetherAre431) {
  std::atomic<int> calls{0};
  ServerOptions options = LocalOptions();
  options.max_header_bytes = 1024;
  auto server = StartOrDie(options, CountingEcho(calls));
  ASSERT_NE(server, nullptr);
  // "GET / HTTP/1.1\r\n" + "Host: x\r\n" + "X-Long: ...\r\n" + "\r\n".
  const auto request = [](size_t header_bytes) {
    return absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Long: ",
                        std::string(header_bytes - 16 - 9 - 10 - 2, 'h'), "\r\n\r\n");
  };
  ASSERT_EQ(request(1037).size(), 1037U);

  RawClient over(server->port());
  ASSERT_TRUE(over.Send(request(1037)));
  const std::string response = over.ReadResponse();
  EXPECT_EQ(StatusOf(response), 431) << response;
  EXPECT_TRUE(over.WaitClosed());
  EXPECT_EQ(calls.load(), 0);

  RawClient at_limit(server->port());
  ASSERT_TRUE(at_limit.Send(request(1024)));
  EXPECT_EQ(StatusOf(at_limit.ReadResponse()), 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, MalformedRequestIs400AndCloses) {
  std::atomic<int> calls{0};
  auto server = StartOrDie(LocalOptions(), CountingEcho(calls));
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("THIS IS NOT HTTP\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 400);
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, ErrorMessagesNameTheLimit) {
  ServerOptions options = LocalOptions();
  options.max_body_bytes = 1024;
  options.max_header_bytes = 2048;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient body(server->port());
  RawClient header(server->port());
  RawClient malformed(server->port());

  ASSERT_TRUE(body.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n"));
  ASSERT_TRUE(header.Send(
      absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(4096, 'a'), "\r\n\r\n")));
  ASSERT_TRUE(malformed.Send("GET / HTTP/1.1\r\nNo colon\r\n\r\n"));

  const std::string too_large = body.ReadResponse();
  EXPECT_EQ(StatusOf(too_large), 413);
  EXPECT_THAT(too_large, HasSubstr("text/plain"));
  EXPECT_EQ(BodyOf(too_large), "request body too large: the limit is 1024 bytes\n");
  EXPECT_EQ(BodyOf(header.ReadResponse()),
            "request header fields too large: the limit is 2048 bytes for the request line and "
            "header fields\n");
  EXPECT_EQ(BodyOf(malformed.ReadResponse()), "malformed HTTP request: bad field\n");
}

TEST(HttpServerTest, ErrorRendererShapesTheServersOwnAnswers) {
  std::atomic<int> calls{0};
  ServerOptions options = LocalOptions();
  options.max_body_bytes = 1024;
  options.error_renderer = [&calls](int status, std::string_view message) {
    ++calls;
    // A status of its own is overridden: the server decides the status.
    return Response{
        .status = 500,
        .headers = {{"Content-Type", "application/json"}},
        .body = absl::StrCat(R"({"status":)", status, R"(,"message":")", ToAbsl(message), R"("})")};
  };
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());

  ASSERT_TRUE(client.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 413);
  EXPECT_THAT(response, HasSubstr("application/json"));
  EXPECT_EQ(BodyOf(response),
            R"({"status":413,"message":"request body too large: the limit is 1024 bytes"})");
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, ThrowingErrorRendererFallsBackToPlainText) {
  ServerOptions options = LocalOptions();
  options.error_renderer = [](int, std::string_view) -> Response {
    throw std::runtime_error("renderer broke");
  };
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());

  ASSERT_TRUE(client.Send("NOT HTTP\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 400);
  EXPECT_THAT(BodyOf(response), StartsWith("malformed HTTP request: "));
}

// Beast reads a request with an unknown transfer coding as one without a body and would take
// what follows for the next request: a request smuggled past a proxy that reads it otherwise.
TEST(HttpServerTest, TransferCodingOtherThanFinalChunkedIs400AndCloses) {
  for (const std::string coding : {"gzip", "chunked, gzip", "identity"}) {
    SCOPED_TRACE(coding);
    std::atomic<int> calls{0};
    auto server = StartOrDie(LocalOptions(), CountingEcho(calls));
    ASSERT_NE(server, nullptr);
    RawClient client(server->port());

    ASSERT_TRUE(
        client.Send(absl::StrCat("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ", coding,
                                 "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")));
    const std::string response = client.ReadResponse();

    EXPECT_EQ(StatusOf(response), 400);
    EXPECT_THAT(BodyOf(response), HasSubstr("unsupported transfer coding"));
    EXPECT_TRUE(client.WaitClosed());
    EXPECT_EQ(calls.load(), 0);
  }
}

TEST(HttpServerTest, ReadTimeoutClosesASilentConnection) {
  ServerOptions options = LocalOptions();
  options.read_timeout = absl::Milliseconds(200);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, ReadTimeoutClosesAConnectionWithAPartialRequest) {
  ServerOptions options = LocalOptions();
  options.read_timeout = absl::Milliseconds(200);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  CurlClient curl;
  ASSERT_EQ(curl.Get(Url(*server, "/")).status, 200);  // the timeout is not too short to serve
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));

  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, ReadTimeoutAppliesToLaterRequestsOfAKeepAliveConnection) {
  ServerOptions options = LocalOptions();
  options.read_timeout = absl::Milliseconds(200);
  options.idle_timeout = absl::Seconds(30);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(StatusOf(client.ReadResponse()), 200);

  ASSERT_TRUE(client.Send("GET /second HTTP/1.1\r\nHo"));

  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, IdleTimeoutClosesAKeepAliveConnection) {
  ServerOptions options = LocalOptions();
  options.idle_timeout = absl::Milliseconds(200);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(StatusOf(client.ReadResponse()), 200);

  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, SlowAndIdleClientsDoNotStarveANormalClient) {
  ServerOptions options = LocalOptions();
  options.io_threads = 1;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawClient>> idle;
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 25; ++i) {
    idle.push_back(std::make_unique<RawClient>(server->port()));
    slow.push_back(std::make_unique<RawClient>(server->port()));
    ASSERT_TRUE(idle.back()->connected());
    ASSERT_TRUE(slow.back()->connected());
  }
  // Slowloris: every slow client trickles a never-ending header, one byte at a time.
  absl::Notification trickling;
  std::jthread trickle([&slow, &trickling](const std::stop_token& stop) {
    const std::string header = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (size_t i = 0; !stop.stop_requested(); ++i) {
      const char byte = i < header.size() ? header[i] : "X-A: b\r\n"[(i - header.size()) % 8];
      for (auto& client : slow) {
        client->Send(std::string_view(&byte, 1));
      }
      if (i == 0) {
        trickling.Notify();
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  // The normal client comes while every slow one is in the middle of its request.
  trickling.WaitForNotification();
  CurlClient client;

  const absl::Time start = absl::Now();
  CurlResult result = client.Get(Url(*server, "/normal"));
  const absl::Duration elapsed = absl::Now() - start;

  EXPECT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 200);
  EXPECT_LT(elapsed, kPromptly);
}

TEST(HttpServerTest, BlockedHandlerDoesNotStallOtherConnections) {
  absl::Notification entered;
  absl::Notification release;
  ServerOptions options = LocalOptions();
  options.io_threads = 1;
  options.worker_threads = 2;
  auto server = StartOrDie(options, [&](const Request& request) {
    if (request.path == "/block") {
      entered.Notify();
      release.WaitForNotification();
    }
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  CurlResult blocked;
  std::thread blocked_client([&] { blocked = CurlClient().Get(Url(*server, "/block")); });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(5)));
  CurlClient client;

  CurlResult fast = client.Get(Url(*server, "/fast"));

  EXPECT_EQ(fast.status, 200);
  release.Notify();
  blocked_client.join();
  EXPECT_EQ(blocked.status, 200);
}

TEST(HttpServerTest, ConnectionsBeyondTheLimitAreAnswered503WithRetryAfter) {
  ServerOptions options = LocalOptions();
  options.max_connections = 2;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  auto first = std::make_unique<RawClient>(server->port());
  RawClient second(server->port());
  ASSERT_TRUE(first->connected());
  ASSERT_TRUE(second.connected());

  RawClient third(server->port());
  ASSERT_TRUE(third.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string refused = third.ReadResponse();
  EXPECT_EQ(StatusOf(refused), 503) << refused;
  EXPECT_EQ(HeaderOf(refused, "Retry-After"), "1");
  EXPECT_THAT(BodyOf(refused), HasSubstr("2 connections are open"));
  EXPECT_TRUE(third.WaitClosed());
  // The refused connection did not take one of the two slots.
  ASSERT_TRUE(second.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(StatusOf(second.ReadResponse()), 200);

  first.reset();  // frees a slot once the server notices
  bool served = false;
  for (const absl::Time deadline = absl::Now() + kPromptly; !served && absl::Now() < deadline;) {
    RawClient next(server->port());
    served = next.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n") &&
             StatusOf(next.ReadResponse(false, absl::Milliseconds(200))) == 200;
  }
  EXPECT_TRUE(served);
}

TEST(HttpServerTest, ConnectionsPerClientAddressAreBounded) {
  ServerOptions options = LocalOptions();
  options.max_connections_per_client = 2;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient first(server->port());
  RawClient second(server->port());
  ASSERT_TRUE(first.connected() && second.connected());
  // Both are registered once they have been served.
  for (RawClient* client : {&first, &second}) {
    ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_EQ(StatusOf(client->ReadResponse()), 200);
  }

  RawClient third(server->port());
  const std::string refused = third.ReadResponse();
  EXPECT_EQ(StatusOf(refused), 429) << refused;
  EXPECT_EQ(HeaderOf(refused, "Retry-After"), "1");
  EXPECT_THAT(BodyOf(refused), HasSubstr("at most 2 per client address"));
  EXPECT_TRUE(third.WaitClosed());
}

// A chunk-size line is framing that Beast buffers until its CRLF; without a bound on the
// connection's buffer one client could grow the server's memory without limit.
TEST(HttpServerTest, OverlongChunkSizeLineIs400AndTheServerServesOthers) {
  std::atomic<int> calls{0};
  ServerOptions options = LocalOptions();
  options.max_header_bytes = 1024;
  auto server = StartOrDie(options, CountingEcho(calls));
  ASSERT_NE(server, nullptr);
  RawClient attacker(server->port());
  ASSERT_TRUE(attacker.connected());

  ASSERT_TRUE(attacker.Send(
      "POST /v1/servers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;"));
  // Far more than the buffer may hold; the server must answer before it has read it all.
  bool sent_all = true;
  for (int i = 0; i < 256 && sent_all; ++i) {
    sent_all = attacker.Send(std::string(64 << 10, 'a'));
  }
  const std::string response = attacker.ReadResponse();
  EXPECT_EQ(StatusOf(response), 400) << response;
  EXPECT_THAT(BodyOf(response), HasSubstr("chunk-size line or the trailer section"));
  EXPECT_TRUE(attacker.WaitClosed(absl::Seconds(5)));
  EXPECT_EQ(calls.load(), 0);

  CurlClient other;
  EXPECT_EQ(other.Get(Url(*server, "/")).status, 200);
}

TEST(HttpServerTest, OverlongTrailerSectionIs400) {
  ServerOptions options = LocalOptions();
  options.max_header_bytes = 1024;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(
      client.Send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "1\r\nx\r\n0\r\n"));
  bool sent_all = true;
  for (int i = 0; i < 64 && sent_all; ++i) {
    sent_all = client.Send(absl::StrCat("X-Trailer-", i, ": ", std::string(1000, 'b'), "\r\n"));
  }
  const std::string response = client.ReadResponse();
  EXPECT_EQ(StatusOf(response), 400) << response;
  EXPECT_TRUE(client.WaitClosed(absl::Seconds(5)));
}

TEST(HttpServerTest, BodiesBeyondTheServersBudgetAre503WithRetryAfter) {
  ServerOptions options = LocalOptions();
  options.max_body_bytes = 64 << 10;
  options.max_buffered_body_bytes = 100 << 10;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  // Two uploads in progress announce 2 × 48 KiB; a third announcing 48 KiB does not fit.
  RawClient first(server->port());
  RawClient second(server->port());
  ASSERT_TRUE(first.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 49152\r\n\r\nabc"));
  ASSERT_TRUE(second.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 49152\r\n\r\nabc"));
  // The server has taken both headers once a third, chunked upload is refused as it grows.
  std::string refused;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(5);
       StatusOf(refused) != 503 && absl::Now() < deadline;) {
    RawClient third(server->port());
    third.Send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    third.Send(absl::StrCat("C000\r\n", std::string(0xC000, 'x'), "\r\n"));
    refused = third.ReadResponse(false, absl::Seconds(1));
  }
  EXPECT_EQ(StatusOf(refused), 503) << refused;
  EXPECT_EQ(HeaderOf(refused, "Retry-After"), "1");
  EXPECT_THAT(BodyOf(refused), HasSubstr("request bodies being received exceed 102400 bytes"));

  // Once the uploads finish their share is free again.
  ASSERT_TRUE(first.Send(std::string(49152 - 3, 'y')));
  EXPECT_EQ(StatusOf(first.ReadResponse()), 200);
  ASSERT_TRUE(second.Send(std::string(49152 - 3, 'y')));
  EXPECT_EQ(StatusOf(second.ReadResponse()), 200);
  CurlClient after;
  EXPECT_EQ(after.Post(Url(*server, "/"), std::string(49152, 'z')).status, 200);
}

}  // namespace
}  // namespace discovery::http
