// Extraction of the bearer token from an `authorization` header or gRPC metadata value, with
// the texts of go-grpc-middleware's AuthFromMD that the Go original used.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace discovery::auth {

// Returns everything after the first space of `authorization_header` when the part before it
// is "bearer" in any case (the token may be empty or contain spaces). Unauthenticated
// `Request unauthenticated with bearer` for an empty header or another scheme, and
// `Bad authorization string` for a header without a space. Thread-safe.
absl::StatusOr<std::string> BearerToken(std::string_view authorization_header);

}  // namespace discovery::auth
