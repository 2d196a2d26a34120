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
#include "integration/hostile_rest_fixture.h"
#include "testing/discoveryd_process.h"
#include "testing/http_client.h"
#include "testing/status_matchers.h"

namespace discovery::testing::hostile_rest {
namespace {

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
    EXPECT_EQ(!response.headers.contains("content-type") ? "" : response.headers.at("content-type"),
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

}  // namespace
}  // namespace discovery::testing::hostile_rest
