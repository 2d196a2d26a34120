#include "cli/call_errors.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "fmt/format.h"

#include "common/go_duration.h"

namespace discovery::cli {

absl::Status DescribeCallError(const absl::Status& status, std::string_view address,
                               const CallLimit& limit) {
  const std::string message(status.message());
  std::string lower = message;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto contains = [&](std::string_view text) {
    return lower.find(text) != std::string::npos;
  };
  if (absl::IsDeadlineExceeded(status) && message == "Deadline Exceeded") {
    // The client's own deadline: the server never answered.
    return absl::DeadlineExceededError(fmt::format(
        "no answer from {} {}: the server accepts connections but does not respond; is it "
        "discoveryd's gRPC port, and is it overloaded?",
        address,
        limit.overall ? "before the command's --deadline"
                      : fmt::format("within {} (--timeout)", FormatGoDuration(limit.duration))));
  }
  if (!absl::IsUnavailable(status)) {
    return status;
  }
  if (contains("handshake") || contains("wrong_version_number") || contains("ssl")) {
    return absl::UnavailableError(fmt::format(
        "TLS handshake with {} failed: a plaintext server needs --insecure, a certificate of a "
        "private CA --ca-cert",
        address));
  }
  if (contains("connection refused")) {
    return absl::UnavailableError(
        fmt::format("cannot connect to {}: connection refused; is discoveryd running there "
                    "(--address)?",
                    address));
  }
  if (contains("failed to connect") || contains("dns resolution failed")) {
    return absl::UnavailableError(
        fmt::format("cannot connect to {} (--address): {}", address, message));
  }
  return status;
}

}  // namespace discovery::cli
