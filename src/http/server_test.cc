#include "http/server.h"

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

#include "http/server_test_util.h"
#include "testing/status_matchers.h"

namespace discovery::http {
namespace {

TEST(HttpRequestTest, HeaderLookupIsCaseInsensitiveAndReturnsTheFirst) {
  Request request;
  request.headers = {{"Content-Type", "a"}, {"X-Dup", "1"}, {"x-dup", "2"}};

  EXPECT_EQ(request.Header("content-type"), "a");
  EXPECT_EQ(request.Header("X-DUP"), "1");
  EXPECT_EQ(request.Header("missing"), std::nullopt);
}

TEST(HttpServerTest, GetRoundTripCarriesPathQueryAndHeaders) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult result =
      client.Get(Url(*server, "/v1/sd/a%2Fb/c?config=blackbox&x=1"), {"X-Test: hello"});

  ASSERT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 200);
  EXPECT_THAT(result.body, HasSubstr("method=GET\n"));
  EXPECT_THAT(result.body, HasSubstr("path=/v1/sd/a%2Fb/c\n"));
  EXPECT_THAT(result.body, HasSubstr("query=config=blackbox&x=1\n"));
  EXPECT_THAT(result.body, HasSubstr("target=/v1/sd/a%2Fb/c?config=blackbox&x=1\n"));
  EXPECT_THAT(result.body, HasSubstr("x-test=hello"));
  EXPECT_THAT(result.body, HasSubstr("remote=127.0.0.1:"));
  EXPECT_EQ(result.Header("X-Reply"), "yes");
  EXPECT_EQ(result.Header("Content-Type"), "text/plain");
  EXPECT_EQ(result.Header("Server"), "discoveryd");
  EXPECT_EQ(result.Header("Content-Length"), std::to_string(result.body.size()));
}

TEST(HttpServerTest, PostRoundTripCarriesBody) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult result = client.Post(Url(*server, "/v1/services"), R"({"name":"svc"})",
                                  {"Content-Type: application/json"});

  ASSERT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 200);
  EXPECT_THAT(result.body, HasSubstr("method=POST\n"));
  EXPECT_THAT(result.body, HasSubstr("query=\n"));
  EXPECT_THAT(result.body, HasSubstr(R"(body={"name":"svc"})"));
}

TEST(HttpServerTest, ExpectContinueGetsInterimResponseBeforeBody) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send(
      "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  const std::string interim = client.ReadResponse();
  ASSERT_TRUE(client.Send("hello"));
  const std::string final_response = client.ReadResponse();

  EXPECT_EQ(StatusOf(interim), 100);
  EXPECT_EQ(StatusOf(final_response), 200);
  EXPECT_THAT(BodyOf(final_response), HasSubstr("body=hello"));
}

TEST(HttpServerTest, KeepAliveReusesTheConnection) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult first = client.Get(Url(*server, "/one"));
  CurlResult second = client.Get(Url(*server, "/two"));

  ASSERT_EQ(first.code, CURLE_OK);
  ASSERT_EQ(second.code, CURLE_OK);
  EXPECT_EQ(first.new_connections, 1);
  EXPECT_EQ(second.new_connections, 0);
  const auto remote = [](const std::string& body) { return body.substr(body.find("remote=")); };
  EXPECT_EQ(remote(first.body), remote(second.body));
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(
      client.Send("GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\n"
                  "Host: x\r\n\r\n"));
  const std::string first = client.ReadResponse();
  const std::string second = client.ReadResponse();

  EXPECT_THAT(BodyOf(first), HasSubstr("path=/first\n"));
  EXPECT_THAT(BodyOf(second), HasSubstr("path=/second\n"));
}

TEST(HttpServerTest, ConnectionCloseIsHonoured) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 200);
  EXPECT_THAT(response, HasSubstr("Connection: close\r\n"));
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, HandlerConnectionCloseClosesTheConnection) {
  auto server = StartOrDie(LocalOptions(), [](const Request&) {
    return Response{.status = 200, .headers = {{"Connection", "close"}}, .body = "bye"};
  });
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(BodyOf(response), "bye");
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, Http10ConnectionClosesAfterTheResponse) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_THAT(response, StartsWith("HTTP/1.0 200"));
  EXPECT_THAT(BodyOf(response), HasSubstr("path=/old\n"));
  EXPECT_TRUE(client.WaitClosed());
}

TEST(HttpServerTest, HeadResponseHasLengthButNoBody) {
  auto server = StartOrDie(LocalOptions(), [](const Request&) {
    return Response{.status = 200, .headers = {}, .body = "hello world"};
  });
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string response = client.ReadResponse(/*head_request=*/true);

  EXPECT_EQ(StatusOf(response), 200);
  EXPECT_THAT(response, HasSubstr("Content-Length: 11\r\n"));
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_EQ(client.unread(), "");
}

TEST(HttpServerTest, NoContentResponseHasNoBodyOrLength) {
  auto server = StartOrDie(LocalOptions(), [](const Request&) {
    return Response{.status = 204, .headers = {}, .body = "ignored"};
  });
  ASSERT_NE(server, nullptr);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());

  ASSERT_TRUE(client.Send("DELETE /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string response = client.ReadResponse();

  EXPECT_EQ(StatusOf(response), 204);
  EXPECT_THAT(response, Not(HasSubstr("Content-Length")));
  EXPECT_TRUE(client.WaitClosed());
  EXPECT_EQ(client.unread(), "");
}

TEST(HttpServerTest, HandlerExceptionIs500) {
  auto server = StartOrDie(LocalOptions(),
                           [](const Request&) -> Response { throw std::runtime_error("boom"); });
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult result = client.Get(Url(*server, "/"));

  ASSERT_EQ(result.code, CURLE_OK);
  EXPECT_EQ(result.status, 500);
  EXPECT_EQ(result.body, "internal server error\n");
  EXPECT_THAT(result.Header("Content-Type"), StartsWith("text/plain"));
}

TEST(HttpServerTest, QuickHandlerAnswersWithoutTheHandler) {
  std::atomic<int> handled{0};
  std::atomic<int> quick{0};
  ServerOptions options = LocalOptions();
  options.quick_handler = [&quick](const Request& request) -> std::optional<Response> {
    ++quick;
    if (request.path != "/quick") {
      return std::nullopt;
    }
    return Response{.status = 200,
                    .headers = {{"Content-Type", "text/plain"}},
                    .shared_body = std::make_shared<const std::string>("from memory")};
  };
  auto server = StartOrDie(options, CountingEcho(handled));
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult answered = client.Get(Url(*server, "/quick"));
  ASSERT_EQ(answered.code, CURLE_OK);
  EXPECT_EQ(answered.status, 200);
  EXPECT_EQ(answered.body, "from memory");
  EXPECT_EQ(answered.Header("Server"), "discoveryd");
  EXPECT_EQ(handled.load(), 0);

  // Passed on: the Handler answers, on the same keep-alive connection.
  CurlResult passed = client.Get(Url(*server, "/slow?x=1"), {"X-Test: kept"});
  ASSERT_EQ(passed.code, CURLE_OK);
  EXPECT_EQ(passed.status, 200);
  EXPECT_THAT(passed.body, HasSubstr("path=/slow\n"));
  EXPECT_THAT(passed.body, HasSubstr("x-test=kept"));
  EXPECT_EQ(passed.new_connections, 0);
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(quick.load(), 2);

  // HEAD: the length of the shared body, none of its bytes.
  RawClient raw(server->port());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.Send("HEAD /quick HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string head = raw.ReadResponse(/*head_request=*/true);
  EXPECT_EQ(StatusOf(head), 200);
  EXPECT_THAT(head, HasSubstr("Content-Length: 11\r\n"));
  EXPECT_TRUE(raw.WaitClosed());
  EXPECT_EQ(raw.unread(), "");
  EXPECT_EQ(handled.load(), 1);
}

TEST(HttpServerTest, QuickHandlerExceptionIs500) {
  ServerOptions options = LocalOptions();
  options.quick_handler = [](const Request&) -> std::optional<Response> {
    throw std::runtime_error("boom");
  };
  std::atomic<int> handled{0};
  auto server = StartOrDie(options, CountingEcho(handled));
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult result = client.Get(Url(*server, "/"));

  ASSERT_EQ(result.code, CURLE_OK);
  EXPECT_EQ(result.status, 500);
  EXPECT_EQ(result.body, "internal server error\n");
  EXPECT_EQ(handled.load(), 0);
}

TEST(HttpServerTest, InvalidHandlerResponseIs500) {
  auto server = StartOrDie(LocalOptions(), [](const Request& request) {
    if (request.path == "/status") {
      return Response{.status = 101, .headers = {}, .body = ""};
    }
    return Response{.status = 200, .headers = {{"X-Injected", "a\r\nSet-Cookie: b"}}, .body = ""};
  });
  ASSERT_NE(server, nullptr);
  CurlClient client;

  CurlResult injected = client.Get(Url(*server, "/header"));
  CurlResult interim = client.Get(Url(*server, "/status"));

  EXPECT_EQ(injected.status, 500);
  EXPECT_EQ(injected.Header("Set-Cookie"), "");
  EXPECT_EQ(interim.status, 500);
}

TEST(HttpServerTest, ShutdownWaitsForARunningHandler) {
  absl::Notification entered;
  std::atomic<bool> finished{false};
  auto server = StartOrDie(LocalOptions(), [&](const Request& request) {
    entered.Notify();
    absl::SleepFor(absl::Milliseconds(300));
    finished = true;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  CurlResult result;
  std::thread client([&] { result = CurlClient().Get(Url(*server, "/slow")); });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(5)));

  server->Shutdown(absl::Seconds(10));

  EXPECT_TRUE(finished.load());
  client.join();
  EXPECT_EQ(result.code, CURLE_OK) << curl_easy_strerror(result.code);
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.Header("Connection"), "close");
}

TEST(HttpServerTest, ShutdownClosesConnectionsWhenTheGraceRunsOut) {
  absl::Notification entered;
  absl::Notification release;
  auto server = StartOrDie(LocalOptions(), [&](const Request& request) {
    entered.Notify();
    release.WaitForNotification();
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  CurlResult result;
  std::thread client([&] { result = CurlClient().Get(Url(*server, "/stuck")); });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(5)));
  std::atomic<bool> shut_down{false};

  std::thread shutdown([&] {
    server->Shutdown(absl::Milliseconds(200));
    shut_down = true;
  });
  client.join();  // returns once the server closed the connection

  EXPECT_NE(result.code, CURLE_OK);
  EXPECT_FALSE(shut_down.load());  // the handler still runs; its thread is joined
  release.Notify();
  shutdown.join();
  EXPECT_TRUE(shut_down.load());
}

TEST(HttpServerTest, ShutdownClosesIdleConnectionsPromptly) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  CurlClient client;
  ASSERT_EQ(client.Get(Url(*server, "/")).status, 200);  // leaves an idle keep-alive connection
  RawClient silent(server->port());
  ASSERT_TRUE(silent.connected());

  const absl::Time start = absl::Now();
  server->Shutdown(absl::Seconds(30));

  EXPECT_LT(absl::Now() - start, kPromptly);
  EXPECT_TRUE(silent.WaitClosed());
  RawClient late(server->port());
  EXPECT_FALSE(late.connected());
}

TEST(HttpServerTest, ShutdownIsIdempotentAndThreadSafe) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);
  const int port = server->port();

  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int i = 0; i < 4; ++i) {
    callers.emplace_back([&server] { server->Shutdown(absl::Seconds(1)); });
  }
  for (std::thread& caller : callers) {
    caller.join();
  }
  server->Shutdown(absl::ZeroDuration());

  EXPECT_EQ(server->port(), port);
  server.reset();
}

TEST(HttpServerTest, ConcurrentClientsAreAllServed) {
  std::atomic<int> calls{0};
  ServerOptions options = LocalOptions();
  options.io_threads = 2;
  options.worker_threads = 3;
  auto server = StartOrDie(options, CountingEcho(calls));
  ASSERT_NE(server, nullptr);
  constexpr int kClients = 8;
  constexpr int kRequests = 20;
  std::atomic<int> ok{0};

  std::vector<std::thread> clients;
  clients.reserve(kClients);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      CurlClient client;
      for (int r = 0; r < kRequests; ++r) {
        CurlResult result = client.Post(Url(*server, absl::StrCat("/c", c)), std::to_string(r));
        if (result.status == 200 && absl::StrContains(result.body, absl::StrCat("body=", r))) {
          ++ok;
        }
      }
    });
  }
  for (std::thread& client : clients) {
    client.join();
  }

  EXPECT_EQ(ok.load(), kClients * kRequests);
  EXPECT_EQ(calls.load(), kClients * kRequests);
}

TEST(HttpServerTest, PortZeroBindsAnEphemeralPort) {
  auto server = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(server, nullptr);

  EXPECT_GT(server->port(), 0);
  EXPECT_EQ(CurlClient().Get(Url(*server, "/")).status, 200);
}

TEST(HttpServerTest, ListensOnIpv6Loopback) {
  ServerOptions options;
  options.listen = "[::1]:0";
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(options, Echo);
  if (absl::IsUnavailable(server.status())) {
    GTEST_SKIP() << "no IPv6 loopback: " << server.status();
  }
  ASSERT_THAT(server, IsOk());

  CurlResult result = CurlClient().Get(absl::StrCat("http://[::1]:", (*server)->port(), "/"));

  EXPECT_EQ(result.status, 200);
  EXPECT_THAT(result.body, HasSubstr("remote=[::1]:"));
}

TEST(HttpServerTest, EmptyHostListensOnAllInterfaces) {
  ServerOptions options;
  options.listen = ":0";
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);

  CurlResult result = CurlClient().Get(Url(*server, "/"));

  EXPECT_EQ(result.status, 200);
  EXPECT_THAT(result.body, HasSubstr("remote=127.0.0.1:"));
}

TEST(HttpServerTest, BadListenAddressIsInvalidArgument) {
  for (const char* listen :
       {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http",
        "127.0.0.1: 80", "::1:80", "[::1", "[::1]80", "[]:80"}) {
    ServerOptions options;
    options.listen = listen;

    EXPECT_THAT(Server::Start(options, Echo), StatusIs(absl::StatusCode::kInvalidArgument))
        << listen;
  }
}

TEST(HttpServerTest, InvalidOptionsAreInvalidArgument) {
  ServerOptions no_io = LocalOptions();
  no_io.io_threads = 0;
  ServerOptions no_workers = LocalOptions();
  no_workers.worker_threads = 0;
  ServerOptions no_timeout = LocalOptions();
  no_timeout.read_timeout = absl::ZeroDuration();

  EXPECT_THAT(Server::Start(no_io, Echo), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Server::Start(no_workers, Echo), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Server::Start(no_timeout, Echo), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Server::Start(LocalOptions(), nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(HttpServerTest, AddressInUseIsUnavailable) {
  auto first = StartOrDie(LocalOptions(), Echo);
  ASSERT_NE(first, nullptr);
  ServerOptions options;
  options.listen = absl::StrCat("127.0.0.1:", first->port());

  EXPECT_THAT(Server::Start(options, Echo), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace discovery::http
