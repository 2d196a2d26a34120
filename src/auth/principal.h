// The authenticated caller of an API: a machine token holder or an OIDC user. Produced by
// authentication, consumed by `Authorizer`; it carries no credentials.
#pragma once

#include <string>
#include <vector>

namespace discovery::auth {

struct Principal {
  enum class Kind { kMachine, kUser };

  Kind kind = Kind::kUser;
  // Machine: the token id (`jti`). User: the configured username claim ("" when missing).
  std::string name;
  // Machine: the namespaces the token may change services in. Unused for users.
  std::vector<std::string> namespaces;
  // User: the configured roles claim. Unused for machines.
  std::vector<std::string> roles;
  // Machine: the token carries the admin claim (`discoveryd token create --admin`), so it may
  // do everything a user holding an admin role may. Ignored for users.
  bool admin_token = false;

  friend bool operator==(const Principal&, const Principal&) = default;
};

// "machine" or "user", as the original's denial messages name the token kinds.
inline const char* KindName(Principal::Kind kind) {
  return kind == Principal::Kind::kMachine ? "machine" : "user";
}

}  // namespace discovery::auth
