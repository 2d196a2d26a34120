// The URL pieces of a REST request as Go's net/url hands them to grpc-gateway: percent-decoded
// path segments and the parsed query string, with Go's error texts so that REST clients of the
// original see the same 400 messages.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace discovery::rest {

// Replaces each %XX by its byte. With `plus_is_space` a '+' becomes a space
// (application/x-www-form-urlencoded, Go's url.QueryUnescape); without it '+' is kept (path
// segments, Go's url.PathUnescape). InvalidArgument `invalid URL escape "%zz"` for a '%' not
// followed by two hex digits. Decoded bytes are not checked (a %00 or invalid UTF-8 passes).
// Thread-safe.
absl::StatusOr<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// The query parameters in the order given, names and values decoded; a name may repeat.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Parses `query` (the request-target after '?', without it) like Go's url.ParseQuery: pieces
// separated by '&', empty pieces skipped, a piece without '=' is a name with an empty value.
// InvalidArgument `invalid semicolon separator in query` for a ';' in a piece (Go rejects the
// old ';' separator since 1.17) and `invalid URL escape ...` for a bad escape. Thread-safe.
absl::StatusOr<QueryParams> ParseQuery(std::string_view query);

// The decoded segments of `path` (the percent-encoded request path), split on '/' *before*
// decoding, so an encoded "%2F" stays inside its segment: "/v1/sd/a%2Fb/c" -> {"v1", "sd", "a/b",
// "c"}. A path that does not start with '/' yields InvalidArgument `invalid request path`;
// a bad escape InvalidArgument as above. "/" yields {""}. Thread-safe.
absl::StatusOr<std::vector<std::string>> PathSegments(std::string_view path);

}  // namespace discovery::rest
