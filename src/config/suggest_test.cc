#include "config/suggest.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::config {
namespace {

using ::testing::Eq;
using ::testing::Optional;

TEST(EditDistanceTest, CountsInsertionsDeletionsSubstitutionsAndSwaps) {
  EXPECT_EQ(EditDistance("", ""), 0U);
  EXPECT_EQ(EditDistance("server", "server"), 0U);
  EXPECT_EQ(EditDistance("servr", "server"), 1U);
  EXPECT_EQ(EditDistance("outptu", "output"), 1U);
  EXPECT_EQ(EditDistance("lsit", "list"), 1U);
  EXPECT_EQ(EditDistance("namespcae", "namespace"), 1U);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3U);
  EXPECT_EQ(EditDistance("", "abc"), 3U);
}

TEST(ClosestMatchTest, SuggestsLikelyTyposOnly) {
  const std::vector<std::string> commands = {"server", "srv",   "service", "svc",  "namespace",
                                             "ns",     "token", "login",   "list", "register"};
  EXPECT_THAT(ClosestMatch("servr", commands), Optional(Eq("server")));
  EXPECT_THAT(ClosestMatch("servise", commands), Optional(Eq("service")));
  EXPECT_THAT(ClosestMatch("lst", commands), Optional(Eq("list")));
  EXPECT_THAT(ClosestMatch("namesp", commands), Optional(Eq("namespace")));  // a prefix
  EXPECT_THAT(ClosestMatch("regsiter", commands), Optional(Eq("register")));
  EXPECT_EQ(ClosestMatch("frobnicate", commands), std::nullopt);
  EXPECT_EQ(ClosestMatch("xyz", commands), std::nullopt);
  // "se" is a prefix of both "server" and "service": no guess.
  EXPECT_EQ(ClosestMatch("se", commands), std::nullopt);
  const std::vector<std::string> flags = {"--output", "--headers", "--no-headers", "--namespace"};
  EXPECT_THAT(ClosestMatch("--outptu", flags), Optional(Eq("--output")));
  EXPECT_THAT(ClosestMatch("--header", flags), Optional(Eq("--headers")));
  EXPECT_EQ(ClosestMatch("--frobnicate", flags), std::nullopt);
}

}  // namespace
}  // namespace discovery::config
