// Fuzzes discovery::Endpoint::Parse, the Go net/url compatible parser of service endpoints.
// The canonical string is what service IDs and placement hash, and what unregistering by URL
// re-parses, so it must be a fixed point: parsing String() yields the same endpoint again.
// Malformed input is InvalidArgument.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "fuzz_check.h"

#include "model/endpoint.h"

namespace {

using ::discovery::Endpoint;
using ::discovery::fuzz::Check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(text);
  if (!endpoint.ok()) {
    Check(endpoint.status().code() == absl::StatusCode::kInvalidArgument,
          "parse errors are InvalidArgument", endpoint.status().message());
    return 0;
  }
  const std::string& canonical = endpoint->String();
  Check(!endpoint->scheme().empty() && !endpoint->host().empty(), "scheme and host are required",
        canonical);

  const absl::StatusOr<Endpoint> reparsed = Endpoint::Parse(canonical);
  Check(reparsed.ok(), "String() parses back", canonical);
  Check(reparsed->String() == canonical, "String() is a fixed point", canonical);
  Check(reparsed->scheme() == endpoint->scheme() && reparsed->host() == endpoint->host() &&
            reparsed->path() == endpoint->path() && reparsed->raw_query() == endpoint->raw_query(),
        "String() parses back to the same parts", canonical);
  Check(reparsed->Hostname() == endpoint->Hostname() && reparsed->Port() == endpoint->Port(),
        "String() keeps host name and port", canonical);

  (void)endpoint->QueryParams();
  return 0;
}
