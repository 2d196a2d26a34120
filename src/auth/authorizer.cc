#include "auth/authorizer.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "fmt/ranges.h"

#include "common/format.h"

namespace discovery::auth {
namespace {

// The namespace a service request without one is stored in.
constexpr std::string_view kDefaultNamespace = "default";

}  // namespace

bool Intersects(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::any_of(a.begin(), a.end(), [&b](const std::string& element) {
    return std::find(b.begin(), b.end(), element) != b.end();
  });
}

Authorizer::Authorizer(std::vector<std::string> admin_roles)
    : admin_roles_(std::move(admin_roles)) {}

bool Authorizer::IsAdmin(const Principal& principal) const {
  if (principal.kind == Principal::Kind::kMachine) {
    return principal.admin_token;
  }
  return Intersects(principal.roles, admin_roles_);
}

absl::Status Authorizer::CheckAdmin(const Principal& principal, std::string_view action) const {
  if (IsAdmin(principal)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(fmt::format("{} token for {} is not allowed to {}",
                                                 KindName(principal.kind), principal.name, action));
}

absl::Status Authorizer::CanRegisterNamespace(const Principal& principal) const {
  return CheckAdmin(principal, "register a namespace");
}

absl::Status Authorizer::CanUnregisterNamespace(const Principal& principal) const {
  return CheckAdmin(principal, "unregister a namespace");
}

absl::Status Authorizer::CanRegisterServer(const Principal& principal) const {
  return CheckAdmin(principal, "register a server");
}

absl::Status Authorizer::CanUnregisterServer(const Principal& principal) const {
  return CheckAdmin(principal, "unregister a server");
}

absl::Status Authorizer::CanCreateToken(const Principal& principal) const {
  return CheckAdmin(principal, "create a token");
}

// A member like the other checks, so callers need not know which ones depend on the roles.
// NOLINTNEXTLINE(readability-convert-member-functions-to-static)
absl::Status Authorizer::CanChangeService(const Principal& principal,
                                          std::string_view namespace_name) const {
  if (principal.kind == Principal::Kind::kUser || principal.admin_token) {
    return absl::OkStatus();
  }
  // docs/decisions.md D14: the original compared the raw request field, so a machine token for
  // "default" could not register a service that omitted the namespace.
  const std::string_view effective = namespace_name.empty() ? kDefaultNamespace : namespace_name;
  if (std::find(principal.namespaces.begin(), principal.namespaces.end(), effective) !=
      principal.namespaces.end()) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      fmt::format("machine token {} ({}) is not allowed to change service in {} namespace",
                  principal.name, fmt::join(principal.namespaces, ","), effective));
}

// NOLINTNEXTLINE(readability-convert-member-functions-to-static)
absl::Status Authorizer::CanRead(const Principal& /*principal*/) const { return absl::OkStatus(); }

}  // namespace discovery::auth
