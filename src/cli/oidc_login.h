// The CLI side of OIDC: `discovery login` (password grant against the provider's token endpoint)
// and refreshing an expired ID token with the refresh token before a command
// (docs/decisions.md D16: refresh only when expired, through --ca-cert, keeping what the provider
// returns).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/token_file.h"

namespace discovery::cli {

struct OidcClientOptions {
  std::string endpoint;       // --oidc-endpoint: the issuer URL
  std::string client_id;      // --oidc-client-id
  std::string client_secret;  // --oidc-client-secret (providers that want confidential clients)
  std::string ca_cert_file;   // --ca-cert
  absl::Duration timeout = absl::Seconds(10);
};

// The `exp` claim of a JWT, read without verifying it (the server verifies); InvalidArgument
// when `token` is not a JWT with a numeric exp.
absl::StatusOr<absl::Time> TokenExpiry(std::string_view token);

// Password grant: fetches the discovery document, posts the credentials to its token endpoint
// and returns the tokens to store (no machine token). PermissionDenied with the provider's
// error when it refuses the credentials.
absl::StatusOr<TokenFile> PasswordLogin(const OidcClientOptions& options,
                                        const std::string& username, const std::string& password);

// How long before its `exp` a token is refreshed: 30 s, or a quarter of its lifetime (exp - iat)
// when that is shorter, so that a token living less than 30 s is not refreshed before every
// command. 30 s when the token has no numeric exp and iat.
absl::Duration RefreshMargin(std::string_view token);

// When `token` holds no machine token and its ID token expires within RefreshMargin, uses the
// refresh token and returns the tokens to store: the new ID token, or the new access token where
// the provider returns none on refresh (glewlwyd). nullopt when nothing needed refreshing.
absl::StatusOr<std::optional<TokenFile>> RefreshIfExpired(const OidcClientOptions& options,
                                                          const TokenFile& token, absl::Time now);

}  // namespace discovery::cli
