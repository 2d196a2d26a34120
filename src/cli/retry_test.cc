#include "cli/retry.h"

#include <array>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::cli {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Ge;
using ::testing::Le;
using ::testing::SizeIs;

constexpr std::array<absl::Duration, 3> kDelays = {absl::Seconds(1), absl::Seconds(2),
                                                   absl::Seconds(4)};

// A random source that always yields the same bits: its lowest or its highest value.
class FixedBits {
 public:
  using result_type = uint64_t;
  explicit FixedBits(result_type value) : value_(value) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
  result_type operator()() const { return value_; }

 private:
  result_type value_;
};

// Records the waits instead of sleeping.
struct Recorder {
  std::vector<absl::Duration> waits;
  std::vector<absl::StatusCode> failures;
  std::function<void(const absl::Status&, absl::Duration)> Hook() {
    return [this](const absl::Status& failure, absl::Duration delay) {
      failures.push_back(failure.code());
      waits.push_back(delay);
    };
  }
};

// A call that returns the given statuses in order.
std::function<absl::Status()> Returning(std::vector<absl::Status> statuses, int* calls) {
  return [statuses = std::move(statuses), calls] { return statuses.at((*calls)++); };
}

TEST(RetryTransientTest, RetriesUnavailableDeadlineExceededAndResourceExhausted) {
  Recorder recorder;
  int calls = 0;
  std::mt19937_64 random(1);
  const absl::Status status = RetryTransient(
      Returning({absl::UnavailableError("down"), absl::DeadlineExceededError("slow"),
                 absl::ResourceExhaustedError("Server Threadpool Exhausted"), absl::OkStatus()},
                &calls),
      kDelays, random, recorder.Hook());
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(calls, 4);
  EXPECT_THAT(recorder.failures,
              ElementsAre(absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded,
                          absl::StatusCode::kResourceExhausted));
  ASSERT_THAT(recorder.waits, SizeIs(3));
  EXPECT_THAT(recorder.waits[0], AllOf(Ge(absl::Milliseconds(500)), Le(absl::Milliseconds(1500))));
  EXPECT_THAT(recorder.waits[1], AllOf(Ge(absl::Seconds(1)), Le(absl::Seconds(3))));
  EXPECT_THAT(recorder.waits[2], AllOf(Ge(absl::Seconds(2)), Le(absl::Seconds(6))));
}

TEST(RetryTransientTest, GivesUpAfterTheLastDelay) {
  Recorder recorder;
  int calls = 0;
  std::mt19937_64 random(2);
  const absl::Status status = RetryTransient(
      Returning(std::vector<absl::Status>(4, absl::ResourceExhaustedError("busy")), &calls),
      kDelays, random, recorder.Hook());
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  EXPECT_EQ(calls, 4);
  EXPECT_THAT(recorder.waits, SizeIs(3));
}

// The command's deadline: a wait that would end after it is not started. Without the wait
// skipped, the call would run a second time (Returning would hand out the second status).
TEST(RetryTransientTest, NoRetryWaitsPastTheDeadline) {
  Recorder recorder;
  int calls = 0;
  std::mt19937_64 random(4);
  const absl::Status status = RetryTransient(
      Returning({absl::DeadlineExceededError("slow"), absl::OkStatus()}, &calls), kDelays, random,
      recorder.Hook(), absl::Now() + absl::Milliseconds(100));  // below the shortest wait, 500 ms
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(recorder.waits.empty());

  calls = 0;
  EXPECT_TRUE(RetryTransient(Returning({absl::UnavailableError("down"), absl::OkStatus()}, &calls),
                             kDelays, random, recorder.Hook(), absl::Now() + absl::Hours(1))
                  .ok());
  EXPECT_EQ(calls, 2);
}

TEST(RetryTransientTest, PermanentFailuresAreNotRetried) {
  for (const absl::Status& failure :
       {absl::NotFoundError("namespace"), absl::InvalidArgumentError("url"),
        absl::PermissionDeniedError("token"), absl::UnauthenticatedError("expired"),
        absl::AlreadyExistsError("taken"), absl::InternalError("bug")}) {
    Recorder recorder;
    int calls = 0;
    std::mt19937_64 random(3);
    EXPECT_EQ(RetryTransient(Returning({failure}, &calls), kDelays, random, recorder.Hook()),
              failure);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(recorder.waits.empty());
  }
}

TEST(JitteredTest, SpansHalfToOneAndAHalfTimesTheDelay) {
  FixedBits lowest(FixedBits::min());
  FixedBits highest(FixedBits::max());
  for (const absl::Duration delay : kDelays) {
    EXPECT_EQ(Jittered(delay, lowest), delay / 2);
    // The highest bits give the top of the interval, short of it by less than a millisecond.
    EXPECT_THAT(Jittered(delay, highest),
                AllOf(Ge(delay * 3 / 2 - absl::Milliseconds(1)), Le(delay * 3 / 2)));
  }
}

// Many hosts retrying after the same failure wait different times, all within the bounds: a
// fleet's retries do not arrive in lockstep.
TEST(JitteredTest, SpreadsTheWaitsOfAFleet) {
  std::mt19937_64 random(42);
  std::vector<absl::Duration> waits;
  std::set<absl::Duration> distinct;
  for (int host = 0; host < 500; ++host) {
    waits.push_back(Jittered(absl::Seconds(1), random));
    distinct.insert(waits.back());
  }
  EXPECT_THAT(waits, Each(AllOf(Ge(absl::Milliseconds(500)), Le(absl::Milliseconds(1500)))));
  // 500 draws from 1001 whole milliseconds: nearly all distinct.
  EXPECT_GT(distinct.size(), 300U);
  int early = 0;
  for (const absl::Duration wait : waits) {
    early += wait < absl::Seconds(1) ? 1 : 0;
  }
  EXPECT_GT(early, 150);
  EXPECT_LT(early, 350);
}

}  // namespace
}  // namespace discovery::cli
