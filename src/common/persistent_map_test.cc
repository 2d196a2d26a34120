#include "common/persistent_map.h"

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::persistent {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using IntMap = Map<int, int>;

std::vector<std::pair<int, int>> Contents(const IntMap& map) {
  std::vector<std::pair<int, int>> out;
  map.ForEach([&out](int key, int value) { out.emplace_back(key, value); });
  return out;
}

std::vector<std::pair<int, int>> Contents(const std::map<int, int>& map) {
  return {map.begin(), map.end()};
}

struct Differences {
  std::set<std::pair<int, int>> removed;
  std::set<std::pair<int, int>> added;
  std::set<std::tuple<int, int, int>> changed;

  friend bool operator==(const Differences&, const Differences&) = default;
};

Differences DiffOf(const IntMap& before, const IntMap& after) {
  Differences d;
  IntMap::Diff(
      before, after, [&d](int key, int value) { d.removed.emplace(key, value); },
      [&d](int key, int value) { d.added.emplace(key, value); },
      [&d](int key, int old_value, int new_value) {
        d.changed.emplace(key, old_value, new_value);
      });
  return d;
}

Differences ExpectedDiff(const std::map<int, int>& before, const std::map<int, int>& after) {
  Differences d;
  for (const auto& [key, value] : before) {
    auto it = after.find(key);
    if (it == after.end()) {
      d.removed.emplace(key, value);
    } else if (it->second != value) {
      d.changed.emplace(key, value, it->second);
    }
  }
  for (const auto& [key, value] : after) {
    if (!before.contains(key)) {
      d.added.emplace(key, value);
    }
  }
  return d;
}

TEST(PersistentMapTest, InsertFindEraseLeaveEarlierVersionsUntouched) {
  const IntMap empty;
  const IntMap one = empty.Insert(1, 10);
  const IntMap two = one.Insert(2, 20);
  const IntMap replaced = two.Insert(1, 11);
  const IntMap erased = replaced.Erase(2);

  EXPECT_TRUE(empty.empty());
  EXPECT_THAT(Contents(one), ElementsAre(Pair(1, 10)));
  EXPECT_THAT(Contents(two), ElementsAre(Pair(1, 10), Pair(2, 20)));
  EXPECT_THAT(Contents(replaced), ElementsAre(Pair(1, 11), Pair(2, 20)));
  EXPECT_THAT(Contents(erased), ElementsAre(Pair(1, 11)));
  ASSERT_NE(two.Find(2), nullptr);
  EXPECT_EQ(*two.Find(2), 20);
  EXPECT_EQ(erased.Find(2), nullptr);
  EXPECT_EQ(two.size(), 2U);
  EXPECT_TRUE(erased.Erase(42).SameAs(erased));
}

TEST(PersistentMapTest, HeterogeneousLookupWithStringKeys) {
  const Map<std::string, int> map = Map<std::string, int>().Insert("b", 2).Insert("a", 1);
  const std::string_view key = "b";
  ASSERT_NE(map.Find(key), nullptr);
  EXPECT_EQ(*map.Find(key), 2);
  EXPECT_EQ(map.Erase(std::string_view("a")).size(), 1U);
}

// Random updates checked against std::map after every step, keeping every version: old
// versions must never change, Diff between any two must be exact, and a map built at once from
// the sorted contents must equal the one built step by step.
TEST(PersistentMapTest, RandomOperationsAgreeWithStdMap) {
  std::mt19937 random(20261204);
  std::uniform_int_distribution<int> key_of(0, 300);
  std::uniform_int_distribution<int> value_of(0, 3);
  std::uniform_int_distribution<int> operation(0, 9);
  std::vector<IntMap> versions{IntMap()};
  std::vector<std::map<int, int>> expected{{}};
  for (int step = 0; step < 3000; ++step) {
    IntMap next = versions.back();
    std::map<int, int> model = expected.back();
    const int key = key_of(random);
    if (operation(random) < 3) {
      std::optional<int> erased;
      next = next.Erase(key, &erased);
      auto held = model.find(key);
      ASSERT_EQ(erased, held == model.end() ? std::nullopt : std::optional<int>(held->second))
          << "step " << step;
      model.erase(key);
    } else {
      const int value = value_of(random);
      std::optional<int> replaced;
      next = next.Insert(key, value, &replaced);
      auto held = model.find(key);
      ASSERT_EQ(replaced, held == model.end() ? std::nullopt : std::optional<int>(held->second))
          << "step " << step;
      model[key] = value;
    }
    ASSERT_EQ(Contents(next), Contents(model)) << "step " << step;
    ASSERT_EQ(next.size(), model.size());
    versions.push_back(next);
    expected.push_back(model);
  }
  std::uniform_int_distribution<size_t> version_of(0, versions.size() - 1);
  for (int check = 0; check < 300; ++check) {
    const size_t a = version_of(random);
    const size_t b = version_of(random);
    ASSERT_EQ(Contents(versions[a]), Contents(expected[a]));
    ASSERT_EQ(DiffOf(versions[a], versions[b]), ExpectedDiff(expected[a], expected[b]))
        << a << " -> " << b;
  }
  const IntMap rebuilt = IntMap::FromSorted(Contents(expected.back()));
  EXPECT_EQ(Contents(rebuilt), Contents(expected.back()));
  EXPECT_EQ(rebuilt.size(), expected.back().size());
  EXPECT_EQ(DiffOf(rebuilt, versions.back()), Differences{});
  // Updates of a bulk-built map behave like any other.
  const IntMap updated = rebuilt.Insert(1000, 1).Erase(expected.back().begin()->first);
  std::map<int, int> model = expected.back();
  model[1000] = 1;
  model.erase(model.begin());
  EXPECT_EQ(Contents(updated), Contents(model));
  EXPECT_EQ(DiffOf(rebuilt, updated), ExpectedDiff(expected.back(), model));
}

TEST(PersistentMapTest, BatchesOfChangesAgreeWithStdMapAndKeepTheTreapShape) {
  std::mt19937 random(20261205);
  std::uniform_int_distribution<int> key_of(0, 2000);
  std::uniform_int_distribution<int> value_of(0, 3);
  std::uniform_int_distribution<int> batch_size_of(0, 300);
  std::uniform_int_distribution<int> operation(0, 9);
  IntMap map;
  std::map<int, int> model;
  for (int step = 0; step < 300; ++step) {
    std::map<int, std::optional<int>> batch;
    const int size = batch_size_of(random);
    for (int i = 0; i < size; ++i) {
      const int key = key_of(random);
      batch[key] = operation(random) < 4 ? std::nullopt : std::optional<int>(value_of(random));
    }
    const IntMap before = map;
    const std::map<int, int> model_before = model;
    for (const auto& [key, value] : batch) {
      if (value.has_value()) {
        model[key] = *value;
      } else {
        model.erase(key);
      }
    }
    std::map<int, int> replaced;
    map = map.Apply({batch.begin(), batch.end()}, [&](const IntMap::Change& change, int old) {
      EXPECT_TRUE(replaced.emplace(change.first, old).second) << change.first;
    });
    std::map<int, int> held;  // what the batch's keys held before it
    for (const auto& [key, value] : batch) {
      if (auto it = model_before.find(key); it != model_before.end()) {
        held.emplace(key, it->second);
      }
    }
    ASSERT_EQ(replaced, held) << "step " << step;
    ASSERT_TRUE(map.Valid()) << "step " << step;
    ASSERT_EQ(Contents(map), Contents(model)) << "step " << step;
    ASSERT_EQ(map.size(), model.size());
    ASSERT_EQ(Contents(before), Contents(model_before)) << "an earlier version changed";
    ASSERT_EQ(DiffOf(before, map), ExpectedDiff(model_before, model)) << "step " << step;
  }
  // Nothing to do leaves the very same version.
  EXPECT_TRUE(map.Apply({}).SameAs(map));
  EXPECT_TRUE(map.Apply({{-1, std::nullopt}, {5000, std::nullopt}}).SameAs(map));
  // Into an empty map a batch is a bulk build.
  const IntMap built = IntMap().Apply({{1, 10}, {2, std::nullopt}, {3, 30}});
  EXPECT_TRUE(built.Valid());
  EXPECT_THAT(Contents(built), ElementsAre(Pair(1, 10), Pair(3, 30)));
}

TEST(PersistentMapTest, SingleUpdatesKeepTheTreapShape) {
  std::mt19937 random(7);
  std::uniform_int_distribution<int> key_of(0, 500);
  IntMap map;
  for (int step = 0; step < 2000; ++step) {
    map = step % 3 == 0 ? map.Erase(key_of(random)) : map.Insert(key_of(random), step);
    ASSERT_TRUE(map.Valid()) << "step " << step;
  }
}

TEST(PersistentMapTest, IteratorWalksInKeyOrder) {
  std::vector<std::pair<int, int>> sorted;
  sorted.reserve(1000);
  for (int i = 0; i < 1000; ++i) {
    sorted.emplace_back(i * 3, i);
  }
  const IntMap map = IntMap::FromSorted(sorted);
  std::vector<std::pair<int, int>> walked;
  for (auto it = map.begin(); it != map.end(); ++it) {
    walked.emplace_back(it.key(), it.value());
  }
  EXPECT_EQ(walked, sorted);
  EXPECT_TRUE(IntMap::FromSorted({}).empty());
}

TEST(PersistentMapTest, FromSortedWithPrecomputedPrioritiesBuildsTheTreapOfItsKeys) {
  std::vector<std::pair<int, int>> sorted;
  std::vector<IntMap::priority_type> priorities;
  sorted.reserve(1000);
  priorities.reserve(1000);
  for (int i = 0; i < 1000; ++i) {
    sorted.emplace_back(i * 3, i);
    priorities.push_back(IntMap::KeyPriority(i * 3));
  }
  const IntMap map = IntMap::FromSorted(sorted, priorities);
  EXPECT_TRUE(map.Valid());
  EXPECT_EQ(Contents(map), sorted);
  EXPECT_EQ(DiffOf(IntMap::FromSorted(sorted), map), Differences{});
  EXPECT_TRUE(map.Insert(1, 1).Erase(300).Valid());

  // Priorities that are not the keys' make a tree of another shape, which Valid() tells.
  std::vector<IntMap::priority_type> wrong(priorities.rbegin(), priorities.rend());
  EXPECT_FALSE(IntMap::FromSorted(sorted, wrong).Valid());
  // A list of the wrong length is not used.
  priorities.pop_back();
  EXPECT_TRUE(IntMap::FromSorted(sorted, priorities).Valid());
}

}  // namespace
}  // namespace discovery::persistent
