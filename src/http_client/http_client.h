// A small synchronous HTTP(S) client on libcurl, for the few outbound requests the project makes:
// the server's OIDC discovery and JWKS fetches and the CLI's login against the token endpoint.
// Deliberately minimal: no redirects, no cookies, no connection reuse between calls, a bounded
// response size.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery::http_client {

struct Request {
  std::string method = "GET";
  std::string url;
  // Sent in this order, in addition to what libcurl adds itself (Host, and Content-Type
  // application/x-www-form-urlencoded for a body unless a Content-Type is given here).
  std::vector<std::pair<std::string, std::string>> headers;
  // Sent as is; a non-empty body with method GET is sent as a GET with that body.
  std::string body;
  // HTTP Basic credentials (user, password), sent with the first request.
  std::optional<std::pair<std::string, std::string>> basic_auth;
  // A PEM file of CA certificates trusted in addition to the system's; "" = the system's only.
  std::string ca_cert_file;
  // The whole exchange, connecting included.
  absl::Duration timeout = absl::Seconds(10);
};

struct Response {
  int status = 0;
  std::string body;
  // As received (names keep their case, values are trimmed), of the final response only.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Responses larger than this are refused (ResourceExhausted).
inline constexpr std::size_t kMaxResponseBytes = std::size_t{1} << 20;

// Performs `request`. Any HTTP status (3xx included: redirects are not followed) is a Response.
// Errors name the method and URL and carry libcurl's message:
//   Unavailable for transport failures (DNS, connect, TLS, connection reset);
//   DeadlineExceeded when `timeout` passed;
//   ResourceExhausted when the response is larger than kMaxResponseBytes;
//   InvalidArgument for an unusable request (malformed URL, a scheme other than http/https, an
//   unreadable ca_cert_file).
// Thread-safe.
absl::StatusOr<Response> Send(const Request& request);

// The application/x-www-form-urlencoded body of `fields`: `name=value` pairs joined by '&', both
// percent-encoded as curl_easy_escape does (everything but ALPHA, DIGIT and "-._~" becomes
// %XX with upper-case hex digits; a space is %20).
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace discovery::http_client
