// The Prometheus harness against Debian's real /usr/bin/prometheus, and the test HTTP client
// against it: Prometheus starts, becomes ready and reports a static target as active.
#include "testing/prometheus_process.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

namespace discovery::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Optional;
using ::testing::StartsWith;

// The static target of job "static" among `targets`, or null.
const nlohmann::json* StaticTarget(const nlohmann::json& targets, const std::string& address) {
  for (const nlohmann::json& target : targets) {
    const nlohmann::json& labels = target.at("labels");
    if (labels.value("job", "") == "static" && labels.value("instance", "") == address) {
      return &target;
    }
  }
  return nullptr;
}

TEST(PrometheusProcessTest, StartsAndListsAStaticTarget) {
  // A port nobody listens on: a static target is active whether or not its scrapes succeed.
  ASSERT_OK_AND_ASSIGN(std::vector<int> ports, FreePorts(1));
  const std::string address = fmt::format("127.0.0.1:{}", ports[0]);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<PrometheusProcess> prometheus,
                       PrometheusProcess::Start({.config_yaml = fmt::format(R"(global:
  scrape_interval: 1s
scrape_configs:
  - job_name: static
    static_configs:
      - targets: ["{}"]
        labels: {{team: sd}}
)",
                                                                            address)}));
  EXPECT_TRUE(prometheus->IsRunning());
  EXPECT_THAT(prometheus->url(), StartsWith("http://127.0.0.1:"));

  ASSERT_OK_AND_ASSIGN(nlohmann::json targets,
                       prometheus->AwaitActiveTargets([&address](const nlohmann::json& t) {
                         return StaticTarget(t, address) != nullptr;
                       }));
  const nlohmann::json& target = *StaticTarget(targets, address);
  EXPECT_EQ(target.at("labels").value("team", ""), "sd");
  EXPECT_EQ(target.value("scrapePool", ""), "static");
  EXPECT_EQ(target.value("scrapeUrl", ""), fmt::format("http://{}/metrics", address));

  // The HTTP client against a real server: status, lower-cased headers, body.
  ASSERT_OK_AND_ASSIGN(HttpResult healthy, HttpGet(prometheus->url() + "/-/healthy"));
  EXPECT_EQ(healthy.status, 200);
  EXPECT_THAT(healthy.body, HasSubstr("Healthy"));
  EXPECT_THAT(healthy.Header("Content-Type"), Optional(HasSubstr("text/plain")));
  for (const auto& [name, value] : healthy.headers) {
    EXPECT_EQ(name, absl::AsciiStrToLower(name));
  }
  ASSERT_OK_AND_ASSIGN(HttpResult missing, HttpGet(prometheus->url() + "/no-such-page"));
  EXPECT_EQ(missing.status, 404);
  ASSERT_OK_AND_ASSIGN(HttpResult query,
                       HttpRequest("POST", prometheus->url() + "/api/v1/query", "query=up",
                                   {{"Content-Type", "application/x-www-form-urlencoded"}}));
  EXPECT_EQ(query.status, 200) << query.body;
  EXPECT_THAT(query.body, HasSubstr(R"("status":"success")"));

  EXPECT_THAT(prometheus->Stop(), IsOk());
  EXPECT_FALSE(prometheus->IsRunning());
  EXPECT_THAT(HttpGet(prometheus->url() + "/-/ready"), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(PrometheusProcessTest, InvalidConfigFailsWithTheLog) {
  EXPECT_THAT(
      PrometheusProcess::Start({.config_yaml = "scrape_configs: [{job_name: 1, bogus: x}]\n"}),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(HasSubstr("exited during startup"), HasSubstr("bogus"))));
}

}  // namespace
}  // namespace discovery::testing
