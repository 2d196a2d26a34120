#include "auth/token_cache.h"

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::auth {
namespace {

using ::testing::Optional;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

Principal Machine(std::string name) {
  return Principal{.kind = Principal::Kind::kMachine, .name = std::move(name)};
}

TEST(VerifiedTokenCacheTest, FindsATokenFromItsVerificationUntilItsExpiry) {
  VerifiedTokenCache cache(8);
  cache.Insert("token-a", Machine("a"), kNow, kNow + absl::Minutes(1));
  EXPECT_THAT(cache.Find("token-a", kNow), Optional(Machine("a")));
  EXPECT_THAT(cache.Find("token-a", kNow + absl::Minutes(1) - absl::Nanoseconds(1)),
              Optional(Machine("a")));
  EXPECT_EQ(cache.Find("token-a", kNow + absl::Minutes(1)), std::nullopt);
  EXPECT_EQ(cache.Find("token-a", kNow - absl::Nanoseconds(1)), std::nullopt);
  EXPECT_EQ(cache.Find("token-b", kNow), std::nullopt);
  // Only the exact token string matches.
  EXPECT_EQ(cache.Find("token-a ", kNow), std::nullopt);
  EXPECT_EQ(cache.Find("token-", kNow), std::nullopt);
}

TEST(VerifiedTokenCacheTest, TokensWithoutExpiryStay) {
  VerifiedTokenCache cache(8);
  cache.Insert("forever", Machine("f"), kNow, std::nullopt);
  EXPECT_THAT(cache.Find("forever", kNow + absl::Hours(24 * 365 * 100)), Optional(Machine("f")));
}

TEST(VerifiedTokenCacheTest, HoldsAtMostItsCapacity) {
  VerifiedTokenCache cache(3);
  for (int i = 0; i < 20; ++i) {
    const std::string token = "token-" + std::to_string(i);
    cache.Insert(token, Machine(token), kNow, kNow + absl::Hours(1));
    EXPECT_LE(cache.size(), 3);
    // The newest is always kept.
    EXPECT_THAT(cache.Find(token, kNow), Optional(Machine(token)));
  }
  EXPECT_EQ(cache.size(), 3);
  // Inserting a token already held does not evict another.
  cache.Insert("token-19", Machine("token-19"), kNow, kNow + absl::Hours(1));
  EXPECT_EQ(cache.size(), 3);
}

TEST(VerifiedTokenCacheTest, DropsExpiredTokensFirstWhenFull) {
  VerifiedTokenCache cache(3);
  cache.Insert("short", Machine("s"), kNow, kNow + absl::Seconds(1));
  cache.Insert("long-1", Machine("l1"), kNow, kNow + absl::Hours(1));
  cache.Insert("long-2", Machine("l2"), kNow, kNow + absl::Hours(1));
  cache.Insert("new", Machine("n"), kNow + absl::Seconds(2), kNow + absl::Hours(1));
  EXPECT_EQ(cache.size(), 3);
  EXPECT_THAT(cache.Find("long-1", kNow + absl::Seconds(2)), Optional(Machine("l1")));
  EXPECT_THAT(cache.Find("long-2", kNow + absl::Seconds(2)), Optional(Machine("l2")));
  EXPECT_THAT(cache.Find("new", kNow + absl::Seconds(2)), Optional(Machine("n")));
}

TEST(VerifiedTokenCacheTest, KeepsNothingWithoutCapacityOrForHugeTokens) {
  VerifiedTokenCache none(0);
  none.Insert("token", Machine("t"), kNow, std::nullopt);
  EXPECT_EQ(none.size(), 0);
  EXPECT_EQ(none.Find("token", kNow), std::nullopt);

  VerifiedTokenCache cache(8);
  const std::string huge(VerifiedTokenCache::kMaxTokenBytes + 1, 'x');
  cache.Insert(huge, Machine("h"), kNow, std::nullopt);
  EXPECT_EQ(cache.size(), 0);
  EXPECT_EQ(cache.Find(huge, kNow), std::nullopt);
}

TEST(VerifiedTokenCacheTest, ConcurrentUse) {
  VerifiedTokenCache cache(16);
  constexpr int kThreads = 4;
  std::vector<std::jthread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string token = "token-" + std::to_string((t * 7 + i) % 40);
        if (std::optional<Principal> found = cache.Find(token, kNow); found.has_value()) {
          EXPECT_EQ(found->name, token);
        } else {
          cache.Insert(token, Machine(token), kNow, kNow + absl::Hours(1));
        }
      }
    });
  }
  threads.clear();  // joins
  EXPECT_LE(cache.size(), 16);
}

}  // namespace
}  // namespace discovery::auth
