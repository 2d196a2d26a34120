// A small blocking HTTP client (libcurl) for integration tests: one request, the whole response
// in memory. It talks to exactly the URL given: no proxy from the environment, no redirects
// followed, no default Content-Type, so a test sees what the server under test answers.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery::testing {

// Header name/value pairs, in order.
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResult {
  int status = 0;
  HttpHeaders headers;  // names lower-cased; of the final response only (not of a 100 Continue)
  std::string body;

  // The value of the first header named `name` (matched case-insensitively), else nullopt.
  std::optional<std::string> Header(std::string_view name) const;
};

// Sends `method` `url` with `headers` and, unless it is empty, `body` (POST, PUT and PATCH send
// "Content-Length: 0" when it is). Any HTTP status is a result, not an error. Fails with
// Unavailable when the connection fails, DeadlineExceeded when the whole exchange takes longer
// than `timeout`, Internal for other transport errors; messages carry curl's error text.
// `insecure_tls` skips certificate and host name checks (self-signed test certificates).
// Thread-safe.
absl::StatusOr<HttpResult> HttpRequest(std::string_view method, const std::string& url,
                                       const std::string& body = "",
                                       const HttpHeaders& headers = {},
                                       absl::Duration timeout = absl::Seconds(10),
                                       bool insecure_tls = false);

// GET `url` without headers.
inline absl::StatusOr<HttpResult> HttpGet(const std::string& url,
                                          absl::Duration timeout = absl::Seconds(10),
                                          bool insecure_tls = false) {
  return HttpRequest("GET", url, "", {}, timeout, insecure_tls);
}

}  // namespace discovery::testing
