#include "cli/progress.h"

#include <sstream>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST(ProgressLineTest, ShowsCountPercentRateAndTimeLeft) {
  const std::string line = ProgressLine(500, 2000, 0, absl::Seconds(10));
  EXPECT_THAT(line, AllOf(StartsWith("[#######"), HasSubstr("500/2000"), HasSubstr(" 25%"),
                          HasSubstr("50/s"), HasSubstr("ETA 30s"), Not(HasSubstr("failed"))));
  EXPECT_LE(line.size(), 80U);
}

TEST(ProgressLineTest, NoRateBeforeTheFirstAnswerAndNoEtaAtTheEnd) {
  EXPECT_THAT(ProgressLine(0, 10, 0, absl::Seconds(1)),
              AllOf(HasSubstr("0/10"), Not(HasSubstr("/s")), Not(HasSubstr("ETA"))));
  EXPECT_THAT(ProgressLine(10, 10, 2, absl::Seconds(2)),
              AllOf(StartsWith("[##############################]"), HasSubstr("100%"),
                    HasSubstr("5/s"), Not(HasSubstr("ETA")), HasSubstr("(2 failed)")));
}

TEST(ProgressLineTest, LongWaitsInMinutesAndHours) {
  EXPECT_THAT(ProgressLine(1, 1000, 0, absl::Seconds(1)), HasSubstr("ETA 16m39s"));
  EXPECT_THAT(ProgressLine(1, 100000, 0, absl::Seconds(1)), HasSubstr("ETA 27h46m"));
}

TEST(ProgressBarTest, RedrawsInPlaceAtMostTenTimesASecondAndClears) {
  std::ostringstream out;
  const absl::Time start = absl::UnixEpoch();
  ProgressBar bar(out, 100, start);
  bar.Update(1, 0, start + absl::Milliseconds(10));
  bar.Update(2, 0, start + absl::Milliseconds(20));  // too soon: not drawn
  bar.Update(3, 0, start + absl::Milliseconds(200));
  bar.Update(4, 0, start + absl::Milliseconds(210), /*force=*/true);
  bar.Clear();
  const std::string text = out.str();
  EXPECT_THAT(text, AllOf(HasSubstr("1/100"), Not(HasSubstr("2/100")), HasSubstr("3/100"),
                          HasSubstr("4/100")));
  EXPECT_THAT(text, StartsWith("\r\033[K["));
  EXPECT_TRUE(text.ends_with("\r\033[K"));
}

TEST(ProgressBarTest, ClearDrawsNothingWhenNothingWasDrawn) {
  std::ostringstream out;
  ProgressBar bar(out, 5, absl::Now());
  bar.Clear();
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace discovery::cli
