// Checks the ThreadSanitizer shim (tsan_absl_mutex.cc) against the hand-overs absl::Mutex makes
// inside Debian's uninstrumented libabsl. In other builds it checks only the outcomes; under TSan
// a missed hand-over is reported as a data race and fails the test executable.
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

constexpr int kRounds = 2000;

// A turn two threads hand back and forth.
struct Turns {
  absl::Mutex mu;
  int turn ABSL_GUARDED_BY(mu) = 0;  // whose turn it is: 0 or 1
  int passed ABSL_GUARDED_BY(mu) = 0;

  void Pass(int mine) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++passed;
    turn = 1 - mine;
  }
};

// Runs take_turn(turns, mine) kRounds times on this thread (mine = 0) and on another (mine = 1);
// each call waits with a Condition in its own frame, which absl evaluates on the other thread as
// it unlocks, and the next call builds its Condition in the same stack slot. Returns how often
// the turn was passed.
template <typename TakeTurn>
int PlayBothSides(TakeTurn take_turn) {
  Turns turns;
  auto play = [&turns, &take_turn](int mine) {
    for (int round = 0; round < kRounds; ++round) {
      take_turn(turns, mine);
    }
  };
  std::thread other(play, 1);
  play(0);
  other.join();
  absl::MutexLock lock(&turns.mu);
  return turns.passed;
}

TEST(TsanAbslMutexTest, AConditionReadByTheUnlockingThreadIsOrderedBeforeItsOwnerReusesIt) {
  EXPECT_EQ(PlayBothSides([](Turns& turns, int mine) {
              auto my_turn = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(turns.mu) {
                return turns.turn == mine;
              };
              absl::MutexLock lock(&turns.mu, absl::Condition(&my_turn));
              turns.Pass(mine);
            }),
            2 * kRounds);
}

// The same hand-over through Await with a timeout, the shape of a periodic timer thread that also
// wakes on a flag: the waiter holds the mutex while it waits.
TEST(TsanAbslMutexTest, AnAwaitedConditionIsOrderedBeforeItsOwnerReusesIt) {
  EXPECT_EQ(PlayBothSides([](Turns& turns, int mine) {
              auto my_turn = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(turns.mu) {
                return turns.turn == mine;
              };
              absl::MutexLock lock(&turns.mu);
              while (!turns.mu.AwaitWithTimeout(absl::Condition(&my_turn), absl::Seconds(10))) {
              }
              turns.Pass(mine);
            }),
            2 * kRounds);
}

}  // namespace
