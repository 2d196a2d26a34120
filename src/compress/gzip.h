// gzip as HTTP's Content-Encoding: gzip wants it (RFC 1952 framing, zlib's deflate).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace discovery::compress {

// `data` as one gzip member. Level 1 (fastest) to 9 (smallest); 6 is zlib's default.
std::string Gzip(std::string_view data, int level = 6);

// The data of a gzip stream (one or more members). InvalidArgument when it is not gzip or is
// truncated; ResourceExhausted when it would inflate beyond `max_bytes`.
absl::StatusOr<std::string> Gunzip(std::string_view compressed, size_t max_bytes = 1 << 30);

// Whether an Accept-Encoding header value accepts gzip (or x-gzip, or * without gzip listed)
// with a non-zero q value (RFC 9110 §12.5.3).
bool AcceptsGzip(std::string_view accept_encoding);

}  // namespace discovery::compress
