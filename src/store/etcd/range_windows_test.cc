#include "store/etcd/range_windows.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::store::etcd_internal {
namespace {

using ::testing::ElementsAreArray;
using ::testing::Le;

const std::string kNul(1, '\0');

// What reading a sorted key set through RangeWindows cost, as etcd 3.4 would answer each window.
struct Reading {
  std::vector<std::string> keys;  // in the order read
  size_t requests = 0;
  size_t walked = 0;  // keys etcd visited to count the windows
};

Reading ReadAll(const std::set<std::string>& stored, const std::string& key,
                const std::string& range_end, size_t page_keys) {
  Reading reading;
  RangeWindows windows(key, range_end, page_keys);
  while (!windows.done() && reading.requests < 1'000'000) {
    ++reading.requests;
    const auto begin = stored.lower_bound(windows.start());
    const auto end = windows.end() == kNul ? stored.end() : stored.lower_bound(windows.end());
    const auto count = static_cast<size_t>(std::distance(begin, end));
    reading.walked += count;
    std::vector<std::string> page;
    for (auto it = begin; it != end && page.size() < page_keys; ++it) {
      page.push_back(*it);
    }
    reading.keys.insert(reading.keys.end(), page.begin(), page.end());
    const bool more = count > page.size();
    if (page.empty()) {
      windows.Read(0, false, "", 0, "");
    } else {
      const size_t reference = page.size() / 2;
      windows.Read(static_cast<int64_t>(count), more, page[reference], page.size() - 1 - reference,
                   page.back());
    }
  }
  return reading;
}

std::vector<std::string> InRange(const std::set<std::string>& stored, const std::string& key,
                                 const std::string& range_end) {
  std::vector<std::string> keys;
  for (const std::string& k : stored) {
    if (k >= key && (range_end == kNul || k < range_end)) {
      keys.push_back(k);
    }
  }
  return keys;
}

std::string HexId(std::mt19937_64& random) { return fmt::format("{:016x}", random()); }

// The layout of discovery's keys: a few namespaces and servers, then many services of
// namespaces whose ids are hashes.
std::set<std::string> DiscoveryLayout(int namespaces, int services_each, std::mt19937_64& random) {
  std::set<std::string> keys = {"/discovery/placement/v1/settings"};
  for (int n = 0; n < namespaces; ++n) {
    keys.insert(fmt::format("/discovery/namespace/v1/ns{}", n));
    for (int i = 0; i < services_each; ++i) {
      keys.insert(fmt::format("/discovery/service/v1/ns{}/{}", n, HexId(random)));
    }
  }
  for (int s = 0; s < 10; ++s) {
    keys.insert(fmt::format("/discovery/server/v1/p{:02}", s));
  }
  return keys;
}

TEST(RangeWindowsTest, AHundredThousandKeysAreReadOnceWithWalksOfAboutWhatIsRead) {
  std::mt19937_64 random(1);
  const std::set<std::string> stored = DiscoveryLayout(1, 100'000, random);
  const Reading reading = ReadAll(stored, "/discovery/", "/discovery0", 4096);
  EXPECT_THAT(reading.keys, ElementsAreArray(InRange(stored, "/discovery/", "/discovery0")));
  // One request for the whole range walks it all once; pages that all end at the range's end
  // would walk about 12 times that (half of it on average, 25 times).
  EXPECT_THAT(reading.walked, Le(4 * stored.size()));
  EXPECT_THAT(reading.requests, Le(10 * stored.size() / 4096));
}

TEST(RangeWindowsTest, ManyNamespacesStayLinear) {
  std::mt19937_64 random(2);
  const std::set<std::string> stored = DiscoveryLayout(200, 500, random);
  const Reading reading = ReadAll(stored, "/discovery/", "/discovery0", 1000);
  EXPECT_THAT(reading.keys, ElementsAreArray(InRange(stored, "/discovery/", "/discovery0")));
  EXPECT_THAT(reading.walked, Le(6 * stored.size()));
}

TEST(RangeWindowsTest, KeysOfAnyBytesAndLengthsAreReadOnceInOrder) {
  std::mt19937_64 random(3);
  std::set<std::string> stored;
  for (int i = 0; i < 3000; ++i) {
    std::string key = "/p/";
    const size_t length = random() % 12;
    for (size_t j = 0; j < length; ++j) {
      // Bytes bunched at both ends of the range, NUL and 0xff among them.
      const uint64_t pick = random() % 4;
      key.push_back(static_cast<char>(pick == 0   ? 0x00
                                      : pick == 1 ? 0xff
                                                  : static_cast<int>(random() % 256)));
    }
    stored.insert(key);
  }
  stored.insert("/o/before");
  stored.insert("/q/after");
  for (const size_t page : {1, 2, 7, 100, 5000}) {
    const Reading reading = ReadAll(stored, "/p/", "/p0", page);
    EXPECT_THAT(reading.keys, ElementsAreArray(InRange(stored, "/p/", "/p0"))) << page;
  }
}

TEST(RangeWindowsTest, AnUnboundedRangeReadsToTheLastKey) {
  std::set<std::string> stored = {kNul, "a", "b", std::string(3, '\xff'), "\xff\xff\xff\xff"};
  for (const size_t page : {1, 2, 10}) {
    const Reading reading = ReadAll(stored, kNul, kNul, page);
    EXPECT_THAT(reading.keys, ElementsAreArray(InRange(stored, kNul, kNul))) << page;
  }
}

TEST(RangeWindowsTest, APageAsLargeAsTheRangeTakesOneRequest) {
  std::mt19937_64 random(4);
  const std::set<std::string> stored = DiscoveryLayout(3, 100, random);
  for (const size_t page : {stored.size(), std::numeric_limits<size_t>::max()}) {
    const Reading reading = ReadAll(stored, "/discovery/", "/discovery0", page);
    EXPECT_THAT(reading.keys, ElementsAreArray(InRange(stored, "/discovery/", "/discovery0")));
    EXPECT_EQ(reading.requests, 1U);
  }
}

TEST(RangeWindowsTest, AnEmptyRangeTakesOneRequest) {
  const std::set<std::string> stored = {"/a/x", "/c/x"};
  const Reading reading = ReadAll(stored, "/b/", "/b0", 100);
  EXPECT_TRUE(reading.keys.empty());
  EXPECT_EQ(reading.requests, 1U);
}

}  // namespace
}  // namespace discovery::store::etcd_internal
