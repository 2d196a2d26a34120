#include "compress/gzip.h"

#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::compress {
namespace {

using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;

TEST(GzipTest, RoundTripsAndShrinksRepetitiveJson) {
  std::string json = "[";
  for (int i = 0; i < 10000; ++i) {
    json += R"({"targets":["host)" + std::to_string(i) +
            R"(.example.com:9100"],"labels":{"job":"node"}},)";
  }
  json.back() = ']';
  const std::string compressed = Gzip(json);
  ASSERT_GE(compressed.size(), 18U);
  EXPECT_EQ(static_cast<unsigned char>(compressed[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>(compressed[1]), 0x8b);
  EXPECT_LT(compressed.size() * 5, json.size());
  EXPECT_THAT(Gunzip(compressed), IsOkAndHolds(json));
  EXPECT_THAT(Gunzip(Gzip("")), IsOkAndHolds(""));
}

TEST(GzipTest, RandomBytesRoundTrip) {
  std::mt19937 random(42);
  std::string data(100000, '\0');
  for (char& c : data) {
    c = static_cast<char>(random());
  }
  EXPECT_THAT(Gunzip(Gzip(data, 1)), IsOkAndHolds(data));
  EXPECT_THAT(Gunzip(Gzip(data, 9)), IsOkAndHolds(data));
}

TEST(GzipTest, GunzipRejectsGarbageTruncationAndBombs) {
  const std::string compressed = Gzip(std::string(1 << 20, 'a'));
  EXPECT_THAT(Gunzip("not gzip at all"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Gunzip(compressed.substr(0, compressed.size() / 2)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Gunzip(compressed, 1000), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(GzipTest, AcceptEncodingFollowsRfc9110) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP"));
  EXPECT_TRUE(AcceptsGzip("br;q=1.0, gzip;q=0.8, *;q=0.1"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0.0, *"));
  EXPECT_FALSE(AcceptsGzip("*;q=0"));
  EXPECT_FALSE(AcceptsGzip("br"));
}

}  // namespace
}  // namespace discovery::compress
