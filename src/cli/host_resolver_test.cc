#include "cli/host_resolver.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// localhost and literal addresses resolve from /etc/hosts or need no lookup; names under
// ".invalid" never exist (RFC 6761), so DNS answers NXDOMAIN for them.
TEST(UnresolvedHostsTest, ReportsOnlyHostsThatDoNotExist) {
  const absl::StatusOr<std::set<std::string>> unresolved = UnresolvedHosts(
      {"localhost", "127.0.0.1", "::1", "gone.invalid", "also-gone.invalid"}, absl::Seconds(10));
  ASSERT_TRUE(unresolved.ok()) << unresolved.status();
  EXPECT_THAT(*unresolved, ElementsAre("also-gone.invalid", "gone.invalid"));
}

TEST(UnresolvedHostsTest, NothingToResolve) {
  const absl::StatusOr<std::set<std::string>> unresolved = UnresolvedHosts({}, absl::Seconds(1));
  ASSERT_TRUE(unresolved.ok());
  EXPECT_THAT(*unresolved, IsEmpty());
}

}  // namespace
}  // namespace discovery::cli
