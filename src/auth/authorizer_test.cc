#include "auth/authorizer.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "auth/principal.h"
#include "testing/status_matchers.h"

namespace discovery::auth {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;

Principal User(std::string name, std::vector<std::string> roles) {
  return Principal{
      .kind = Principal::Kind::kUser, .name = std::move(name), .roles = std::move(roles)};
}

Principal Machine(std::string id, std::vector<std::string> namespaces, bool admin = false) {
  return Principal{.kind = Principal::Kind::kMachine,
                   .name = std::move(id),
                   .namespaces = std::move(namespaces),
                   .admin_token = admin};
}

struct AdminAction {
  std::string action;
  std::function<absl::Status(const Authorizer&, const Principal&)> check;
};

std::vector<AdminAction> AdminActions() {
  return {
      {"register a namespace",
       [](const Authorizer& a, const Principal& p) { return a.CanRegisterNamespace(p); }},
      {"unregister a namespace",
       [](const Authorizer& a, const Principal& p) { return a.CanUnregisterNamespace(p); }},
      {"register a server",
       [](const Authorizer& a, const Principal& p) { return a.CanRegisterServer(p); }},
      {"unregister a server",
       [](const Authorizer& a, const Principal& p) { return a.CanUnregisterServer(p); }},
      {"create a token",
       [](const Authorizer& a, const Principal& p) { return a.CanCreateToken(p); }},
  };
}

class AuthorizerTest : public ::testing::Test {
 protected:
  Authorizer authorizer_{{"discovery-admin", "ops"}};
};

TEST_F(AuthorizerTest, AdminActionsAllowUsersHoldingAnAdminRole) {
  for (const AdminAction& action : AdminActions()) {
    EXPECT_THAT(action.check(authorizer_, User("alice", {"viewer", "ops"})), IsOk())
        << action.action;
    EXPECT_THAT(action.check(authorizer_, User("bob", {"discovery-admin"})), IsOk())
        << action.action;
  }
}

TEST_F(AuthorizerTest, AdminActionsDenyUsersWithoutAnAdminRole) {
  for (const AdminAction& action : AdminActions()) {
    EXPECT_THAT(action.check(authorizer_, User("alice", {"viewer"})),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         "user token for alice is not allowed to " + action.action));
    EXPECT_THAT(action.check(authorizer_, User("carol", {})),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         "user token for carol is not allowed to " + action.action));
    // Role names match exactly.
    EXPECT_THAT(action.check(authorizer_, User("dave", {"Ops", "ops "})),
                StatusIs(absl::StatusCode::kPermissionDenied));
  }
}

TEST_F(AuthorizerTest, AdminActionsIgnoreTheAdminTokenFlagOnUsers) {
  Principal user = User("mallory", {});
  user.admin_token = true;
  EXPECT_THAT(authorizer_.CanRegisterServer(user), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(AuthorizerTest, AdminActionsDenyMachineTokens) {
  for (const AdminAction& action : AdminActions()) {
    EXPECT_THAT(action.check(authorizer_, Machine("ansible-user", {"default"})),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         "machine token for ansible-user is not allowed to " + action.action));
  }
}

TEST_F(AuthorizerTest, AdminActionsAllowAdminMachineTokens) {
  for (const AdminAction& action : AdminActions()) {
    EXPECT_THAT(action.check(authorizer_, Machine("bootstrap", {}, /*admin=*/true)), IsOk())
        << action.action;
  }
}

TEST(AuthorizerWithoutRolesTest, OnlyAdminMachineTokensAdminister) {
  const Authorizer authorizer({});
  for (const AdminAction& action : AdminActions()) {
    EXPECT_THAT(action.check(authorizer, User("alice", {"discovery-admin"})),
                StatusIs(absl::StatusCode::kPermissionDenied));
    EXPECT_THAT(action.check(authorizer, Machine("bootstrap", {}, /*admin=*/true)), IsOk());
  }
}

TEST_F(AuthorizerTest, ServiceChangesAllowAnyUserInAnyNamespace) {
  EXPECT_THAT(authorizer_.CanChangeService(User("alice", {}), "default"), IsOk());
  EXPECT_THAT(authorizer_.CanChangeService(User("", {"viewer"}), "prod"), IsOk());
  EXPECT_THAT(authorizer_.CanChangeService(User("alice", {}), ""), IsOk());
}

TEST_F(AuthorizerTest, ServiceChangesAllowMachineTokensInTheirNamespaces) {
  const Principal machine = Machine("ansible-user", {"default", "default-blackbox"});
  EXPECT_THAT(authorizer_.CanChangeService(machine, "default"), IsOk());
  EXPECT_THAT(authorizer_.CanChangeService(machine, "default-blackbox"), IsOk());
}

TEST_F(AuthorizerTest, ServiceChangesDenyMachineTokensOutsideTheirNamespaces) {
  const Principal machine = Machine("ansible-user", {"default", "default-blackbox"});
  EXPECT_THAT(authorizer_.CanChangeService(machine, "other"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "machine token ansible-user (default,default-blackbox) is not allowed to "
                       "change service in other namespace"));
  // Exact matches only.
  for (const char* ns : {"def", "Default", "default ", "default-blackbox2"}) {
    EXPECT_THAT(authorizer_.CanChangeService(machine, ns),
                StatusIs(absl::StatusCode::kPermissionDenied))
        << ns;
  }
  EXPECT_THAT(authorizer_.CanChangeService(Machine("empty", {}), "default"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "machine token empty () is not allowed to change service in default "
                       "namespace"));
}

TEST_F(AuthorizerTest, ServiceChangesTreatAnOmittedNamespaceAsDefault) {
  // docs/decisions.md D14: the original checked "" and so denied a token for "default".
  EXPECT_THAT(authorizer_.CanChangeService(Machine("m", {"default"}), ""), IsOk());
  EXPECT_THAT(authorizer_.CanChangeService(Machine("m", {"prod"}), ""),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "machine token m (prod) is not allowed to change service in default "
                       "namespace"));
  // A token listing "" does not thereby get "default".
  EXPECT_THAT(authorizer_.CanChangeService(Machine("m", {""}), ""),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(AuthorizerTest, ServiceChangesAllowAdminMachineTokensEverywhere) {
  EXPECT_THAT(authorizer_.CanChangeService(Machine("bootstrap", {}, /*admin=*/true), "prod"),
              IsOk());
}

TEST_F(AuthorizerTest, ReadsAreOpenToEveryPrincipal) {
  EXPECT_THAT(authorizer_.CanRead(User("", {})), IsOk());
  EXPECT_THAT(authorizer_.CanRead(Machine("m", {})), IsOk());
}

TEST_F(AuthorizerTest, IsAdminFollowsRolesAndTheAdminClaim) {
  EXPECT_TRUE(authorizer_.IsAdmin(User("a", {"ops"})));
  EXPECT_FALSE(authorizer_.IsAdmin(User("a", {"viewer"})));
  EXPECT_TRUE(authorizer_.IsAdmin(Machine("m", {}, /*admin=*/true)));
  EXPECT_FALSE(authorizer_.IsAdmin(Machine("m", {"default"})));
}

TEST(IntersectsTest, TrueIffTheListsShareAnElement) {
  EXPECT_TRUE(Intersects({"a", "b"}, {"c", "b"}));
  EXPECT_FALSE(Intersects({"a", "b"}, {"c"}));
  EXPECT_FALSE(Intersects({}, {"a"}));
  EXPECT_FALSE(Intersects({"a"}, {}));
  EXPECT_FALSE(Intersects({}, {}));
}

TEST(KindNameTest, NamesTheTokenKinds) {
  EXPECT_STREQ(KindName(Principal::Kind::kMachine), "machine");
  EXPECT_STREQ(KindName(Principal::Kind::kUser), "user");
}

}  // namespace
}  // namespace discovery::auth
