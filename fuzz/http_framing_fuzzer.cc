// Fuzzes the request framing of discoveryd's HTTP/1.1 server (http/server.h, Boost.Beast): the
// input is written as is to a fresh loopback connection of a real server running in this process
// with small limits, the write side is shut down and the answer is read until the server closes.
// Invariants:
//   - the answer is a sequence of complete HTTP/1.x responses, each with one well-formed status
//     line and a Content-Length body (none for HEAD), 100 Continue only before a final one;
//   - final statuses are 200 (the handler's) or the server's own 400, 413, 429, 431 and 503,
//     which come with `Connection: close` and are the last thing on the connection;
//   - as many 200s as the handler saw requests;
//   - the handler never sees a body over max_body_bytes, a request line and header section over
//     max_header_bytes, or (chunked) trailers beyond what the framing buffer bounds;
//   - the server neither hangs (answer and close within kReadTimeout) nor leaks its budget of
//     request bodies: a POST of max_body_bytes on a new connection still gets 200 afterwards.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fuzz_check.h"

#include "http/server.h"

namespace {

using ::discovery::fuzz::Check;
using ::discovery::http::Request;
using ::discovery::http::Response;
using ::discovery::http::Server;
using ::discovery::http::ServerOptions;

constexpr size_t kMaxHeaderBytes = 1024;
constexpr size_t kMaxBodyBytes = 4096;
constexpr size_t kMaxBufferedBodyBytes = 8192;
// What the server's framing buffer holds at most (http/server.cc, FramingBufferLimit): the
// header bound plus one read. Chunk-size lines and trailers are bounded by it.
constexpr size_t kFramingBufferBytes = kMaxHeaderBytes + 4096;
// Longer than anything the server waits for (its own timeouts are 2 s), shorter than the 10 s
// of `-timeout` that scripts/fuzz.sh passes: a server that neither answers nor closes is an
// invariant violation with a message, not a libFuzzer timeout.
constexpr int kReadTimeoutSeconds = 5;

absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

// What the handler saw of one request.
struct Seen {
  bool head = false;
  bool chunked = false;
  // A lower bound of the bytes the request line and fields took on the wire (every line break
  // counted as one byte, no blanks around values).
  size_t field_bytes = 0;
  size_t body_bytes = 0;
};

class Recorder {
 public:
  void Add(Seen seen) {
    absl::MutexLock lock(&mu_);
    seen_.push_back(seen);
  }
  std::vector<Seen> Take() {
    absl::MutexLock lock(&mu_);
    return std::exchange(seen_, {});
  }

 private:
  absl::Mutex mu_;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
};

Response Handle(Recorder& recorder, const Request& request) {
  Seen seen{.head = request.method == "HEAD", .body_bytes = request.body.size()};
  // "METHOD SP target SP HTTP/1.1 LF", then "name:value LF" per field, then "LF".
  seen.field_bytes = request.method.size() + 1 + request.target.size() + 1 + 8 + 1 + 1;
  for (const auto& [name, value] : request.headers) {
    seen.field_bytes += name.size() + 1 + value.size() + 1;
    // The server refuses every other transfer coding, so a request that has one is chunked.
    seen.chunked = seen.chunked || absl::EqualsIgnoreCase(ToAbsl(name), "Transfer-Encoding");
  }
  Check(request.path == request.target.substr(0, request.target.find('?')),
        "the path is the target up to '?'", request.target);
  Check(request.query.empty() || request.target.ends_with("?" + request.query),
        "the query is the target after '?'", request.target);
  recorder.Add(seen);
  return Response{.status = 200, .headers = {{"Content-Type", "text/plain"}}, .body = "ok\n"};
}

struct Fixture {
  Recorder recorder;
  std::unique_ptr<Server> server;
};

// Started once for all inputs and never stopped: libFuzzer ends the process with exit(), and the
// server's idle threads do not keep it from ending.
Fixture& TheFixture() {
  static Fixture* const fixture = [] {
    auto* created = new Fixture;
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.max_body_bytes = kMaxBodyBytes;
    options.max_header_bytes = kMaxHeaderBytes;
    options.max_buffered_body_bytes = kMaxBufferedBodyBytes;
    options.read_timeout = absl::Seconds(2);
    options.idle_timeout = absl::Seconds(2);
    options.write_timeout = absl::Seconds(2);
    options.worker_threads = 2;
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(std::move(options), [recorder = &created->recorder](const Request& request) {
          return Handle(*recorder, request);
        });
    Check(server.ok(), "the server starts", server.status().message());
    created->server = *std::move(server);
    return created;
  }();
  return *fixture;
}

// Sends `input` on a new connection to the server, shuts the write side down and returns all
// that arrives until the server closes.
std::string Exchange(int port, std::string_view input) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Check(fd >= 0, "socket()");
  const timeval timeout{.tv_sec = kReadTimeoutSeconds, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int connected = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  if (connected != 0 && errno == EINTR) {  // the connection goes on being made
    pollfd writable{.fd = fd, .events = POLLOUT, .revents = 0};
    while (poll(&writable, 1, kReadTimeoutSeconds * 1000) < 0 && errno == EINTR) {
    }
    int error = 0;
    socklen_t length = sizeof(error);
    connected = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0 ? 0 : -1;
  }
  Check(connected == 0, "connect to the server");
  // The server may answer and close before it has read everything (e.g. 431 after the header
  // limit); what it did not read is then lost, which is no concern here.
  for (std::string_view rest = input; !rest.empty();) {
    const ssize_t sent = send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) {
      continue;
    }
    if (sent <= 0) {
      Check(sent == 0 || errno == EPIPE || errno == ECONNRESET, "send did not time out");
      break;
    }
    rest.remove_prefix(static_cast<size_t>(sent));
  }
  shutdown(fd, SHUT_WR);
  std::string answer;
  std::array<char, 16384> chunk{};
  for (;;) {
    const ssize_t received = recv(fd, chunk.data(), chunk.size(), 0);
    if (received > 0) {
      answer.append(chunk.data(), static_cast<size_t>(received));
      continue;
    }
    // libFuzzer's SIGALRM (for -timeout) interrupts socket calls: with a timeout set they are
    // not restarted even under SA_RESTART.
    if (received < 0 && errno == EINTR) {
      continue;
    }
    Check(received == 0 || (errno != EAGAIN && errno != EWOULDBLOCK),
          "the server answers and closes within the read timeout", answer);
    break;  // closed, or reset after an unread remainder
  }
  close(fd);
  return answer;
}

struct ParsedResponse {
  int status = 0;
  bool close = false;
};

// Takes one response off the front of `answer`; `head` says whether it answers a HEAD request
// (no body whatever Content-Length says).
ParsedResponse TakeResponse(std::string_view& answer, bool head, std::string_view whole) {
  const size_t head_end = answer.find("\r\n\r\n");
  Check(head_end != std::string_view::npos, "a response has a complete head", whole);
  const std::string_view response_head = answer.substr(0, head_end + 2);
  const size_t line_end = response_head.find("\r\n");
  const std::string_view status_line = response_head.substr(0, line_end);
  // "HTTP/1.1 200 OK": version, three digits, a reason of visible characters and blanks.
  Check(status_line.size() >= 13 &&
            (status_line.starts_with("HTTP/1.1 ") || status_line.starts_with("HTTP/1.0 ")) &&
            absl::ascii_isdigit(static_cast<unsigned char>(status_line[9])) &&
            absl::ascii_isdigit(static_cast<unsigned char>(status_line[10])) &&
            absl::ascii_isdigit(static_cast<unsigned char>(status_line[11])) &&
            status_line[12] == ' ',
        "a well-formed status line", status_line);
  for (const char c : status_line.substr(13)) {
    Check(c == ' ' || c == '\t' || (c > 0x20 && c < 0x7f), "a printable reason", status_line);
  }
  ParsedResponse parsed;
  Check(absl::SimpleAtoi(ToAbsl(status_line.substr(9, 3)), &parsed.status), "a numeric status");
  // HTTP/1.0 closes after the response unless it says keep-alive.
  const bool http10 = status_line.starts_with("HTTP/1.0 ");
  bool keep_alive = false;

  std::optional<size_t> content_length;
  for (std::string_view rest = response_head.substr(line_end + 2); !rest.empty();) {
    const size_t end = rest.find("\r\n");
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end + 2);
    const size_t colon = line.find(':');
    Check(colon != std::string_view::npos && colon > 0, "a header field has a name", line);
    const absl::string_view name = ToAbsl(line.substr(0, colon));
    const absl::string_view value = absl::StripAsciiWhitespace(ToAbsl(line.substr(colon + 1)));
    if (absl::EqualsIgnoreCase(name, "Content-Length")) {
      Check(!content_length.has_value(), "one Content-Length", response_head);
      size_t length = 0;
      Check(absl::SimpleAtoi(value, &length), "a numeric Content-Length", line);
      content_length = length;
    } else if (absl::EqualsIgnoreCase(name, "Connection")) {
      const std::string tokens = absl::AsciiStrToLower(value);
      parsed.close = parsed.close || absl::StrContains(tokens, "close");
      keep_alive = keep_alive || absl::StrContains(tokens, "keep-alive");
    } else {
      Check(!absl::EqualsIgnoreCase(name, "Transfer-Encoding"), "responses are not chunked",
            response_head);
    }
  }
  parsed.close = parsed.close || (http10 && !keep_alive);
  answer.remove_prefix(head_end + 4);
  if (parsed.status == 100) {
    Check(!content_length.has_value(), "100 Continue has no body", response_head);
    return parsed;
  }
  Check(content_length.has_value(), "a final response has Content-Length", response_head);
  const size_t body = head && parsed.status == 200 ? 0 : *content_length;
  Check(answer.size() >= body, "the whole body arrives", whole);
  answer.remove_prefix(body);
  return parsed;
}

void CheckSeen(const Seen& seen) {
  Check(seen.body_bytes <= kMaxBodyBytes, "the handler never sees a body over max_body_bytes");
  // Beast's header_limit covers the request line and header fields; a chunked body's trailer
  // fields (which Beast adds to the same fields) are bounded only by the framing buffer.
  Check(seen.field_bytes <= kMaxHeaderBytes + (seen.chunked ? kFramingBufferBytes : 0),
        "the handler never sees header fields over max_header_bytes",
        absl::StrCat(seen.field_bytes, " bytes of fields"));
}

// Every response on the connection, as many 200s as handled requests, errors last.
void CheckAnswer(std::string_view whole, const std::vector<Seen>& seen) {
  std::string_view answer = whole;
  size_t handled = 0;
  bool interim = false;
  while (!answer.empty()) {
    const bool head = handled < seen.size() && seen[handled].head;
    const ParsedResponse response = TakeResponse(answer, head, whole);
    if (response.status == 100) {
      Check(!interim, "one 100 Continue per request", whole);
      interim = true;
      continue;
    }
    interim = false;
    switch (response.status) {
      case 200:
        ++handled;
        Check(handled <= seen.size(), "every 200 comes from the handler", whole);
        break;
      case 400:
      case 413:
      case 429:
      case 431:
      case 503:
        Check(response.close, "the server's own errors close the connection", whole);
        break;
      default:
        Check(false, "status is 200, 400, 413, 429, 431 or 503", whole);
    }
    if (response.close) {
      Check(answer.empty(), "nothing follows a response that closes the connection", whole);
    }
  }
  Check(handled == seen.size(), "every handled request is answered", whole);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& fixture = TheFixture();
  const int port = fixture.server->port();
  fixture.recorder.Take();

  const std::string answer =
      Exchange(port, std::string_view(reinterpret_cast<const char*>(data), size));
  const std::vector<Seen> seen = fixture.recorder.Take();
  for (const Seen& request : seen) {
    CheckSeen(request);
  }
  CheckAnswer(answer, seen);

  // Still serving, with the whole body budget of one request available: a connection or a
  // reservation that outlived its request would show here (and add up over the inputs).
  static const std::string probe =
      absl::StrCat("POST /probe HTTP/1.1\r\nHost: fuzz\r\nContent-Length: ", kMaxBodyBytes,
                   "\r\n\r\n", std::string(kMaxBodyBytes, 'p'));
  const std::string probe_answer = Exchange(port, probe);
  Check(probe_answer.starts_with("HTTP/1.1 200 "), "the server still answers 200 afterwards",
        probe_answer);
  const std::vector<Seen> probe_seen = fixture.recorder.Take();
  Check(probe_seen.size() == 1 && probe_seen.front().body_bytes == kMaxBodyBytes,
        "the probe reaches the handler whole");
  return 0;
}
