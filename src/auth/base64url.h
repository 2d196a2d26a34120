// base64url without padding (RFC 4648 §5, as JWS compact serialisation uses it), on top of
// OpenSSL's base64 codec with the alphabet translated.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace discovery::auth {

// Returns the unpadded base64url encoding of `data`. Thread-safe.
std::string Base64UrlEncode(std::string_view data);

// Decodes unpadded base64url text. InvalidArgument when `text` contains a character outside
// the base64url alphabet (padding `=` included), has an impossible length or is not the
// canonical encoding (non-zero unused bits in the last character). Thread-safe.
absl::StatusOr<std::string> Base64UrlDecode(std::string_view text);

}  // namespace discovery::auth
