#include "cli/retry.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::cli {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kDelays[] = {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4)};

struct Recorder {
  std::vector<absl::Duration> waits;
  std::function<void(const absl::Status&, absl::Duration)> Hook() {
    return [this](const absl::Status&, absl::Duration delay) { waits.push_back(delay); };
  }
};

// A call that returns the given statuses in order.
std::function<absl::Status()> Returning(std::vector<absl::Status> statuses, int* calls) {
  return [statuses = std::move(statuses), calls] { return statuses.at((*calls)++); };
}

TEST(RetryTransientTest, RetriesUnavailableAndDeadlineExceededWithGrowingDelays) {
  Recorder recorder;
  int calls = 0;
  const absl::Status status = RetryTransient(
      Returning(
          {absl::UnavailableError("down"), absl::DeadlineExceededError("slow"), absl::OkStatus()},
          &calls),
      kDelays, recorder.Hook());
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(calls, 3);
  EXPECT_THAT(recorder.waits, ElementsAre(absl::Seconds(1), absl::Seconds(2)));
}

TEST(RetryTransientTest, GivesUpAfterTheLastDelay) {
  Recorder recorder;
  int calls = 0;
  const absl::Status status = RetryTransient(
      Returning(std::vector<absl::Status>(4, absl::UnavailableError("down")), &calls), kDelays,
      recorder.Hook());
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_EQ(calls, 4);
  EXPECT_THAT(recorder.waits, ElementsAre(absl::Seconds(1), absl::Seconds(2), absl::Seconds(4)));
}

TEST(RetryTransientTest, PermanentFailuresAreNotRetried) {
  for (const absl::Status& failure :
       {absl::NotFoundError("namespace"), absl::InvalidArgumentError("url"),
        absl::PermissionDeniedError("token"), absl::UnauthenticatedError("expired")}) {
    Recorder recorder;
    int calls = 0;
    EXPECT_EQ(RetryTransient(Returning({failure}, &calls), kDelays, recorder.Hook()), failure);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(recorder.waits.empty());
  }
}

}  // namespace
}  // namespace discovery::cli
