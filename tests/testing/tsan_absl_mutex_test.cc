// Checks the ThreadSanitizer shim (tsan_absl_mutex.cc) against the hand-overs absl::Mutex makes
// inside Debian's uninstrumented libabsl. In other builds it checks only the outcomes; under TSan
// a missed hand-over is reported as a data race and fails the test executable.
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

constexpr int kRounds = 2000;

// Two threads hand a turn back and forth, each waiting with a Condition on its own stack. absl
// evaluates a waiter's Condition on the thread that unlocks, so each Condition is read by the
// other thread and then, once the wait ends, its stack slot is written by the next round's
// Condition of its owner.
TEST(TsanAbslMutexTest, AConditionReadByTheUnlockingThreadIsOrderedBeforeItsOwnerReusesIt) {
  absl::Mutex mu;
  int turn = 0;  // 0: the main thread's turn; 1: the other thread's
  int handed_over = 0;
  auto take_turns = [&](int mine) {
    for (int round = 0; round < kRounds; ++round) {
      auto my_turn = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return turn == mine; };
      absl::MutexLock lock(&mu, absl::Condition(&my_turn));
      ++handed_over;
      turn = 1 - mine;
    }
  };
  std::thread other([&] { take_turns(1); });
  take_turns(0);
  other.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(handed_over, 2 * kRounds);
}

// The same hand-over through Await with a timeout, the shape of a periodic timer thread that also
// wakes on a flag: the waiter holds the mutex, waits on a Condition that the setting thread
// evaluates while it unlocks, and reuses the slot on its next round.
TEST(TsanAbslMutexTest, AnAwaitedConditionIsOrderedBeforeItsOwnerReusesIt) {
  absl::Mutex mu;
  int turn = 0;
  int handed_over = 0;
  auto take_turns = [&](int mine) {
    for (int round = 0; round < kRounds; ++round) {
      auto my_turn = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return turn == mine; };
      absl::MutexLock lock(&mu);
      while (!mu.AwaitWithTimeout(absl::Condition(&my_turn), absl::Seconds(10))) {
      }
      ++handed_over;
      turn = 1 - mine;
    }
  };
  std::thread other([&] { take_turns(1); });
  take_turns(0);
  other.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(handed_over, 2 * kRounds);
}

}  // namespace
