// Debian's glewlwyd (2.7.5) as a child process: a real OpenID Connect provider for tests of OIDC
// users. Start() builds everything from nothing in a temp dir: the sqlite database from the
// package's init script, a config derived from its sample, an RSA key for RS256, and then
// configures the running server through its admin REST API: the "oidc" plugin, users with roles,
// one confidential client.
//
// What its tokens look like (glewlwyd 2.7.5):
//   * id_token (typ JWT, RS256): iss = issuer(), aud = client_id (a string), azp = client_id,
//     sub = an opaque random id per user (not the username), preferred_username = the username,
//     roles = the user's roles as a JSON array (no `roles` claim at all for a user without
//     roles), exp = iat + token_lifetime, no nonce.
//   * access_token (typ at+jwt, RS256): iss, client_id, aud = the requested scope string, scope;
//     no preferred_username and no roles, unless roles_in_access_tokens adds the roles
//     comma-joined into ONE string ("viewer,discovery-admin").
//   * userinfo (issuer() + "/userinfo", GET with an access token as bearer): sub and the
//     mandatory claims, i.e. roles (an array) and preferred_username.
//   * A refresh grant answers with a new access_token only: no id_token, no new refresh_token
//     (the old one stays valid).
//   * The discovery document's grant_types_supported omits password and refresh_token although
//     both work.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

#include "testing/process.h"

namespace discovery::testing {

struct OidcUser {
  std::string username;
  std::string password;
  std::vector<std::string> roles;  // the "roles" claim; empty: the user's tokens have none
};

struct GlewlwydOptions {
  std::string binary = "/usr/bin/glewlwyd";
  std::vector<OidcUser> users = {{"alice", "alice-pw", {"discovery-admin"}},
                                 {"bob", "bob-pw", {"viewer"}}};
  // A confidential client allowed the password, refresh_token and client_credentials grants,
  // authenticating with client_secret_basic or client_secret_post.
  std::string client_id = "discovery";
  std::string client_secret = "client-secret";
  // The plugin's access-token-duration: the lifetime of access tokens and ID tokens alike
  // (glewlwyd has no separate knob for ID tokens). Whole seconds, at least 1 s.
  absl::Duration token_lifetime = absl::Hours(1);
  // The usual configuration keeps the roles out of access tokens (claims of the ID token and of
  // userinfo only); true also puts them into access tokens (the plugin's additional-parameters).
  bool roles_in_access_tokens = false;
  // How long Start waits for the server to answer before configuring it.
  absl::Duration start_timeout = absl::Seconds(30);
};

// One glewlwyd server on a free loopback port. Not thread-safe: drive it from the test thread
// (the const methods only send HTTP requests and may run concurrently). Destroying it stops the
// server and removes its directory.
class GlewlwydProcess {
 public:
  // Creates <tmp>/glewlwyd.db (sqlite3 CLI), glewlwyd.conf, oidc.key/oidc.pub (openssl CLI),
  // starts `glewlwyd -c glewlwyd.conf` on a free 127.0.0.1 port (new ports when it loses the port
  // to another process) with its log in <tmp>/glewlwyd.log, and configures it as admin/password:
  //   * user backend "database": the multi-valued user property "roles";
  //   * plugin "oidc": iss = issuer(), RS256, claims roles and preferred_username (<- username)
  //     in every ID token and userinfo answer (roles also in access tokens with
  //     roles_in_access_tokens), password and refresh grants enabled;
  //   * scope "discovery"; the users, with scopes openid and discovery and their roles;
  //   * the client;
  //   * PKCE (S256; required of public clients, which AddPublicClient registers).
  // Fails with Unavailable and the log tail when the server exits or does not answer within
  // start_timeout, Internal with the answer and the log tail when a setup step fails.
  static absl::StatusOr<std::unique_ptr<GlewlwydProcess>> Start(GlewlwydOptions options = {});

  ~GlewlwydProcess();
  GlewlwydProcess(const GlewlwydProcess&) = delete;
  GlewlwydProcess& operator=(const GlewlwydProcess&) = delete;

  std::string url() const;             // "http://127.0.0.1:PORT"
  std::string issuer() const;          // "http://127.0.0.1:PORT/api/oidc" (= the iss of its tokens)
  std::string token_endpoint() const;  // issuer() + "/token"
  int port() const { return port_; }
  const GlewlwydOptions& options() const { return options_; }
  bool IsRunning() const;

  // Registers a public client (no secret) for the authorization code flow with PKCE (S256),
  // scopes openid and discovery, redirecting only to `redirect_uri`: a browser app such as
  // discoveryd's web UI. Its users sign in on glewlwyd's own login page (login.html). Internal
  // with the answer when glewlwyd refuses.
  absl::Status AddPublicClient(const std::string& client_id, const std::string& redirect_uri);

  // POST token_endpoint() grant_type=password with the client's credentials in HTTP Basic auth:
  // the JSON answer {access_token, id_token, refresh_token, token_type, expires_in, scope, iat}.
  // PermissionDenied with the HTTP status and body when refused (wrong password: 403 and an
  // empty body; a scope the user lacks: 403).
  absl::StatusOr<nlohmann::json> PasswordGrant(const std::string& username,
                                               const std::string& password,
                                               const std::string& scope = "openid") const;
  // POST token_endpoint() grant_type=refresh_token: {access_token, token_type, expires_in, scope,
  // iat}. PermissionDenied with status and body when refused (an unknown token: 400).
  absl::StatusOr<nlohmann::json> RefreshGrant(const std::string& refresh_token) const;

  // GET issuer() + "/userinfo" with `access_token` as bearer: the JSON answer. PermissionDenied
  // with status and body when refused.
  absl::StatusOr<nlohmann::json> Userinfo(const std::string& access_token) const;

  // The last `lines` lines of glewlwyd's log (INFO level: logins, token grants, errors).
  std::string LogTail(int lines = 40) const;

 private:
  GlewlwydProcess(GlewlwydOptions options, std::string root);

  // Writes glewlwyd.conf for port_, starts the server and waits until it answers.
  absl::Status Launch(const std::string& config_template);
  // Logs in as admin and configures backend, plugin, scope, users and client.
  absl::Status Configure();
  // `method` `path` (under url() + "/api") on the admin API with the session cookie and `body`
  // as JSON (none when null); the parsed answer (null when empty). Internal unless 200.
  absl::StatusOr<nlohmann::json> Admin(const std::string& method, const std::string& path,
                                       const nlohmann::json& body = nullptr) const;
  // POSTs the form `fields` to the token endpoint as the client.
  absl::StatusOr<nlohmann::json> TokenRequest(
      const std::vector<std::pair<std::string, std::string>>& fields) const;

  GlewlwydOptions options_;
  std::string root_;  // glewlwyd.db, glewlwyd.conf, glewlwyd.log, oidc.key, oidc.pub
  std::string log_path_;
  int port_ = 0;
  std::string admin_cookie_;  // "GLEWLWYD2_SESSION_ID=..." of the admin session
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace discovery::testing
