#include "cli/bulk.h"

#include <array>
#include <atomic>
#include <deque>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr std::array<absl::Duration, 2> kShortDelays = {absl::Milliseconds(1),
                                                        absl::Milliseconds(2)};

// Answers calls on its own thread, in the order they were started, as a server would.
class FakeServer {
 public:
  explicit FakeServer(std::function<absl::Status(size_t index, int attempt)> outcome)
      : outcome_(std::move(outcome)), thread_([this] { Answer(); }) {}
  ~FakeServer() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;
  FakeServer(FakeServer&&) = delete;
  FakeServer& operator=(FakeServer&&) = delete;

  void Start(size_t index, std::function<void(absl::Status)> done) {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    pending_.emplace_back(index, std::move(done));
  }

  int max_in_flight() {
    absl::MutexLock lock(&mu_);
    return max_in_flight_;
  }
  int attempts(size_t index) {
    absl::MutexLock lock(&mu_);
    return attempts_[index];
  }

 private:
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !pending_.empty() || stopping_; }

  void Answer() {
    while (true) {
      std::pair<size_t, std::function<void(absl::Status)>> call;
      absl::Status status;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &FakeServer::HasWork));
        if (pending_.empty()) {
          return;
        }
        call = std::move(pending_.front());
        pending_.pop_front();
        --in_flight_;
        status = outcome_(call.first, attempts_[call.first]++);
      }
      call.second(status);
    }
  }

  std::function<absl::Status(size_t, int)> outcome_;
  absl::Mutex mu_;
  std::deque<std::pair<size_t, std::function<void(absl::Status)>>> pending_ ABSL_GUARDED_BY(mu_);
  std::map<size_t, int> attempts_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST(RunBulkTest, EveryCallFinishesOnceWithAtMostTheBoundInFlight) {
  FakeServer server([](size_t index, int) {
    return index % 7 == 3 ? absl::InvalidArgumentError("bad") : absl::OkStatus();
  });
  std::vector<int> finished(1000, 0);
  size_t reported_failures = 0;
  const size_t failed = RunBulk(
      finished.size(), {.max_in_flight = 8, .retry_delays = kShortDelays},
      [&](size_t i, std::function<void(absl::Status)> done) { server.Start(i, std::move(done)); },
      [&](size_t i, const absl::Status& status) {
        ++finished[i];
        reported_failures += status.ok() ? 0 : 1;
      },
      [](size_t, const absl::Status&, absl::Duration) { ADD_FAILURE() << "nothing is transient"; });
  EXPECT_EQ(failed, 143U);  // 3, 10, ..., 997
  EXPECT_EQ(reported_failures, 143U);
  EXPECT_EQ(std::count(finished.begin(), finished.end(), 1), 1000);
  EXPECT_LE(server.max_in_flight(), 8);
  EXPECT_GE(server.max_in_flight(), 2);
  EXPECT_EQ(server.attempts(3), 1);  // a final failure is not retried
}

TEST(RunBulkTest, TransientFailuresAreRetriedWhileDelaysAreLeft) {
  // Call 0 succeeds on its second attempt; call 1 is always unavailable.
  FakeServer server([](size_t index, int attempt) {
    if (index == 0 && attempt == 0) {
      return absl::UnavailableError("busy");
    }
    return index == 1 ? absl::UnavailableError("down") : absl::OkStatus();
  });
  std::vector<std::pair<size_t, absl::StatusCode>> finished;
  std::vector<size_t> retried;
  const size_t failed = RunBulk(
      3, {.max_in_flight = 2, .retry_delays = kShortDelays},
      [&](size_t i, std::function<void(absl::Status)> done) { server.Start(i, std::move(done)); },
      [&](size_t i, const absl::Status& status) { finished.emplace_back(i, status.code()); },
      [&](size_t i, const absl::Status&, absl::Duration) { retried.push_back(i); });
  EXPECT_EQ(failed, 1U);
  std::sort(finished.begin(), finished.end());
  EXPECT_THAT(finished,
              ElementsAre(Pair(0, absl::StatusCode::kOk), Pair(1, absl::StatusCode::kUnavailable),
                          Pair(2, absl::StatusCode::kOk)));
  EXPECT_EQ(server.attempts(0), 2);
  EXPECT_EQ(server.attempts(1), 3);  // the first attempt and one per delay
  EXPECT_EQ(std::count(retried.begin(), retried.end(), 1), 2);
}

TEST(RunBulkTest, CallsAnsweredAtOnceAndNoCalls) {
  size_t finished = 0;
  EXPECT_EQ(
      RunBulk(
          100, {.max_in_flight = 1},
          [](size_t, const std::function<void(absl::Status)>& done) { done(absl::OkStatus()); },
          [&](size_t, const absl::Status&) { ++finished; },
          [](size_t, const absl::Status&, absl::Duration) {}),
      0U);
  EXPECT_EQ(finished, 100U);
  EXPECT_EQ(RunBulk(
                0, {}, [](size_t, const std::function<void(absl::Status)>&) { ADD_FAILURE(); },
                [](size_t, const absl::Status&) { ADD_FAILURE(); },
                [](size_t, const absl::Status&, absl::Duration) {}),
            0U);
}

}  // namespace
}  // namespace discovery::cli
