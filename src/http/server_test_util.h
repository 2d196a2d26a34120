// What the HTTP server's tests share: a server on a loopback port, an echoing handler, a curl
// client and a raw socket client for what curl will not send.
#pragma once

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

#include "http/server.h"
#include "testing/status_matchers.h"

namespace discovery::http {

// The names the HTTP server's tests use unqualified.
using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

inline absl::string_view ToAbsl(std::string_view s) { return {s.data(), s.size()}; }

// Generous: only a server that is actually stuck exceeds it.
inline constexpr absl::Duration kPromptly = absl::Seconds(2);

inline ServerOptions LocalOptions() {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  return options;
}

inline std::unique_ptr<Server> StartOrDie(ServerOptions options, Handler handler) {
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(std::move(options), std::move(handler));
  EXPECT_THAT(server, ::discovery::testing::IsOk());
  return server.ok() ? std::move(*server) : nullptr;
}

// Echoes what the server parsed, one `key=value` per line.
inline Response Echo(const Request& request) {
  std::string body = absl::StrCat("method=", request.method, "\npath=", request.path,
                                  "\nquery=", request.query, "\ntarget=", request.target,
                                  "\nbody=", request.body, "\nremote=", request.remote_address);
  if (auto value = request.Header("x-test")) {
    absl::StrAppend(&body, "\nx-test=", ToAbsl(*value));
  }
  return Response{.status = 200,
                  .headers = {{"Content-Type", "text/plain"}, {"X-Reply", "yes"}},
                  .body = std::move(body)};
}

// An Echo handler that counts its calls in `calls`, which must outlive the server.
inline Handler CountingEcho(std::atomic<int>& calls) {
  return [&calls](const Request& request) {
    ++calls;
    return Echo(request);
  };
}

// --- curl client -----------------------------------------------------------------------------

struct CurlResult {
  CURLcode code = CURLE_OK;
  long status = 0;  // NOLINT(google-runtime-int): curl's type
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  long new_connections = 0;  // NOLINT(google-runtime-int): curl's type

  std::string Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (absl::EqualsIgnoreCase(key, ToAbsl(name))) {
        return value;
      }
    }
    return "";
  }
};

// One easy handle; consecutive requests reuse its connection when the server keeps it open.
class CurlClient {
 public:
  CurlClient() : curl_(NewHandle()) {}
  ~CurlClient() { curl_easy_cleanup(curl_); }
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;
  CurlClient(CurlClient&&) = delete;
  CurlClient& operator=(CurlClient&&) = delete;

  void set_ca_file(std::string ca_file) { ca_file_ = std::move(ca_file); }

  CurlResult Get(const std::string& url, const std::vector<std::string>& headers = {}) {
    return Perform("GET", url, nullptr, headers);
  }
  CurlResult Post(const std::string& url, const std::string& body,
                  const std::vector<std::string>& headers = {}) {
    return Perform("POST", url, &body, headers);
  }

 private:
  static CURL* NewHandle() {
    // curl_easy_init would do this implicitly, but not thread-safely.
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    return curl_easy_init();
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    static_cast<CurlResult*>(user)->body.append(data, size * count);
    return size * count;
  }
  static size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    const std::string_view line(data, size * count);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      static_cast<CurlResult*>(user)->headers.emplace_back(
          absl::StripAsciiWhitespace(ToAbsl(line.substr(0, colon))),
          absl::StripAsciiWhitespace(ToAbsl(line.substr(colon + 1))));
    }
    return size * count;
  }

  CurlResult Perform(const char* method, const std::string& url, const std::string* body,
                     const std::vector<std::string>& headers) {
    CurlResult result;
    curl_easy_reset(curl_);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &CurlClient::OnBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &result);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &CurlClient::OnHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &result);
    if (body != nullptr) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body->data());
    }
    if (!ca_file_.empty()) {
      curl_easy_setopt(curl_, CURLOPT_CAINFO, ca_file_.c_str());
    }
    curl_slist* list = nullptr;
    for (const std::string& header : headers) {
      list = curl_slist_append(list, header.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    result.code = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &result.status);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &result.new_connections);
    curl_slist_free_all(list);
    return result;
  }

  CURL* curl_ = nullptr;
  std::string ca_file_;
};

inline std::string Url(const Server& server, std::string_view target) {
  return absl::StrCat("http://127.0.0.1:", server.port(), ToAbsl(target));
}

// --- raw socket client, for clients curl will not imitate ------------------------------------

class RawClient {
 public:
  explicit RawClient(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    connected_ =
        fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  RawClient(RawClient&&) = delete;
  RawClient& operator=(RawClient&&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view data) const {
    while (!data.empty()) {
      const ssize_t sent = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  // One response (head and Content-Length body; just the head for 1xx and `head_request`), or
  // "" when the connection closed or nothing complete arrived within `timeout`.
  std::string ReadResponse(bool head_request = false, absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    size_t head_end = std::string::npos;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) {
        return "";
      }
    }
    head_end += 4;
    const std::string head = buffer_.substr(0, head_end);
    size_t body_size = 0;
    const bool interim = absl::StartsWith(head, "HTTP/1.1 1");
    if (!head_request && !interim) {
      for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
        if (absl::StartsWithIgnoreCase(line, "content-length:")) {
          EXPECT_TRUE(absl::SimpleAtoi(line.substr(15), &body_size)) << line;
        }
      }
    }
    while (buffer_.size() < head_end + body_size) {
      if (!Fill(deadline)) {
        return "";
      }
    }
    std::string response = buffer_.substr(0, head_end + body_size);
    buffer_.erase(0, head_end + body_size);
    return response;
  }

  // True when the server closed the connection (EOF or reset) within `timeout`; whatever else
  // arrives meanwhile is kept for ReadResponse.
  bool WaitClosed(absl::Duration timeout = kPromptly) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Fill(deadline)) {
    }
    return closed_;
  }

  const std::string& unread() const { return buffer_; }

 private:
  // Appends what arrives before `deadline`; false on EOF, error or timeout.
  bool Fill(absl::Time deadline) {
    if (closed_) {
      return false;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return false;
    }
    pollfd descriptor{.fd = fd_, .events = POLLIN, .revents = 0};
    if (poll(&descriptor, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) {
      return false;
    }
    std::array<char, 4096> chunk{};
    const ssize_t received = recv(fd_, chunk.data(), chunk.size(), 0);
    if (received <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(chunk.data(), static_cast<size_t>(received));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

inline int StatusOf(std::string_view response) {
  int status = 0;
  if (response.size() < 12 || !absl::SimpleAtoi(ToAbsl(response.substr(9, 3)), &status)) {
    return 0;
  }
  return status;
}

inline std::string BodyOf(std::string_view response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string_view::npos ? "" : std::string(response.substr(end + 4));
}

// The value of header `name` in a raw response, "" when absent.
inline std::string HeaderOf(std::string_view response, std::string_view name) {
  const size_t end = response.find("\r\n\r\n");
  for (absl::string_view line : absl::StrSplit(ToAbsl(response.substr(0, end)), "\r\n")) {
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos &&
        absl::EqualsIgnoreCase(line.substr(0, colon), ToAbsl(name))) {
      const absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      return {value.begin(), value.end()};
    }
  }
  return "";
}

}  // namespace discovery::http
