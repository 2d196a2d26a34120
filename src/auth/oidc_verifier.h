// Verification of the OIDC provider's bearer tokens on the server (docs/decisions.md D33):
// ID tokens and RFC 9068 JWT access tokens, signed RS256 or ES256 with a key of the provider's
// JWKS, become user principals with the configured username and roles claims.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "auth/principal.h"
#include "auth/userinfo_cache.h"
#include "http_client/http_client.h"

namespace discovery::auth {
namespace oidc_internal {
// What Load learnt from the provider: its document and keys (defined in oidc_provider.h).
struct Provider;
}  // namespace oidc_internal

struct OidcOptions {
  // --oidc-endpoint. The discovery document is
  // <issuer without trailing '/'>/.well-known/openid-configuration and its "issuer" must equal
  // this (modulo one trailing '/').
  std::string issuer;
  std::string client_id;  // --oidc-client-id
  // --oidc-ui-client-id: the web UI's public client; its tokens are accepted as the CLI's
  // client's are. Empty: none.
  std::string ui_client_id;
  std::string username_claim = "username";  // dotted path, e.g. "preferred_username"
  std::string roles_claim = "roles";        // dotted path, e.g. "realm_access.roles"
  std::string ca_cert_file;                 // --ca-cert
  absl::Duration http_timeout = absl::Seconds(10);
  // An unknown kid refetches the JWKS at most this often, and Verify retries a failed Load at
  // most this often, so that garbage tokens cannot make the server hammer the provider.
  absl::Duration min_jwks_refresh = absl::Seconds(10);
  // Userinfo answers kept (until their token expires), at most this many.
  size_t userinfo_cache_size = 4096;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// GETs a URL, with `bearer` as bearer token unless it is empty (the userinfo request); the
// default uses http_client::Send. Unit tests pass a fake. The discovery document and JWKS are
// fetched from one thread at a time; userinfo requests for different tokens run concurrently.
using HttpGet = std::function<absl::StatusOr<http_client::Response>(const std::string& url,
                                                                    const std::string& bearer)>;

class OidcVerifier {
 public:
  explicit OidcVerifier(OidcOptions options, HttpGet get = nullptr);
  ~OidcVerifier();
  OidcVerifier(const OidcVerifier&) = delete;
  OidcVerifier& operator=(const OidcVerifier&) = delete;
  OidcVerifier(OidcVerifier&&) = delete;
  OidcVerifier& operator=(OidcVerifier&&) = delete;

  // Fetches the discovery document and the JWKS. Unavailable when the provider cannot be
  // reached (transport failures, 5xx and 429 answers), FailedPrecondition when the document is
  // unusable (issuer mismatch, no jwks_uri, bad JSON, another HTTP status, no usable key).
  // Safe to call again: a later success replaces what an earlier one loaded. Thread-safe.
  absl::Status Load();
  bool loaded() const;

  // Verifies a bearer token issued by the provider and returns the user:
  // - JWS compact form; header `alg` RS256 or ES256 only, advertised in the document's
  //   id_token_signing_alg_values_supported when that is present, and matching the key's type
  //   (RSA, EC P-256); no `crit`;
  // - the key is the JWKS key with the token's `kid` (an unknown kid refetches the JWKS once,
  //   at most every min_jwks_refresh); a token without kid uses the only key of its type;
  // - `iss` equals the document's issuer; `exp` is required and not passed (no leeway); `nbf`,
  //   if present, is at most 5 minutes ahead; `iat` is not checked;
  // - `aud` (string or array) contains the client id (ID tokens), or `client_id` or `azp`
  //   equals it and the header's `typ` is `at+jwt` (RFC 9068 access tokens, whose `aud`
  //   glewlwyd sets to the scope string).
  // The username is the string at username_claim ("" when missing or not a string); the roles
  // are at roles_claim: an array of strings (other elements ignored) or one string of space- or
  // comma-separated roles; anything else or missing means no roles. A claim path is first
  // looked up as one top-level name, then split at dots. An access token (`typ` at+jwt) that
  // lacks either claim takes it from the provider's userinfo endpoint, asked with the token
  // itself; the answer is kept until the token expires and shared by concurrent requests.
  // Errors: Unauthenticated `personal token is not valid: oidc: <reason>` (never containing
  // the token), also when userinfo refuses the token (401/403). Before a successful Load,
  // Verify tries one itself (at most every min_jwks_refresh, and not while another thread is
  // loading: no waiting for a slow provider) and returns Unavailable `oidc provider <issuer>
  // is not reachable: <why>` when that fails; userinfo failing otherwise is Unavailable too.
  // Thread-safe; concurrent calls only contend when they refetch.
  absl::StatusOr<Principal> Verify(std::string_view token) const;

 private:
  using Provider = oidc_internal::Provider;

  // What Load fetches; `fetch_mu_` serialises fetching so that concurrent refetches collapse.
  absl::Status LoadLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(fetch_mu_);
  // Refetches the JWKS unless that happened less than min_jwks_refresh ago.
  void RefreshKeys() const;
  // Tries Load when none succeeded yet; the provider when one did.
  absl::StatusOr<std::shared_ptr<const Provider>> EnsureLoaded() const;
  // The user the userinfo endpoint `url` names for `token`, whose `sub` is `subject` ("" when
  // it has none).
  absl::StatusOr<Principal> FetchUserinfo(const std::string& url, std::string_view token,
                                          std::string_view subject) const;

  const OidcOptions options_;
  const HttpGet get_;
  // Mutable state behind a const API: remembering an answer changes no result.
  mutable UserinfoCache userinfo_;

  mutable absl::Mutex fetch_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  // Replaced as a whole, so that verifications keep a consistent snapshot without the lock.
  mutable std::shared_ptr<const Provider> provider_ ABSL_GUARDED_BY(mu_);
  mutable std::optional<absl::Time> last_load_attempt_ ABSL_GUARDED_BY(mu_);
  mutable absl::Status last_load_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace discovery::auth
