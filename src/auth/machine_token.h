// Machine tokens: HS256 JWTs issued by `TokenAPI/Create` (and `discoveryd token create`) and
// accepted as bearer tokens. Signed with --token-secret, `iss` = --token-issuer (the Go
// original swapped the two, docs/decisions.md D1). Verification pins the algorithm to HS256.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "auth/principal.h"

namespace discovery::auth {

struct MachineTokenOptions {
  // Written to the `iss` claim (--token-issuer).
  std::string issuer;
  // The HMAC-SHA256 key (--token-secret). Never logged, never part of an error message.
  std::string secret;
  // Earlier keys (--previous-token-secrets) whose tokens still verify while tokens are being
  // reissued after a secret rotation; never used to sign. Never logged either.
  std::vector<std::string> previous_secrets;
  // Adds `"admin":true`: the token may do what a user holding an admin role may
  // (`discoveryd token create --admin`, docs/decisions.md D32).
  bool admin = false;
};

// What a verified machine token says.
struct MachineClaims {
  // `jti`; may be empty.
  std::string id;
  std::vector<std::string> namespaces;
  // `exp`; nullopt when the token never expires.
  std::optional<absl::Time> expires;
  bool admin = false;

  friend bool operator==(const MachineClaims&, const MachineClaims&) = default;
};

// Returns a signed compact JWT with header {"alg":"HS256","typ":"JWT"} and the payload fields,
// in this order: iss, exp (only when `expires` is positive and finite: now + expires), nbf and
// iat (both `now`), jti (`id`, not validated), namespaces (omitted when empty), admin (only when
// set). NumericDates are integer seconds, truncated. Invalid UTF-8 in `id` or `namespaces` is
// replaced by U+FFFD, as Go's encoding/json does.
// FailedPrecondition when `options.secret` is empty; Internal when OpenSSL fails.
// Thread-safe.
absl::StatusOr<std::string> CreateMachineToken(const MachineTokenOptions& options, std::string id,
                                               const std::vector<std::string>& namespaces,
                                               absl::Duration expires, absl::Time now);

// Verifies `token` against `issuer` and `secret` at time `now` and returns its claims.
// Checks: three base64url segments with JSON objects as header and payload; header `alg` is
// exactly HS256 (`none`, other HMAC and asymmetric algorithms are rejected) and no `crit`;
// the signature (compared in constant time); `iss` equals `issuer`; `exp`, if present, is after
// `now`; `nbf` and `iat`, if present, are not after `now` (no leeway). NumericDates may be
// integers or floats (older releases emitted floats); fractions are truncated to seconds.
// Errors, all prefixed `invalid token: `:
//   InvalidArgument for a malformed token (segments, base64url, JSON, claim types);
//   Unauthenticated for a well-formed token that is rejected (algorithm, signature, issuer,
//   expired, not yet valid);
//   FailedPrecondition when `secret` is empty.
// Never includes `secret` in a message. Thread-safe.
absl::StatusOr<MachineClaims> VerifyMachineToken(std::string_view token, std::string_view issuer,
                                                 std::string_view secret, absl::Time now);
// As above, but a signature made with any of `previous_secrets` (empty ones are ignored) is
// accepted as well: tokens issued before a secret rotation keep working until they are reissued.
absl::StatusOr<MachineClaims> VerifyMachineToken(std::string_view token, std::string_view issuer,
                                                 std::string_view secret,
                                                 const std::vector<std::string>& previous_secrets,
                                                 absl::Time now);

// Decodes the payload of a compact JWT without verifying anything but its shape, to classify a
// bearer token (docs/decisions.md D32): returns its `iss` claim, or nullopt when `iss` is absent or
// not a string. InvalidArgument when the token is not three dot-separated base64url segments with a
// JSON object header carrying a string `alg` and a JSON object payload. Thread-safe.
absl::StatusOr<std::optional<std::string>> PeekIssuer(std::string_view token);

// The principal a verified machine token authenticates.
Principal MachinePrincipal(MachineClaims claims);

}  // namespace discovery::auth
