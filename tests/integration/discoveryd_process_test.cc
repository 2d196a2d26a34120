// The discoveryd harness against the real binary (DISCOVERYD_BINARY, set by CMake): it starts on
// free ports with the embedded store, answers health checks, mints tokens the server accepts,
// keeps its data across a restart on the same ports, and shuts down cleanly on SIGTERM.
#include "testing/discoveryd_process.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;
using ::testing::StartsWith;

HttpHeaders Bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

// A JWT: three non-empty base64url parts.
bool LooksLikeJwt(const std::string& token) {
  const std::vector<std::string> parts = absl::StrSplit(token, '.');
  return parts.size() == 3 && !parts[0].empty() && !parts[1].empty() && !parts[2].empty();
}

TEST(DiscoverydProcessTest, ServesRestartsAndStops) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> discoveryd,
                       DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
  EXPECT_TRUE(discoveryd->IsRunning());
  EXPECT_THAT(discoveryd->grpc_address(), StartsWith("127.0.0.1:"));
  EXPECT_THAT(discoveryd->http_url(), StartsWith("http://127.0.0.1:"));
  const std::string url = discoveryd->http_url();

  ASSERT_OK_AND_ASSIGN(HttpResult healthz, HttpGet(url + "/healthz"));
  EXPECT_EQ(healthz.status, 200);
  ASSERT_OK_AND_ASSIGN(HttpResult readyz, HttpGet(url + "/readyz"));
  EXPECT_EQ(readyz.status, 200);

  ASSERT_OK_AND_ASSIGN(std::string admin, discoveryd->AdminToken());
  EXPECT_TRUE(LooksLikeJwt(admin)) << admin;
  ASSERT_OK_AND_ASSIGN(std::string machine,
                       discoveryd->MachineToken("ci-runner", {"default", "team"}, "1h"));
  EXPECT_TRUE(LooksLikeJwt(machine)) << machine;
  EXPECT_NE(machine, admin);
  EXPECT_THAT(discoveryd->MachineToken("nobody", {}),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("--namespaces")));

  // The server accepts what `token create` signed with the same secret and issuer.
  ASSERT_OK_AND_ASSIGN(HttpResult anonymous, HttpGet(url + "/v1/servers"));
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;
  ASSERT_OK_AND_ASSIGN(
      HttpResult registered,
      HttpRequest("POST", url + "/v1/servers", R"({"name":"p1"})",
                  {{"Authorization", "Bearer " + admin}, {"Content-Type", "application/json"}}));
  EXPECT_EQ(registered.status, 200) << registered.body;
  ASSERT_OK_AND_ASSIGN(HttpResult namespaces,
                       HttpRequest("GET", url + "/v1/namespaces", "", Bearer(machine)));
  EXPECT_EQ(namespaces.status, 200) << namespaces.body;

  // Same data dir and ports after a restart: the server registered before is still there.
  const std::string grpc_address = discoveryd->grpc_address();
  ASSERT_THAT(discoveryd->Restart(), IsOk());
  EXPECT_EQ(discoveryd->http_url(), url);
  EXPECT_EQ(discoveryd->grpc_address(), grpc_address);
  ASSERT_OK_AND_ASSIGN(HttpResult servers,
                       HttpRequest("GET", url + "/v1/servers", "", Bearer(admin)));
  ASSERT_EQ(servers.status, 200) << servers.body;
  EXPECT_THAT(servers.body, HasSubstr("\"p1\""));

  EXPECT_THAT(discoveryd->Stop(), IsOk());
  EXPECT_FALSE(discoveryd->IsRunning());
  EXPECT_THAT(discoveryd->LogTail(), HasSubstr("shutting down"));
  EXPECT_THAT(discoveryd->Stop(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// Operators tell the threads apart in top -H and perf by their names.
TEST(DiscoverydProcessTest, NamesItsThreads) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> discoveryd,
                       DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
  std::set<std::string> names;
  const std::filesystem::path tasks =
      std::filesystem::path("/proc") / std::to_string(discoveryd->pid()) / "task";
  for (const std::filesystem::directory_entry& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  EXPECT_THAT(names,
              IsSupersetOf({"grpc-worker", "http-io", "http-worker", "view", "view-wait",
                            "store-commit", "sqlite-checkpt", "sqlite-watch", "store-reaper"}));
}

TEST(DiscoverydProcessTest, KillAndRestartAfterACrash) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DiscoverydProcess> discoveryd,
                       DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
  ASSERT_THAT(discoveryd->Kill(), IsOk());
  EXPECT_FALSE(discoveryd->IsRunning());
  EXPECT_THAT(discoveryd->Stop(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("signal 9")));
  ASSERT_THAT(discoveryd->Restart(), IsOk());
  ASSERT_OK_AND_ASSIGN(HttpResult readyz, HttpGet(discoveryd->http_url() + "/readyz"));
  EXPECT_EQ(readyz.status, 200);
}

TEST(DiscoverydProcessTest, ServesTls) {
  ASSERT_OK_AND_ASSIGN(const std::string dir, MakeTempDir("discoveryd-tls-test"));
  const std::string cert = dir + "/cert.pem";
  const std::string key = dir + "/key.pem";
  ASSERT_THAT(WriteSelfSignedCertificate("discoveryd-test", cert, key), IsOk());
  {
    ASSERT_OK_AND_ASSIGN(
        std::unique_ptr<DiscoverydProcess> discoveryd,
        DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY, .tls = std::make_pair(cert, key)}));
    EXPECT_THAT(discoveryd->http_url(), StartsWith("https://127.0.0.1:"));
    ASSERT_OK_AND_ASSIGN(HttpResult readyz, HttpGet(discoveryd->http_url() + "/readyz",
                                                    absl::Seconds(10), /*insecure_tls=*/true));
    EXPECT_EQ(readyz.status, 200);
    // Without skipping verification the self-signed certificate is refused.
    EXPECT_THAT(HttpGet(discoveryd->http_url() + "/readyz"), Not(IsOk()));
    EXPECT_THAT(discoveryd->Stop(), IsOk());
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

TEST(DiscoverydProcessTest, StartupFailureCarriesTheLog) {
  EXPECT_THAT(DiscoverydProcess::Start(
                  {.binary = DISCOVERYD_BINARY, .extra_args = {"--placement=no-such-algorithm"}}),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("exited during startup"), HasSubstr("no-such-algorithm"))));
}

}  // namespace
}  // namespace discovery::testing
