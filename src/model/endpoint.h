// Service endpoints: absolute URLs with scheme and host, parsed and serialised the way Go's
// net/url does (url.ParseRequestURI + URL.String), so canonical strings, service IDs and
// placement match the Go original byte for byte.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace discovery {

class Endpoint {
 public:
  // Parses `text`. Requires a scheme and a host (`scheme://host[:port][/path][?query]`).
  // InvalidArgument naming the problem otherwise; opaque input such as "localhost:9100" is
  // rejected with a message suggesting "http://localhost:9100". Fragments are rejected.
  static absl::StatusOr<Endpoint> Parse(std::string_view text);

  // The canonical string (Go URL.String()): scheme lower-cased, path escaped as Go does,
  // raw query kept verbatim.
  const std::string& String() const { return canonical_; }

  const std::string& scheme() const { return scheme_; }
  // "host[:port]" as written (IPv6 in brackets), without userinfo.
  const std::string& host() const { return host_; }
  // Host without port and without IPv6 brackets.
  std::string Hostname() const;
  // Port digits, or "" when none.
  std::string Port() const;
  // Decoded path ("" when none).
  const std::string& path() const { return path_; }
  // Query as written after '?', without the '?'.
  const std::string& raw_query() const { return raw_query_; }
  // Decoded query parameters in order of appearance (Go url.ParseQuery semantics; keys may
  // repeat). Malformed escapes in a pair drop that pair, as Go does.
  std::vector<std::pair<std::string, std::string>> QueryParams() const;

 private:
  Endpoint() = default;

  std::string canonical_;
  std::string scheme_;
  std::string userinfo_;
  std::string host_;
  std::string path_;
  std::string raw_path_;
  std::string raw_query_;
};

}  // namespace discovery
