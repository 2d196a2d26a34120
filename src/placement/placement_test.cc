#include "placement/placement.h"

#include <algorithm>
#include <cstddef>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "model/model.h"
#include "selector/selector.h"
#include "testing/status_matchers.h"

namespace discovery::placement {
namespace {

using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int kKeys = 10'000;
constexpr int kServers = 10;

std::vector<std::string> Names(std::initializer_list<const char*> names) {
  return {names.begin(), names.end()};
}

std::vector<std::string> ServerNames(int n) {
  std::vector<std::string> names;
  names.reserve(n);
  for (int i = 0; i < n; ++i) {
    names.push_back(absl::StrFormat("prometheus-%02d.example.com", i));
  }
  return names;
}

std::vector<std::string> Keys(int n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (int i = 0; i < n; ++i) {
    keys.push_back(absl::StrFormat("http://host-%d.example.com:9100/metrics", i));
  }
  return keys;
}

std::vector<std::vector<std::string>> PlaceAll(const std::vector<std::string>& keys,
                                               const std::vector<std::string>& candidates,
                                               int replicas, Algorithm algorithm) {
  std::vector<std::vector<std::string>> placements;
  placements.reserve(keys.size());
  for (const std::string& key : keys) {
    placements.push_back(Place(key, candidates, replicas, algorithm));
  }
  return placements;
}

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::vector<std::string> Without(std::vector<std::string> names, const std::string& name) {
  names.erase(std::remove(names.begin(), names.end(), name), names.end());
  return names;
}

Server MakeServer(std::string name, std::string env, ServerState state = ServerState::kActive) {
  Server server;
  server.name = std::move(name);
  server.labels = {{"env", std::move(env)}};
  server.state = state;
  return server;
}

selector::Selector MustParse(std::string_view text) {
  absl::StatusOr<selector::Selector> parsed = selector::Selector::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *std::move(parsed) : selector::Selector();
}

TEST(AlgorithmTest, NamesRoundTrip) {
  for (const Algorithm algorithm : {Algorithm::kRendezvous, Algorithm::kJump}) {
    EXPECT_THAT(ParseAlgorithm(AlgorithmName(algorithm)), IsOkAndHolds(algorithm));
  }
  EXPECT_EQ(AlgorithmName(Algorithm::kRendezvous), "rendezvous");
  EXPECT_EQ(AlgorithmName(Algorithm::kJump), "jump");
}

TEST(AlgorithmTest, RejectsUnknownNames) {
  EXPECT_THAT(ParseAlgorithm("Jump"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseAlgorithm(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseAlgorithm("consistent"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CandidatesTest, EnabledMatchingServersAscending) {
  const std::vector<Server> servers = {
      MakeServer("server3", "prod"),
      MakeServer("server1", "prod", ServerState::kJoining),
      MakeServer("server4", "test"),
      MakeServer("server2", "prod"),
      MakeServer("server0", "prod", ServerState::kLeaving),
  };
  EXPECT_THAT(Candidates(servers, MustParse("env=prod")),
              ElementsAre("server1", "server2", "server3"));
  EXPECT_THAT(Candidates(servers, MustParse("env=test")), ElementsAre("server4"));
  EXPECT_THAT(Candidates(servers, MustParse("env=dev")), IsEmpty());
}

TEST(CandidatesTest, EmptySelectorMatchesAllEnabled) {
  const std::vector<Server> servers = {
      MakeServer("b", "prod"),
      MakeServer("a", "test"),
      MakeServer("c", "prod", ServerState::kLeaving),
  };
  EXPECT_THAT(Candidates(servers, MustParse("")), ElementsAre("a", "b"));
  EXPECT_THAT(Candidates({}, MustParse("")), IsEmpty());
}

// internal/registry/registry_test.go of the Go original, replicas = 2.
TEST(JumpPlacementTest, MatchesGoRegistryScenario) {
  std::vector<Server> servers = {
      MakeServer("server1", "prod"),
      MakeServer("server2", "prod"),
      MakeServer("server3", "prod"),
      MakeServer("server4", "test"),
  };
  const selector::Selector prod = MustParse("env=prod");
  const std::string p = "http://p.example.com/metrics";
  EXPECT_THAT(Place(p, Candidates(servers, prod), 2, Algorithm::kJump),
              ElementsAre("server2", "server3"));

  // JumpHash(CRC(p), 4) is still 1, so the window over server1,2,3,5 stays server2, server3.
  servers.push_back(MakeServer("server5", "prod"));
  EXPECT_THAT(Place(p, Candidates(servers, prod), 2, Algorithm::kJump),
              ElementsAre("server2", "server3"));

  servers.pop_back();
  EXPECT_THAT(Place(p, Candidates(servers, prod), 2, Algorithm::kJump),
              ElementsAre("server2", "server3"));

  // One candidate and two replicas: replicas shrink to the candidate count.
  EXPECT_THAT(Place("http://t.example.com/metrics", Candidates(servers, MustParse("env=test")), 2,
                    Algorithm::kJump),
              ElementsAre("server4"));
}

TEST(JumpPlacementTest, WindowWrapsAround) {
  // JumpHash(CRC("https://www.test.com:7002/metrics"), 3) is 2: start at the last candidate.
  EXPECT_THAT(
      Place("https://www.test.com:7002/metrics", Names({"a", "b", "c"}), 2, Algorithm::kJump),
      ElementsAre("a", "c"));
}

// Pins the frozen rendezvous formula: a change here reassigns services of every installation.
TEST(RendezvousPlacementTest, GoldenPlacements) {
  const std::vector<std::string> three = Names({"server1", "server2", "server3"});
  const std::vector<std::string> four = Names({"server1", "server2", "server3", "server5"});
  const std::string p = "http://p.example.com/metrics";
  EXPECT_THAT(Place(p, three, 2, Algorithm::kRendezvous), ElementsAre("server2", "server3"));
  // Unlike jump, server5 joining takes this service: it outscores server2 for this key.
  EXPECT_THAT(Place(p, four, 2, Algorithm::kRendezvous), ElementsAre("server3", "server5"));
  EXPECT_THAT(Place(p, three, 1, Algorithm::kRendezvous), ElementsAre("server3"));
  EXPECT_THAT(Place("http://t.example.com/metrics", Names({"server4"}), 2, Algorithm::kRendezvous),
              ElementsAre("server4"));
  EXPECT_THAT(Place("http://example.com/metrics", ServerNames(kServers), 2, Algorithm::kRendezvous),
              ElementsAre("prometheus-04.example.com", "prometheus-08.example.com"));
}

class PlaceTest : public ::testing::TestWithParam<Algorithm> {};

TEST_P(PlaceTest, NoCandidatesOrReplicasGiveNothing) {
  const std::vector<std::string> candidates = Names({"a", "b"});
  EXPECT_THAT(Place("http://x.example.com/metrics", {}, 1, GetParam()), IsEmpty());
  EXPECT_THAT(Place("http://x.example.com/metrics", candidates, 0, GetParam()), IsEmpty());
  EXPECT_THAT(Place("http://x.example.com/metrics", candidates, -3, GetParam()), IsEmpty());
}

TEST_P(PlaceTest, ReplicasAtOrAboveCandidatesGiveAllSorted) {
  const std::vector<std::string> candidates = Names({"c", "a", "b"});
  EXPECT_THAT(Place("http://x.example.com/metrics", candidates, 3, GetParam()),
              ElementsAre("a", "b", "c"));
  EXPECT_THAT(Place("http://x.example.com/metrics", candidates, 7, GetParam()),
              ElementsAre("a", "b", "c"));
}

TEST_P(PlaceTest, ResultIsSortedUniqueAndFromCandidates) {
  const std::vector<std::string> candidates = ServerNames(kServers);
  // 9 replicas exceed rendezvous's inline heap and take its allocating path.
  for (const int replicas : {1, 2, 3, 9}) {
    for (const std::string& key : Keys(500)) {
      const std::vector<std::string> got = Place(key, candidates, replicas, GetParam());
      ASSERT_EQ(got.size(), static_cast<size_t>(replicas)) << key;
      ASSERT_TRUE(std::is_sorted(got.begin(), got.end())) << key;
      ASSERT_EQ(std::adjacent_find(got.begin(), got.end()), got.end()) << key;
      for (const std::string& name : got) {
        ASSERT_TRUE(Contains(candidates, name)) << key;
      }
    }
  }
}

TEST_P(PlaceTest, IndependentOfCandidateOrder) {
  std::mt19937_64 rng(20240601);
  const std::vector<std::string> keys = Keys(2'000);
  const std::vector<std::string> sorted = ServerNames(kServers);
  for (const int replicas : {1, 2}) {
    const auto want = PlaceAll(keys, sorted, replicas, GetParam());
    for (int round = 0; round < 3; ++round) {
      std::vector<std::string> shuffled = sorted;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      ASSERT_EQ(PlaceAll(keys, shuffled, replicas, GetParam()), want)
          << "replicas=" << replicas << " round=" << round;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, PlaceTest,
                         ::testing::Values(Algorithm::kRendezvous, Algorithm::kJump),
                         [](const ::testing::TestParamInfo<Algorithm>& param_info) {
                           return AlgorithmName(param_info.param);
                         });

class RendezvousPropertyTest : public ::testing::TestWithParam<int> {
 protected:
  static int replicas() { return GetParam(); }
};

// On a join only the services the new server wins change, each by swapping exactly one of its
// servers for the new one, and about R/(N+1) of all services do so.
TEST_P(RendezvousPropertyTest, JoinMovesOnlyServicesToTheNewServer) {
  const std::vector<std::string> keys = Keys(kKeys);
  const std::vector<std::string> before_servers = ServerNames(kServers);
  std::vector<std::string> after_servers = before_servers;
  const std::string joiner = "prometheus-new.example.com";
  after_servers.push_back(joiner);

  const auto before = PlaceAll(keys, before_servers, replicas(), Algorithm::kRendezvous);
  const auto after = PlaceAll(keys, after_servers, replicas(), Algorithm::kRendezvous);
  int changed = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (before[i] == after[i]) {
      continue;
    }
    ++changed;
    ASSERT_TRUE(Contains(after[i], joiner)) << keys[i];
    std::vector<std::string> kept;
    std::set_intersection(before[i].begin(), before[i].end(), after[i].begin(), after[i].end(),
                          std::back_inserter(kept));
    ASSERT_EQ(kept.size(), before[i].size() - 1) << keys[i];
  }
  const double expected = static_cast<double>(kKeys) * replicas() / (kServers + 1);
  EXPECT_GT(changed, 0.7 * expected);
  EXPECT_LT(changed, 1.3 * expected);
}

// On a leave only the services that had the leaving server change, and they keep their other
// servers.
TEST_P(RendezvousPropertyTest, LeaveMovesOnlyServicesOfTheLeavingServer) {
  const std::vector<std::string> keys = Keys(kKeys);
  const std::vector<std::string> before_servers = ServerNames(kServers);
  const std::string& leaver = before_servers[3];
  const std::vector<std::string> after_servers = Without(before_servers, leaver);

  const auto before = PlaceAll(keys, before_servers, replicas(), Algorithm::kRendezvous);
  const auto after = PlaceAll(keys, after_servers, replicas(), Algorithm::kRendezvous);
  int changed = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!Contains(before[i], leaver)) {
      ASSERT_EQ(after[i], before[i]) << keys[i];
      continue;
    }
    ++changed;
    ASSERT_FALSE(Contains(after[i], leaver)) << keys[i];
    ASSERT_EQ(after[i].size(), before[i].size()) << keys[i];
    for (const std::string& kept : Without(before[i], leaver)) {
      ASSERT_TRUE(Contains(after[i], kept)) << keys[i];
    }
  }
  const double expected = static_cast<double>(kKeys) * replicas() / kServers;
  EXPECT_GT(changed, 0.7 * expected);
  EXPECT_LT(changed, 1.3 * expected);
}

TEST_P(RendezvousPropertyTest, BalancesServicesAcrossServers) {
  const std::vector<std::string> servers = ServerNames(kServers);
  std::map<std::string, int> load;
  for (const auto& placed : PlaceAll(Keys(kKeys), servers, replicas(), Algorithm::kRendezvous)) {
    for (const std::string& name : placed) {
      ++load[name];
    }
  }
  ASSERT_EQ(load.size(), servers.size());
  const double mean = static_cast<double>(kKeys) * replicas() / kServers;
  for (const auto& [name, count] : load) {
    EXPECT_GT(count, 0.85 * mean) << name;
    EXPECT_LT(count, 1.15 * mean) << name;
  }
}

// Server names that differ in one character have CRCs that differ in a fixed bit pattern; the
// score must still treat them as independent, or neighbours would share load unevenly.
TEST_P(RendezvousPropertyTest, BalancesSimilarNames) {
  std::vector<std::string> servers;
  servers.reserve(kServers);
  for (int i = 0; i < kServers; ++i) {
    servers.push_back(absl::StrCat("server", i));
  }
  std::map<std::string, int> load;
  for (const auto& placed : PlaceAll(Keys(kKeys), servers, replicas(), Algorithm::kRendezvous)) {
    for (const std::string& name : placed) {
      ++load[name];
    }
  }
  ASSERT_EQ(load.size(), servers.size());
  const double mean = static_cast<double>(kKeys) * replicas() / kServers;
  for (const auto& [name, count] : load) {
    EXPECT_GT(count, 0.85 * mean) << name;
    EXPECT_LT(count, 1.15 * mean) << name;
  }
}

// The R best scores include the R-1 best, so raising --replicas only adds servers.
TEST(RendezvousPlacementTest, MoreReplicasOnlyAddServers) {
  const std::vector<std::string> candidates = ServerNames(kServers);
  for (const std::string& key : Keys(1'000)) {
    std::vector<std::string> previous;
    for (int replicas = 1; replicas < kServers; ++replicas) {
      const std::vector<std::string> placed =
          Place(key, candidates, replicas, Algorithm::kRendezvous);
      ASSERT_TRUE(std::includes(placed.begin(), placed.end(), previous.begin(), previous.end()))
          << key << " replicas=" << replicas;
      previous = placed;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Replicas, RendezvousPropertyTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& param_info) {
                           return absl::StrCat("R", param_info.param);
                         });

// Why rendezvous is the default: the original's jump placement indexes the name-sorted list, so
// a server whose name sorts first shifts every index by one. With 10 servers it moves 99% of the
// services for R=1 and all of them for R=2, where rendezvous moves about R/(N+1) (9% and 18%).
TEST(JumpPropertyTest, JoinSortingFirstMovesNearlyEveryService) {
  const std::vector<std::string> keys = Keys(kKeys);
  const std::vector<std::string> before_servers = ServerNames(kServers);
  std::vector<std::string> after_servers = before_servers;
  after_servers.emplace_back("aaa-prometheus.example.com");

  for (const int replicas : {1, 2}) {
    const auto before = PlaceAll(keys, before_servers, replicas, Algorithm::kJump);
    const auto after = PlaceAll(keys, after_servers, replicas, Algorithm::kJump);
    int changed = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      changed += before[i] != after[i] ? 1 : 0;
    }
    EXPECT_GT(changed, 0.9 * kKeys) << "replicas=" << replicas;
  }
}

// Jump hashing itself is consistent: a server that sorts last only takes services, for R=1.
TEST(JumpPropertyTest, JoinSortingLastWithOneReplicaMovesOnlyToIt) {
  const std::vector<std::string> keys = Keys(kKeys);
  const std::vector<std::string> before_servers = ServerNames(kServers);
  std::vector<std::string> after_servers = before_servers;
  const std::string joiner = "zzz-prometheus.example.com";
  after_servers.push_back(joiner);

  const auto before = PlaceAll(keys, before_servers, 1, Algorithm::kJump);
  const auto after = PlaceAll(keys, after_servers, 1, Algorithm::kJump);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (before[i] != after[i]) {
      ASSERT_THAT(after[i], ElementsAre(joiner)) << keys[i];
    }
  }
}

}  // namespace
}  // namespace discovery::placement
