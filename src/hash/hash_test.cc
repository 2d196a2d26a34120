#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "hash/crc64.h"
#include "hash/fnv1a.h"
#include "hash/jump_hash.h"

namespace discovery::hash {
namespace {

using ::testing::ElementsAreArray;

TEST(Fnv1a64Test, KnownValues) {
  // The empty input hashes to the offset basis.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(Fnv1a64Test, HashesBytesNotCharacters) {
  // A negative char is xored in as its unsigned byte value.
  EXPECT_EQ(Fnv1a64("\xff"), 0xaf64724c8602eb6eULL);
}

TEST(Crc64XzTest, CheckValue) { EXPECT_EQ(Crc64Xz("123456789"), 0x995dc9bbdf1939faULL); }

TEST(Crc64XzTest, EmptyInputIsZero) {
  // init and final xor cancel out when no byte is fed.
  EXPECT_EQ(Crc64Xz(""), 0U);
}

TEST(Crc64XzTest, HashesBytesNotCharacters) {
  // A negative char must index the table as its unsigned byte value.
  const std::string high_bytes = "\xd1\x91\xff\x80";
  EXPECT_NE(Crc64Xz(high_bytes), Crc64Xz("\x51\x11\x7f\x00"));
  EXPECT_EQ(Crc64Xz(high_bytes), Crc64Xz(std::string_view(high_bytes)));
}

// Bit-at-a-time CRC-64/XZ straight from the definition, to check the table-driven version on
// every input length and alignment of its 8-byte steps.
uint64_t BitwiseCrc64Xz(std::string_view data) {
  uint64_t crc = ~uint64_t{0};
  for (const char c : data) {
    crc ^= static_cast<unsigned char>(c);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xC96C5795D7870F42ULL : crc >> 1;
    }
  }
  return ~crc;
}

TEST(Crc64XzTest, MatchesBitwiseDefinition) {
  std::string data;
  uint64_t state = 42;
  for (int length = 0; length <= 100; ++length) {
    ASSERT_EQ(Crc64Xz(data), BitwiseCrc64Xz(data)) << "length=" << length;
    for (int offset = 1; offset < 8 && offset <= length; ++offset) {
      const std::string_view tail = std::string_view{data}.substr(offset);
      ASSERT_EQ(Crc64Xz(tail), BitwiseCrc64Xz(tail)) << "length=" << length << " offset=" << offset;
    }
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    data.push_back(static_cast<char>(state >> 56));
  }
}

struct JumpCase {
  uint64_t key;
  int32_t buckets;
  int32_t want;
};

// internal/hash/jump_test.go of the Go original.
TEST(JumpHashTest, StableForKnownKeys) {
  const std::vector<JumpCase> cases = {
      {1, 1, 0},        {42, 57, 43}, {0xDEAD10CC, 1, 0},    {0xDEAD10CC, 666, 361},
      {256, 1024, 520}, {0, -10, 0},  {0xDEAD10CC, -666, 0},
  };
  for (const JumpCase& c : cases) {
    EXPECT_EQ(JumpHash(c.key, c.buckets), c.want) << "key=" << c.key << " buckets=" << c.buckets;
  }
}

TEST(JumpHashTest, ZeroBucketsActsAsOne) { EXPECT_EQ(JumpHash(0xDEAD10CC, 0), 0); }

struct JumpStringCase {
  std::string key;
  int32_t buckets;
  int32_t want;
};

// The Go string variant hashes the UTF-8 bytes with CRC-64/XZ first.
TEST(JumpHashTest, StableForKnownStrings) {
  const std::vector<JumpStringCase> cases = {
      {"localhost", 10, 6},
      {"\xd1\x91\xd0\xbb\xd0\xba\xd0\xb0", 3, 0},           // ёлка
      {"\xd0\xb2\xd0\xb5\xd1\x82\xd0\xb5\xd1\x80", 10, 7},  // ветер
  };
  for (const JumpStringCase& c : cases) {
    EXPECT_EQ(JumpHash(Crc64Xz(c.key), c.buckets), c.want) << c.key;
  }
}

struct EndpointVector {
  std::string endpoint;
  uint64_t crc;
  std::vector<int32_t> jump_1_to_8;
};

// Computed independently of the Go original; they match its tests (docs/decisions.md D27).
TEST(JumpHashTest, EndpointVectors) {
  const std::vector<EndpointVector> vectors = {
      {"http://example.com/metrics", 0x660928d6151b68ebULL, {0, 0, 2, 2, 2, 2, 2, 2}},
      {"http://blackbox.example.com", 0x10d3b1e3b278c6baULL, {0, 0, 0, 0, 0, 0, 0, 0}},
      {"http://p.example.com/metrics", 0x0a388712bc7138feULL, {0, 1, 1, 1, 1, 1, 1, 1}},
      {"http://t.example.com/metrics", 0x593cf3b5bdbbc38dULL, {0, 0, 0, 0, 0, 0, 0, 0}},
      {"https://www.test.com:7002/metrics", 0x10f45370f0cc42f2ULL, {0, 0, 2, 2, 2, 2, 6, 6}},
  };
  for (const EndpointVector& v : vectors) {
    const uint64_t crc = Crc64Xz(v.endpoint);
    EXPECT_EQ(crc, v.crc) << v.endpoint;
    std::vector<int32_t> got;
    for (int32_t n = 1; n <= 8; ++n) {
      got.push_back(JumpHash(crc, n));
    }
    EXPECT_THAT(got, ElementsAreArray(v.jump_1_to_8)) << v.endpoint;
  }
}

TEST(JumpHashTest, ResultIsAlwaysInRange) {
  uint64_t key = 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < 1000; ++i) {
    key = key * 6364136223846793005ULL + 1442695040888963407ULL;
    const int32_t buckets = 1 + i % 300;
    const int32_t got = JumpHash(key, buckets);
    ASSERT_GE(got, 0);
    ASSERT_LT(got, buckets);
  }
}

// The defining property of jump hashing: growing from n to n+1 buckets moves a key only into
// the new bucket.
TEST(JumpHashTest, GrowingMovesKeysOnlyToTheNewBucket) {
  uint64_t key = 1;
  for (int i = 0; i < 2000; ++i) {
    key = key * 6364136223846793005ULL + 1442695040888963407ULL;
    for (int32_t n = 1; n < 20; ++n) {
      const int32_t before = JumpHash(key, n);
      const int32_t after = JumpHash(key, n + 1);
      ASSERT_TRUE(after == before || after == n) << "key=" << key << " n=" << n;
    }
  }
}

}  // namespace
}  // namespace discovery::hash
