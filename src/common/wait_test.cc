#include "common/wait.h"

#include <stop_token>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace discovery {
namespace {

TEST(SleepUnlessStoppedTest, ReturnsTrueWhenTheTimeoutPasses) {
  const std::stop_source source;
  EXPECT_TRUE(SleepUnlessStopped(source.get_token(), absl::Milliseconds(1)));
}

TEST(SleepUnlessStoppedTest, ReturnsAtOnceWhenAlreadyStopped) {
  std::stop_source source;
  source.request_stop();
  // An hour: without the stop the test would time out instead of passing.
  EXPECT_FALSE(SleepUnlessStopped(source.get_token(), absl::Hours(1)));
}

TEST(SleepUnlessStoppedTest, AStopRequestWakesTheSleeper) {
  absl::Notification started;
  bool slept_through = true;
  std::jthread sleeper([&](const std::stop_token& stop) {
    started.Notify();
    slept_through = SleepUnlessStopped(stop, absl::Hours(1));
  });
  started.WaitForNotification();
  sleeper.request_stop();
  sleeper.join();
  EXPECT_FALSE(slept_through);
}

}  // namespace
}  // namespace discovery
