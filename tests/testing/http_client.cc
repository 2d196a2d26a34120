#include "testing/http_client.h"

#include <curl/curl.h>

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "fmt/format.h"

namespace discovery::testing {
namespace {

// curl_global_init is not thread-safe and must run before any other curl call; a function-local
// static runs it exactly once, whichever test thread gets here first. Never cleaned up: other
// threads may still use curl while static destructors run.
bool CurlReady() {
  static const CURLcode init = curl_global_init(CURL_GLOBAL_DEFAULT);
  return init == CURLE_OK;
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// Called once per header line, the status line included.
size_t AppendHeader(char* data, size_t size, size_t count, void* user) {
  auto* headers = static_cast<HttpHeaders*>(user);
  std::string_view line(data, size * count);
  if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response begins (after a 100 Continue): keep only the last one
    return size * count;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return size * count;  // the blank line ending the header block
  }
  std::string name(line.substr(0, colon));
  absl::AsciiStrToLower(&name);
  std::string value(line.substr(colon + 1));
  absl::StripAsciiWhitespace(&value);
  headers->emplace_back(std::move(name), std::move(value));
  return size * count;
}

absl::StatusCode CodeOf(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
      return absl::StatusCode::kUnavailable;
    case CURLE_OPERATION_TIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kInternal;
  }
}

}  // namespace

std::optional<std::string> HttpResult::Header(std::string_view name) const {
  std::string lower(name);
  absl::AsciiStrToLower(&lower);
  for (const auto& [key, value] : headers) {
    if (key == lower) {
      return value;
    }
  }
  return std::nullopt;
}

absl::StatusOr<HttpResult> HttpRequest(std::string_view method, const std::string& url,
                                       const std::string& body, const HttpHeaders& headers,
                                       absl::Duration timeout, bool insecure_tls) {
  if (!CurlReady()) {
    return absl::InternalError("curl_global_init failed");
  }
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) {
    return absl::InternalError("curl_easy_init failed");
  }
  CURL* handle = curl.get();
  HttpResult result;
  std::array<char, CURL_ERROR_SIZE> error{};
  const std::string method_string(method);

  std::unique_ptr<curl_slist, SlistDeleter> header_list;
  bool has_content_type = false;
  const auto add_header = [&header_list](const std::string& line) {
    header_list.reset(curl_slist_append(header_list.release(), line.c_str()));
  };
  for (const auto& [name, value] : headers) {
    has_content_type = has_content_type || absl::AsciiStrToLower(name) == "content-type";
    add_header(fmt::format("{}: {}", name, value));
  }
  // Without these curl would add "Content-Type: application/x-www-form-urlencoded" to bodies
  // and "Expect: 100-continue" to large ones.
  if (!has_content_type) {
    add_header("Content-Type:");
  }
  add_header("Expect:");

  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error.data());
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM: tests are multi-threaded
  curl_easy_setopt(handle, CURLOPT_NOPROXY, "*");  // a developer's http_proxy must not interfere
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, AppendHeader);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &result.headers);
  if (insecure_tls) {
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (method_string == "HEAD") {
    curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
  } else if (method_string != "GET" || !body.empty()) {
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method_string.c_str());
  }
  if (!body.empty() || method_string == "POST" || method_string == "PUT" ||
      method_string == "PATCH") {
    curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(handle, CURLOPT_POSTFIELDS, body.data());
  }
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, header_list.get());

  const CURLcode code = curl_easy_perform(handle);
  if (code != CURLE_OK) {
    return absl::Status(CodeOf(code),
                        fmt::format("{} {}: {}", method, url,
                                    error[0] != '\0' ? error.data() : curl_easy_strerror(code)));
  }
  long status = 0;  // NOLINT(google-runtime-int): the type curl_easy_getinfo writes
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  result.status = static_cast<int>(status);
  return result;
}

}  // namespace discovery::testing
