#include "selector/regex_filter.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::selector {
namespace {

using ::discovery::testing::StatusIs;

TEST(RegexFilterTest, EmptyPatternMatchesEverything) {
  absl::StatusOr<RegexFilter> filter = RegexFilter::Compile("filter_name", "");
  ASSERT_TRUE(filter.ok());
  EXPECT_TRUE(filter->Matches(""));
  EXPECT_TRUE(filter->Matches("anything"));
  EXPECT_TRUE(filter->MatchesAny({}));
}

TEST(RegexFilterTest, MatchesAnywhereInTheText) {
  absl::StatusOr<RegexFilter> filter = RegexFilter::Compile("filter_name", "b+c");
  ASSERT_TRUE(filter.ok());
  EXPECT_TRUE(filter->Matches("abbcd"));
  EXPECT_FALSE(filter->Matches("acd"));
  const absl::StatusOr<RegexFilter> anchored = RegexFilter::Compile("filter_name", "^b");
  ASSERT_TRUE(anchored.ok());
  EXPECT_FALSE(anchored->Matches("ab"));
}

TEST(RegexFilterTest, MatchesAnyNeedsOneMatchingText) {
  absl::StatusOr<RegexFilter> filter = RegexFilter::Compile("--filter-server", "^web");
  ASSERT_TRUE(filter.ok());
  EXPECT_TRUE(filter->MatchesAny({"db1", "web2"}));
  EXPECT_FALSE(filter->MatchesAny({"db1", "db2"}));
  EXPECT_FALSE(filter->MatchesAny({}));
}

TEST(RegexFilterTest, InvalidPatternNamesTheFilterAndThePattern) {
  EXPECT_THAT(RegexFilter::Compile("--filter-endpoint", "a("),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "invalid --filter-endpoint \"a(\": missing ): a("));
}

}  // namespace
}  // namespace discovery::selector
