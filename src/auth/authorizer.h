// Authorization rules of the API (docs/decisions.md D32): which principal may do what.
// Transport-neutral: handlers call these checks and return the status they produce.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

#include "auth/principal.h"

namespace discovery::auth {

class Authorizer {
 public:
  // `admin_roles` is --oidc-roles: users holding one of them may change namespaces and servers
  // and create tokens. With no admin roles only admin machine tokens may.
  explicit Authorizer(std::vector<std::string> admin_roles);

  // Each check returns OK or PermissionDenied with the original's text. All are thread-safe.

  // Namespace, server and token administration: a user holding an admin role, or an admin
  // machine token. Denial: `<machine|user> token for <name> is not allowed to <action>`.
  absl::Status CanRegisterNamespace(const Principal& principal) const;
  absl::Status CanUnregisterNamespace(const Principal& principal) const;
  absl::Status CanRegisterServer(const Principal& principal) const;
  absl::Status CanUnregisterServer(const Principal& principal) const;
  absl::Status CanCreateToken(const Principal& principal) const;

  // RegisterService / UnRegisterService in `namespace_name` as the request names it ("" means
  // "default", and is checked as "default"). Any user and any admin machine token; other
  // machine tokens only for a namespace in their list (exact match). Denial:
  // `machine token <id> (<ns1,ns2>) is not allowed to change service in <ns> namespace`.
  absl::Status CanChangeService(const Principal& principal, std::string_view namespace_name) const;

  // The List RPCs, ListTargetGroup/http_sd and TokenAPI/Info: every authenticated principal.
  absl::Status CanRead(const Principal& principal) const;

  // True for a user holding one of the admin roles and for an admin machine token.
  bool IsAdmin(const Principal& principal) const;

 private:
  absl::Status CheckAdmin(const Principal& principal, std::string_view action) const;

  std::vector<std::string> admin_roles_;
};

// True iff the two lists share an element (false when either is empty).
bool Intersects(const std::vector<std::string>& a, const std::vector<std::string>& b);

}  // namespace discovery::auth
