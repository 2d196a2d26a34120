#include "auth/userinfo_cache.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::auth {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

Principal Alice() {
  return {.kind = Principal::Kind::kUser, .name = "alice", .roles = {"discovery-admin"}};
}

TEST(UserinfoCacheTest, KeepsTheAnswerUntilTheTokenExpires) {
  UserinfoCache cache(8);
  int calls = 0;
  const UserinfoCache::Fetch fetch = [&]() -> absl::StatusOr<Principal> {
    ++calls;
    return Alice();
  };
  const absl::Time expires = kNow + absl::Seconds(30);
  ASSERT_THAT(cache.Get("t1", kNow, expires, fetch), IsOk());
  absl::StatusOr<Principal> again = cache.Get("t1", kNow + absl::Seconds(29), expires, fetch);
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT(again->roles, ElementsAre("discovery-admin"));
  EXPECT_EQ(calls, 1);
  // Another token is another question.
  ASSERT_THAT(cache.Get("t2", kNow, expires, fetch), IsOk());
  EXPECT_EQ(calls, 2);
  // At the expiry the kept answer is no longer used.
  ASSERT_THAT(cache.Get("t1", expires, expires, fetch), IsOk());
  EXPECT_EQ(calls, 3);
}

TEST(UserinfoCacheTest, FailuresAreNotKept) {
  UserinfoCache cache(8);
  int calls = 0;
  bool down = true;
  const UserinfoCache::Fetch fetch = [&]() -> absl::StatusOr<Principal> {
    ++calls;
    if (down) {
      return absl::UnavailableError("oidc provider is not reachable");
    }
    return Alice();
  };
  const absl::Time expires = kNow + absl::Minutes(5);
  EXPECT_THAT(cache.Get("t", kNow, expires, fetch), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(cache.Get("t", kNow, expires, fetch), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(cache.size(), 0U);
  down = false;
  EXPECT_THAT(cache.Get("t", kNow, expires, fetch), IsOk());
  EXPECT_THAT(cache.Get("t", kNow, expires, fetch), IsOk());
  EXPECT_EQ(calls, 3);
}

TEST(UserinfoCacheTest, ConcurrentRequestsForOneTokenShareOneCall) {
  UserinfoCache cache(8);
  std::atomic<int> calls = 0;
  std::atomic<int> waiting = 0;
  absl::Notification release;
  const UserinfoCache::Fetch fetch = [&]() -> absl::StatusOr<Principal> {
    ++calls;
    release.WaitForNotification();
    return Alice();
  };
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::atomic<int> ok = 0;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      ++waiting;
      if (cache.Get("t", kNow, kNow + absl::Minutes(5), fetch).ok()) {
        ++ok;
      }
    });
  }
  // Let every thread reach Get while the first call is held; they then wait for it.
  while (waiting.load() < kThreads) {
    std::this_thread::yield();
  }
  absl::SleepFor(absl::Milliseconds(50));
  release.Notify();
  for (std::thread& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(ok.load(), kThreads);
  EXPECT_EQ(calls.load(), 1);
}

TEST(UserinfoCacheTest, ConcurrentRequestsShareAFailure) {
  UserinfoCache cache(8);
  std::atomic<int> calls = 0;
  absl::Notification entered;
  absl::Notification release;
  const UserinfoCache::Fetch fetch = [&]() -> absl::StatusOr<Principal> {
    ++calls;
    entered.Notify();
    release.WaitForNotification();
    return absl::UnavailableError("down");
  };
  absl::Status first;
  std::thread leader([&] { first = cache.Get("t", kNow, kNow + absl::Hours(1), fetch).status(); });
  entered.WaitForNotification();
  absl::Status second;
  std::thread follower(
      [&] { second = cache.Get("t", kNow, kNow + absl::Hours(1), fetch).status(); });
  absl::SleepFor(absl::Milliseconds(50));
  release.Notify();
  leader.join();
  follower.join();
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kUnavailable));
  // The follower either joined the failed call or, arriving after it, made its own.
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LE(calls.load(), 2);
}

TEST(UserinfoCacheTest, IsBounded) {
  UserinfoCache cache(2);
  const UserinfoCache::Fetch fetch = [] { return absl::StatusOr<Principal>(Alice()); };
  for (int i = 0; i < 10; ++i) {
    ASSERT_THAT(cache.Get(absl::StrCat("t", i), kNow, kNow + absl::Hours(1), fetch), IsOk());
  }
  EXPECT_EQ(cache.size(), 2U);
  // Expired answers leave first.
  UserinfoCache short_lived(2);
  ASSERT_THAT(short_lived.Get("a", kNow, kNow + absl::Seconds(1), fetch), IsOk());
  ASSERT_THAT(short_lived.Get("b", kNow, kNow + absl::Hours(1), fetch), IsOk());
  int calls = 0;
  const UserinfoCache::Fetch counted = [&] {
    ++calls;
    return absl::StatusOr<Principal>(Alice());
  };
  ASSERT_THAT(short_lived.Get("c", kNow + absl::Seconds(2), kNow + absl::Hours(1), counted),
              IsOk());
  ASSERT_THAT(short_lived.Get("b", kNow + absl::Seconds(2), kNow + absl::Hours(1), counted),
              IsOk());
  EXPECT_EQ(calls, 1);  // "b" was kept, the expired "a" made room
  UserinfoCache none(0);
  ASSERT_THAT(none.Get("a", kNow, kNow + absl::Hours(1), counted), IsOk());
  EXPECT_EQ(none.size(), 0U);
}

}  // namespace
}  // namespace discovery::auth
