// Upgrades (docs/decisions.md D42): a store written by the previous release opens unchanged, and a
// replica of the previous release and one of this release run side by side on one etcd and agree.
//
// tests/data/previous-release/ holds an embedded store written by the previous release's
// discoveryd and that release's answers to every read of it (made by
// tests/upgrade/make_previous_release_data.sh). The rolling-upgrade test needs the previous
// release's binary in DISCOVERY_PREVIOUS_DISCOVERYD (scripts/test.sh builds it from the commit
// named in answers.json).
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "common/status_macros.h"
#include "testing/discoveryd_process.h"
#include "testing/etcd_harness.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/sqlite_files.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif
#ifndef DISCOVERY_SOURCE_DIR
#error "DISCOVERY_SOURCE_DIR must name the source tree"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;

// The secret and issuer the previous release's store was made with.
constexpr const char* kSecret = "upgrade-secret";
constexpr const char* kIssuer = "discovery.test";

const std::filesystem::path kData =
    std::filesystem::path(DISCOVERY_SOURCE_DIR) / "tests/data/previous-release";

Json ReadJson(const std::filesystem::path& path) {
  std::ifstream in(path);
  return Json::parse(in);
}

// Whether `actual` holds everything `expected` does: the same values, objects with at least the
// same members (a newer release may add a member, which older clients ignore), arrays of the
// same length in the same order.
bool Covers(const Json& actual, const Json& expected) {
  if (expected.is_object()) {
    if (!actual.is_object()) {
      return false;
    }
    const auto items = expected.items();
    return std::all_of(items.begin(), items.end(), [&actual](const auto& item) {
      return actual.contains(item.key()) && Covers(actual[item.key()], item.value());
    });
  }
  if (expected.is_array()) {
    if (!actual.is_array() || actual.size() != expected.size()) {
      return false;
    }
    for (size_t i = 0; i < expected.size(); ++i) {
      if (!Covers(actual[i], expected[i])) {
        return false;
      }
    }
    return true;
  }
  return actual == expected;
}

absl::StatusOr<Json> Get(const DiscoverydProcess& discoveryd, const std::string& token,
                         const std::string& path) {
  DISCOVERY_ASSIGN_OR_RETURN(
      HttpResult result,
      HttpRequest("GET", discoveryd.http_url() + path, "", {{"Authorization", "Bearer " + token}}));
  if (result.status != 200) {
    return absl::InternalError(fmt::format("GET {}: {} {}", path, result.status, result.body));
  }
  return Json::parse(result.body, nullptr, /*allow_exceptions=*/false);
}

absl::Status Post(const DiscoverydProcess& discoveryd, const std::string& token,
                  const std::string& path, const Json& body) {
  DISCOVERY_ASSIGN_OR_RETURN(HttpResult result,
                             HttpRequest("POST", discoveryd.http_url() + path, body.dump(),
                                         {{"Authorization", "Bearer " + token}}));
  if (result.status != 200) {
    return absl::InternalError(fmt::format("POST {}: {} {}", path, result.status, result.body));
  }
  return absl::OkStatus();
}

TEST(UpgradeTest, StoreOfThePreviousReleaseOpensWithTheSameAnswers) {
  const Json answers = ReadJson(kData / "answers.json");
  ASSERT_TRUE(answers.contains("release"));
  ASSERT_OK_AND_ASSIGN(
      std::unique_ptr<DiscoverydProcess> discoveryd,
      DiscoverydProcess::Start(
          {.binary = DISCOVERYD_BINARY, .token_secret = kSecret, .token_issuer = kIssuer}));
  ASSERT_THAT(discoveryd->Stop(), IsOk());
  const std::filesystem::path db = std::filesystem::path(discoveryd->data_dir()) / "discovery.db";
  RemoveSqliteDatabase(db.string());
  std::filesystem::copy_file(kData / "discovery.db", db);
  std::filesystem::permissions(
      db, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ASSERT_THAT(discoveryd->Restart(), IsOk());
  ASSERT_OK_AND_ASSIGN(const std::string token, discoveryd->AdminToken());

  int compared = 0;
  for (const auto& [path, expected] : answers.items()) {
    if (path == "release") {
      continue;
    }
    ASSERT_OK_AND_ASSIGN(const Json actual, Get(*discoveryd, token, path));
    EXPECT_TRUE(Covers(actual, expected))
        << path << " differs from release " << answers["release"].get<std::string>()
        << ":\nthen: " << expected.dump() << "\nnow:  " << actual.dump();
    ++compared;
  }
  EXPECT_GE(compared, 14);

  // The store takes writes, and they survive a restart next to the old records.
  ASSERT_THAT(Post(*discoveryd, token, "/v1/services",
                   {{"name", "new"}, {"endpoint", "http://new.example.com:9100/metrics"}}),
              IsOk());
  ASSERT_THAT(discoveryd->Restart(), IsOk());
  ASSERT_OK_AND_ASSIGN(const Json services,
                       Get(*discoveryd, token, "/v1/services?namespace=default"));
  EXPECT_EQ(services["services"].size(),
            answers["/v1/services?namespace=default"]["services"].size() + 1);
  int served = 0;
  for (const char* server : {"prom1.example.com", "prom2.example.com", "prom3.example.com"}) {
    ASSERT_OK_AND_ASSIGN(const Json targets,
                         Get(*discoveryd, token, fmt::format("/v1/sd/{}/default", server)));
    served += targets.dump().find("new.example.com:9100") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(served, 1);  // one replica of each target

  // The previous release's database gained the expiry column in place: a registration with a
  // TTL expires in it (docs/decisions.md D49) and leaves every other record where it was.
  ASSERT_THAT(Post(*discoveryd, token, "/v1/services",
                   {{"name", "new"},
                    {"endpoint", "http://expiring.example.com:9100/metrics"},
                    {"ttl", "5s"}}),
              IsOk());
  EXPECT_TRUE(Eventually(
      [&] {
        absl::StatusOr<Json> listed = Get(*discoveryd, token, "/v1/services?namespace=default");
        return listed.ok() && listed->dump().find("expiring.example.com") == std::string::npos;
      },
      absl::Seconds(60)));
  ASSERT_OK_AND_ASSIGN(const Json after, Get(*discoveryd, token, "/v1/services?namespace=default"));
  EXPECT_EQ(after["services"].size(),
            answers["/v1/services?namespace=default"]["services"].size() + 1);
  ASSERT_THAT(discoveryd->Stop(), IsOk());
}

// Every read an operator or Prometheus makes of a deployment.
std::vector<std::string> Reads(const std::vector<std::string>& servers,
                               const std::vector<std::string>& namespaces) {
  std::vector<std::string> reads = {"/v1/namespaces", "/v1/servers"};
  for (const std::string& ns : namespaces) {
    reads.push_back("/v1/services?namespace=" + ns);
    for (const std::string& server : servers) {
      reads.push_back(fmt::format("/v1/sd/{}/{}", server, ns));
    }
  }
  return reads;
}

TEST(UpgradeTest, ReplicasOfThePreviousAndThisReleaseAgreeOnOneEtcd) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read before any thread of the test starts
  const char* previous = std::getenv("DISCOVERY_PREVIOUS_DISCOVERYD");
  if (previous == nullptr || *previous == '\0') {
    GTEST_SKIP() << "set DISCOVERY_PREVIOUS_DISCOVERYD to the previous release's discoveryd";
  }
  ASSERT_OK_AND_ASSIGN(EtcdCluster * etcd, SharedEtcdCluster());
  std::random_device random;
  std::string prefix = "/upgrade-";
  for (int i = 0; i < 12; ++i) {
    prefix += static_cast<char>('a' + random() % 26);
  }
  const std::vector<std::string> store_args = {
      "--store=etcd", "--etcd-endpoints=" + etcd->EndpointList(), "--etcd-prefix=" + prefix};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> old_replica,
                       DiscoverydProcess::Start({.binary = previous,
                                                 .extra_args = store_args,
                                                 .token_secret = kSecret,
                                                 .token_issuer = kIssuer}));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> new_replica,
                       DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY,
                                                 .extra_args = store_args,
                                                 .token_secret = kSecret,
                                                 .token_issuer = kIssuer}));
  ASSERT_OK_AND_ASSIGN(const std::string token, new_replica->AdminToken());

  // Writes through both replicas, as during a rolling upgrade.
  ASSERT_THAT(Post(*old_replica, token, "/v1/namespaces", {{"name", "probes"}, {"export", 2}}),
              IsOk());
  ASSERT_THAT(Post(*new_replica, token, "/v1/servers",
                   {{"name", "prom1.example.com"}, {"labels", {{"site", "a"}}}}),
              IsOk());
  ASSERT_THAT(Post(*old_replica, token, "/v1/servers",
                   {{"name", "prom2.example.com"}, {"labels", {{"site", "b"}}}}),
              IsOk());
  for (int i = 0; i < 30; ++i) {
    const DiscoverydProcess& via = i % 2 == 0 ? *old_replica : *new_replica;
    ASSERT_THAT(Post(via, token, "/v1/services",
                     {{"name", "node"},
                      {"endpoint", fmt::format("http://host{}.example.com:9100/metrics", i)},
                      {"labels", {{"team", fmt::format("t{}", i % 3)}}}}),
                IsOk());
  }
  ASSERT_THAT(Post(*new_replica, token, "/v1/services",
                   {{"name", "app"},
                    {"endpoint", "https://app.example.com:8443/metrics?format=prometheus"},
                    {"selector", "site=a"}}),
              IsOk());
  ASSERT_THAT(Post(*old_replica, token, "/v1/services",
                   {{"name", "probe"},
                    {"namespace", "probes"},
                    {"endpoint", "https://www.example.com/health"}}),
              IsOk());
  // Registrations with a TTL (docs/decisions.md D49) through the new replica: the previous release
  // reads the records (it ignores the fields it does not know) and serves them until they expire,
  // and expiry (an etcd lease) takes them from its answers too.
  ASSERT_THAT(Post(*new_replica, token, "/v1/services",
                   {{"name", "node"},
                    {"endpoint", "http://kept.example.com:9100/metrics"},
                    {"ttl", "3600s"}}),
              IsOk());
  ASSERT_THAT(Post(*new_replica, token, "/v1/services",
                   {{"name", "node"},
                    {"endpoint", "http://expiring.example.com:9100/metrics"},
                    {"ttl", "5s"}}),
              IsOk());
  EXPECT_TRUE(Eventually(
      [&] {
        absl::StatusOr<Json> listed = Get(*old_replica, token, "/v1/services?namespace=default");
        return listed.ok() && listed->dump().find("kept.example.com") != std::string::npos &&
               listed->dump().find("expiring.example.com") == std::string::npos;
      },
      absl::Seconds(60)));
  // A third server joins through the new replica: both must move the same targets.
  ASSERT_THAT(Post(*new_replica, token, "/v1/servers", {{"name", "prom3.example.com"}}), IsOk());

  const std::vector<std::string> reads =
      Reads({"prom1.example.com", "prom2.example.com", "prom3.example.com"}, {"default", "probes"});
  for (const std::string& path : reads) {
    Json from_old;
    Json from_new;
    EXPECT_TRUE(Eventually(
        [&] {
          absl::StatusOr<Json> a = Get(*old_replica, token, path);
          absl::StatusOr<Json> b = Get(*new_replica, token, path);
          if (!a.ok() || !b.ok()) {
            return false;
          }
          from_old = *a;
          from_new = *b;
          // The newer release may add members; everything the previous one answers must agree.
          return Covers(from_new, from_old);
        },
        absl::Seconds(60)))
        << path << ":\nprevious release: " << from_old.dump()
        << "\nthis release: " << from_new.dump();
  }
  ASSERT_THAT(old_replica->Stop(), IsOk());
  ASSERT_THAT(new_replica->Stop(), IsOk());
}

}  // namespace
}  // namespace discovery::testing
