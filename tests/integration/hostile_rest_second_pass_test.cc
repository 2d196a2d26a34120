// Hostile REST clients: the attacks a second adversarial pass found (docs/decisions.md D40),
// each replayed against the real binary, and a hostile local user.
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
  // The harness's own requests (waiting for the daemon to be ready) count against the limit
  // until the server has seen their connections close, which on a busy machine can come after
  // the first connections below: one refused while filling the limit is tried again.
  std::vector<std::unique_ptr<RawConnection>> held;
  for (const absl::Time deadline = absl::Now() + kNormalTimeout;
       held.size() < 5 && absl::Now() < deadline;) {
    auto connection = RawConnection::Open(daemon_->http_port());
    ASSERT_NE(connection, nullptr);
    if (connection->SendAll(Head("GET", "/v1/servers", "")) &&
        connection->ReadResponse().status == 200) {
      held.push_back(std::move(connection));
    } else {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  ASSERT_EQ(held.size(), 5U);
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
}  // namespace discovery::testing::hostile_rest
