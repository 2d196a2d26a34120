// End-to-end tests of the `discovery` CLI (DISCOVERY_BINARY) against a real `discoveryd`
// (DISCOVERYD_BINARY) on its embedded store: the Go original's README workflow (docs/decisions.md
// D43) with its printed tables, service IDs and http_sd answers, the README's systemd recipe run as
// systemd would run it, the output formats, filters, import, unresolved clean-up and the errors an
// operator sees.
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/discoveryd_process.h"
#include "testing/eventually.h"
#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERY_BINARY
#error "DISCOVERY_BINARY must name the discovery executable"
#endif
#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif
#ifndef DISCOVERY_SOURCE_DIR
#error "DISCOVERY_SOURCE_DIR must name the source tree"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

// Every RFC 3339 instant becomes the same 20 characters (tables print whole seconds, so they keep
// their alignment), and output can be compared with the README's, printed on another day.
std::string WithoutTimes(const std::string& text) {
  static const std::regex time_pattern(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)");
  return std::regex_replace(text, time_pattern, "2000-01-01T00:00:00Z");
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(discoveryd_, DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
    ASSERT_OK_AND_ASSIGN(home_, MakeTempDir("discovery-cli-home"));
    ASSERT_OK_AND_ASSIGN(admin_token_, discoveryd_->AdminToken());
    ASSERT_THAT(
        RunCommand({.argv = {"/bin/mkdir", "-p", home_ + "/.config/discovery"}}, absl::Seconds(5)),
        IsOk());
    // What scripts/run.sh writes for a local server: plaintext gRPC and an admin machine token.
    WriteFile(ConfigPath(),
              fmt::format("address: {}\ninsecure: true\n", discoveryd_->grpc_address()));
    UseToken(admin_token_);
  }

  void TearDown() override {
    RunCommand({.argv = {"/bin/rm", "-rf", home_}}, absl::Seconds(10)).IgnoreError();
  }

  std::string ConfigPath() const { return home_ + "/.config/discovery/config.yaml"; }
  std::string TokenPath() const { return home_ + "/.config/discovery/.token"; }
  void UseToken(const std::string& token) const {
    WriteFile(TokenPath(), "machine_token: " + token + "\n");
  }

  // The CLI's environment: this test's home (config and token file, and TMPDIR for the file of
  // failed imports), no DISCOVERY_* variable of the developer's, then `env`.
  std::vector<std::string> Environment(const std::vector<std::string>& env) const {
    std::vector<std::string> result = {"HOME=" + home_, "TMPDIR=" + home_};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      if (entry.starts_with("DISCOVERY_")) {
        result.emplace_back(entry.substr(0, entry.find('=')));
      }
    }
    result.insert(result.end(), env.begin(), env.end());
    return result;
  }

  CommandResult Discovery(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), DISCOVERY_BINARY);
    absl::StatusOr<CommandResult> result =
        RunCommand({.argv = std::move(args), .env = Environment(env), .working_dir = home_},
                   absl::Seconds(60));
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *std::move(result) : CommandResult{};
  }

  // Runs `command_line` with /bin/sh as systemd runs ExecStartPost lines: variables of `env`
  // expanded, `discovery` being the binary under test.
  CommandResult Shell(const std::string& command_line, const std::vector<std::string>& env) {
    std::vector<std::string> full_env = Environment(env);
    full_env.push_back(fmt::format(
        "PATH={}:/usr/bin:/bin",
        std::string(DISCOVERY_BINARY).substr(0, std::string(DISCOVERY_BINARY).rfind('/'))));
    absl::StatusOr<CommandResult> result =
        RunCommand({.argv = {"/bin/sh", "-c", command_line}, .env = full_env, .working_dir = home_},
                   absl::Seconds(60));
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *std::move(result) : CommandResult{};
  }

  Json HttpSd(const std::string& path) const {
    absl::StatusOr<HttpResult> result = HttpRequest("GET", discoveryd_->http_url() + path, "",
                                                    {{"Authorization", "Bearer " + admin_token_}});
    EXPECT_THAT(result, IsOk());
    if (!result.ok()) {
      return nullptr;
    }
    EXPECT_EQ(result->status, 200) << result->body;
    return Json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  }

  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string home_;
  std::string admin_token_;
};

// The Go original's README "Example Workflow", command by command, compared with what it prints.
TEST_F(CliTest, SeedReadmeWorkflow) {
  CommandResult result =
      Discovery({"server", "register", "prometheus1.example.com", "--labels=environment=test"});
  ASSERT_TRUE(result.status.success()) << result.err;

  result = Discovery({"server", "list"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(WithoutTimes(result.out),
            WithoutTimes(R"(NAME                    MODIFIED             STATE  LABELS
prometheus1.example.com 2021-02-04T14:12:50Z active environment=test
)"));

  result = Discovery({"service", "register", "-e", "http://example.com/metrics", "example",
                      "--labels=label1=value1,label2=value2", "--selector=environment=test"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.err, AllOf(HasSubstr("service registered"),
                                HasSubstr("93c156b1-f218-5d79-88a5-219307e59d29")));

  result = Discovery({"service", "list"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(
      WithoutTimes(result.out),
      WithoutTimes(
          R"(NAME    NAMESPACE ID                                   ENDPOINT                   SERVERS                 LABELS                      SELECTOR         MODIFIED             DESCRIPTION
example default   93c156b1-f218-5d79-88a5-219307e59d29 http://example.com/metrics prometheus1.example.com label1=value1,label2=value2 environment=test 2021-02-04T14:13:50Z
)"));

  result = Discovery({"namespace", "list"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(WithoutTimes(result.out), WithoutTimes(R"(NAME    EXPORTCONFIG MODIFIED
default standard     2021-02-04T14:07:03Z
)"));

  result = Discovery({"namespace", "register", "-e", "blackbox", "default-blackbox"});
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery({"namespace", "list"});
  EXPECT_EQ(WithoutTimes(result.out), WithoutTimes(R"(NAME             EXPORTCONFIG MODIFIED
default          standard     2021-02-05T07:58:35Z
default-blackbox blackbox     2021-02-05T08:00:18Z
)"));

  result = Discovery({"service", "register", "-e", "http://blackbox.example.com", "-n",
                      "default-blackbox", "blackbox", "-s", "environment=test"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.err, HasSubstr("e988791c-2c4e-5eeb-b3b8-db3c0cf82719"));
  result = Discovery({"service", "list"});
  EXPECT_EQ(
      WithoutTimes(result.out),
      WithoutTimes(
          R"(NAME     NAMESPACE        ID                                   ENDPOINT                    SERVERS                 LABELS                      SELECTOR         MODIFIED             DESCRIPTION
blackbox default-blackbox e988791c-2c4e-5eeb-b3b8-db3c0cf82719 http://blackbox.example.com prometheus1.example.com                             environment=test 2021-02-05T08:05:44Z
example  default          93c156b1-f218-5d79-88a5-219307e59d29 http://example.com/metrics  prometheus1.example.com label1=value1,label2=value2 environment=test 2021-02-05T07:59:17Z
)"));

  EXPECT_EQ(HttpSd("/v1/sd/prometheus1.example.com/default"), Json::parse(R"([
  {
    "targets": [
      "example.com"
    ],
    "labels": {
      "__metrics_path__": "/metrics",
      "__scheme__": "http",
      "instance": "example.com",
      "job": "example",
      "label1": "value1",
      "label2": "value2"
    }
  }
])"));
  EXPECT_EQ(HttpSd("/v1/sd/prometheus1.example.com/default-blackbox?config=blackbox"),
            Json::parse(R"([
  {
    "targets": [
      "http://blackbox.example.com"
    ],
    "labels": {}
  }
])"));

  result = Discovery({"token", "create", "-n", "default,default-blackbox", "ansible-user"});
  ASSERT_TRUE(result.status.success()) << result.err;
  const std::string token = result.out.substr(0, result.out.find('\n'));
  EXPECT_THAT(result.out, MatchesRegex(R"([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+
)"));
  result = Discovery({"token", "info", token});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(result.out,
            "id: ansible-user\nadmin: false\nnamespaces: [default, default-blackbox]\n"
            "expiry: never\n");

  // README "REST": unregister by endpoint URL; here through the CLI.
  result = Discovery({"service", "unregister", "-n", "default", "http://example.com/metrics"});
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery({"service", "list", "--no-headers"});
  EXPECT_THAT(result.out, AllOf(HasSubstr("blackbox"), Not(HasSubstr("example.com/metrics"))));
  EXPECT_EQ(HttpSd("/v1/sd/prometheus1.example.com/default"), Json::array());

  // "With the above token you can register services only."
  UseToken(token);
  result = Discovery({"service", "register", "-e", "http://example.com/metrics", "example"});
  EXPECT_TRUE(result.status.success()) << result.err;
  result = Discovery({"namespace", "register", "other"});
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, StartsWith("discovery: cannot register namespace other: "));
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
}

// The lines of packaging/examples/<file> that `pick` maps to a value, in order.
std::vector<std::string> ExampleLines(
    const std::string& file,
    const std::function<std::optional<std::string>(const std::string&)>& pick) {
  std::ifstream in(std::string(DISCOVERY_SOURCE_DIR) + "/packaging/examples/" + file);
  EXPECT_TRUE(in.good()) << file;
  std::vector<std::string> picked;
  for (std::string line; std::getline(in, line);) {
    if (std::optional<std::string> value = pick(line)) {
      picked.push_back(*std::move(value));
    }
  }
  return picked;
}

// The README's systemd recipe: the unit's ExecStartPost/ExecStopPost lines with its environment
// file, /etc/discovery/config.yaml (here the user's file) and a machine token for the namespace.
TEST_F(CliTest, SystemdRecipe) {
  ASSERT_TRUE(Discovery({"server", "register", "prometheus1.example.com", "-l", "environment=test"})
                  .status.success());
  ASSERT_TRUE(Discovery({"namespace", "register", "systemd"}).status.success());
  const CommandResult token = Discovery({"token", "create", "node-exporter", "-n", "systemd"});
  ASSERT_TRUE(token.status.success()) << token.err;
  UseToken(token.out.substr(0, token.out.find('\n')));
  WriteFile(ConfigPath(), fmt::format("address: {}\ninsecure: true\n"
                                      "oidc-endpoint: https://auth.example.com/realms/discovery\n"
                                      "oidc-client-id: discovery\nselector: environment=test\n",
                                      discoveryd_->grpc_address()));
  // The unit and environment file the README prints (packaging/examples), run as systemd would.
  const std::vector<std::string> environment_file =
      ExampleLines("node_exporter.default", [](const std::string& line) {
        return line.empty() || line[0] == '#' ? std::optional<std::string>() : line;
      });
  auto exec = [](std::string_view key) {
    return [key](const std::string& line) -> std::optional<std::string> {
      if (!line.starts_with(key)) {
        return std::nullopt;
      }
      // "-" only tells systemd to ignore a failure; the installed path is the binary under test.
      std::string command = line.substr(key.size() + (line[key.size()] == '-' ? 1 : 0));
      const std::string installed = "/usr/bin/discovery ";
      if (command.starts_with(installed)) {
        command = "discovery " + command.substr(installed.size());
      }
      return command;
    };
  };
  const std::vector<std::string> start_post =
      ExampleLines("node_exporter.service", exec("ExecStartPost="));
  const std::vector<std::string> stop_post =
      ExampleLines("node_exporter.service", exec("ExecStopPost="));
  ASSERT_EQ(start_post.size(), 1U);
  ASSERT_EQ(stop_post.size(), 1U);

  CommandResult result = Shell(start_post[0], environment_file);
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(HttpSd("/v1/sd/prometheus1.example.com/systemd"), Json::parse(R"([{
    "targets": ["node1.example.com:9549"],
    "labels": {"__metrics_path__": "/metrics", "__scheme__": "http",
               "instance": "node1.example.com:9549", "job": "node"}}])"));
  result = Discovery({"service", "list", "-o", "json"}, environment_file);
  ASSERT_TRUE(result.status.success()) << result.err;
  const Json listed = Json::parse(result.out);
  ASSERT_EQ(listed.size(), 1U) << result.out;
  EXPECT_EQ(listed[0]["selector"], "environment=test");
  EXPECT_EQ(listed[0]["namespace"], "systemd");

  result = Shell(stop_post[0], environment_file);
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_EQ(HttpSd("/v1/sd/prometheus1.example.com/systemd"), Json::array());
}

TEST_F(CliTest, OutputFormatsAndFilters) {
  ASSERT_TRUE(Discovery({"server", "register", "prom-a", "-l", "zone=a"}).status.success());
  ASSERT_TRUE(Discovery({"server", "register", "prom-b", "-l", "zone=b"}).status.success());
  ASSERT_TRUE(Discovery({"service", "register", "node", "-e",
                         "http://host1:9100/metrics,http://host2:9100/metrics", "-l", "team=db",
                         "-s", "zone=a"})
                  .status.success());
  ASSERT_TRUE(Discovery({"service", "register", "web", "-e", "https://shop.example.com/metrics",
                         "-l", "team=shop", "-s", "zone=b", "--description", "a <shop> & more"})
                  .status.success());

  CommandResult result = Discovery({"service", "list", "-o", "json"});
  ASSERT_TRUE(result.status.success()) << result.err;
  Json json = Json::parse(result.out);
  ASSERT_EQ(json.size(), 3U);
  EXPECT_EQ(json[0]["endpoint"], "http://host1:9100/metrics");
  EXPECT_EQ(json[0]["servers"], Json::array({"prom-a"}));
  EXPECT_EQ(json[2]["servers"], Json::array({"prom-b"}));
  EXPECT_THAT(result.out, HasSubstr(R"("a \u003cshop\u003e \u0026 more")"));

  result = Discovery({"service", "list", "-o", "csv", "--no-headers", "-N", "^web$"});
  EXPECT_THAT(
      result.out,
      MatchesRegex(
          R"(web;default;[0-9a-f-]{36};https://shop\.example\.com/metrics;prom-b;team=shop;zone=b;[0-9TZ:-]+;a <shop> & more
)"));
  EXPECT_EQ(
      Discovery({"service", "list", "--no-headers", "-S", "prom-a", "-o", "csv"}).out.size(),
      Discovery({"service", "list", "--no-headers", "-s", "team=db", "-o", "csv"}).out.size());
  result = Discovery({"service", "list", "--no-headers", "-e", "host2"});
  EXPECT_THAT(result.out,
              AllOf(HasSubstr("host2"), Not(HasSubstr("host1")), Not(HasSubstr("NAME"))));
  result = Discovery({"service", "list", "--sort-by", "date", "--no-headers"});
  EXPECT_THAT(result.out, StartsWith("web "));

  result = Discovery({"server", "list", "-o", "yaml"});
  EXPECT_THAT(result.out, AllOf(HasSubstr("name: prom-a"), HasSubstr("state: 2")));

  result = Discovery({"service", "list", "-o", "xml"});
  EXPECT_FALSE(result.status.success());
  EXPECT_EQ(result.err,
            "discovery: unknown output format \"xml\": use table, wide, json, yaml or csv\n");
  result = Discovery({"service", "list", "-N", "("});
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, StartsWith("discovery: invalid --filter-name \"(\""));
  result = Discovery({"service", "list", "-s", "team in (db"});
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, StartsWith("discovery: invalid --filter-selector"));
}

// `service import` reads back what `service list -o yaml` and `-o json` print.
TEST_F(CliTest, ImportReadsWhatListPrints) {
  ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  ASSERT_TRUE(Discovery({"namespace", "register", "-e", "blackbox", "probes"}).status.success());
  ASSERT_TRUE(
      Discovery({"service", "register", "node", "-e", "http://host1:9100/metrics", "-l", "team=db"})
          .status.success());
  ASSERT_TRUE(
      Discovery({"service", "register", "probe", "-n", "probes", "-e", "https://shop.example.com"})
          .status.success());
  for (const std::string format : {"yaml", "json"}) {
    SCOPED_TRACE(format);
    const CommandResult listed = Discovery({"service", "list", "-o", format});
    ASSERT_TRUE(listed.status.success()) << listed.err;
    const std::string path = home_ + "/services." + format;
    WriteFile(path, listed.out);
    ASSERT_TRUE(Discovery({"service", "unregister", "-n", "default", "http://host1:9100/metrics"})
                    .status.success());
    ASSERT_TRUE(Discovery({"service", "unregister", "-n", "probes", "https://shop.example.com"})
                    .status.success());
    ASSERT_THAT(Discovery({"service", "list", "--no-headers"}).out, IsEmpty());

    const CommandResult imported = Discovery({"service", "import", path});
    ASSERT_TRUE(imported.status.success()) << imported.err;
    EXPECT_EQ(WithoutTimes(Discovery({"service", "list", "-o", format}).out),
              WithoutTimes(listed.out));
  }

  // Every failed entry is reported, the rest is imported, the exit code says it failed.
  WriteFile(home_ + "/bad.yaml", R"(- name: ok
  endpoint: http://host3:9100/metrics
- name: bad
  namespace: nowhere
  endpoint: http://host4:9100/metrics
- name: worse
  endpoint: "not a url"
)");
  const CommandResult imported = Discovery({"service", "import", home_ + "/bad.yaml"});
  EXPECT_FALSE(imported.status.success());
  EXPECT_THAT(imported.err, AllOf(HasSubstr("entry 2 (http://host4:9100/metrics in namespace "
                                            "nowhere)"),
                                  HasSubstr("entry 3"), HasSubstr("2 of 3 entries failed")));
  EXPECT_THAT(Discovery({"service", "list"}).out, HasSubstr("http://host3:9100/metrics"));
}

TEST_F(CliTest, UnresolvedServicesAreFoundAndCleanedUpWithinThePercentLimit) {
  ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  for (const std::string endpoint :
       {"http://localhost:9100/metrics", "http://127.0.0.1:9101/metrics",
        "http://gone.invalid:9100/metrics"}) {
    ASSERT_TRUE(Discovery({"service", "register", "node", "-e", endpoint}).status.success());
  }
  CommandResult result = Discovery({"service", "list", "-u", "--no-headers", "-o", "csv"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.out, AllOf(StartsWith("node;default;"), HasSubstr("gone.invalid"),
                                Not(HasSubstr("localhost")), Not(HasSubstr("127.0.0.1"))));

  result = Discovery({"service", "unregister", "-u"});
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err,
              HasSubstr("maximum 1% services are allowed to be unregistered, but 1 of 3"));
  result = Discovery({"service", "unregister", "-u", "http://localhost:9100/metrics"});
  EXPECT_EQ(result.err, "discovery: unresolved cannot be used in combination with endpoints\n");

  result = Discovery({"service", "unregister", "-u", "-p", "50"});
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery({"service", "list", "--no-headers"});
  EXPECT_THAT(result.out, AllOf(Not(HasSubstr("gone.invalid")), HasSubstr("localhost")));
}

// `discovery token revoke` (admin) stops a machine token; `token list` shows the revoked ids.
TEST_F(CliTest, TokenRevokeAndList) {
  CommandResult result = Discovery({"token", "create", "-n", "default", "ci-bot"});
  ASSERT_TRUE(result.status.success()) << result.err;
  const std::string bot = result.out.substr(0, result.out.find_last_not_of('\n') + 1);
  result = Discovery({"token", "list"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.out, Not(HasSubstr("ci-bot")));

  UseToken(bot);
  result = Discovery({"namespace", "list"});
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery({"token", "revoke", "ci-bot"});
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, HasSubstr("not allowed"));

  UseToken(admin_token_);
  result = Discovery({"token", "revoke", "ci-bot"});
  ASSERT_TRUE(result.status.success()) << result.err;
  result = Discovery({"token", "list"});
  ASSERT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.out, AllOf(HasSubstr("ci-bot\trevoked\t"), HasSubstr("machine:")));

  UseToken(bot);
  result = Discovery({"namespace", "list"});
  EXPECT_FALSE(result.status.success());
  EXPECT_THAT(result.err, HasSubstr("revoked"));
}

TEST_F(CliTest, ErrorsAreOneLineWithANonZeroExit) {
  const auto expect_error = [](const CommandResult& result, const std::string& prefix) {
    EXPECT_FALSE(result.status.success());
    EXPECT_THAT(result.err, StartsWith("discovery: " + prefix));
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
    EXPECT_THAT(result.out, IsEmpty());
  };
  expect_error(Discovery({"service", "register", "node", "-n", "nowhere", "-e", "http://a:1/m"}),
               "cannot register http://a:1/m in namespace nowhere: ");
  expect_error(Discovery({"service", "register", "node", "-e", "ftp//broken"}),
               "cannot register ftp//broken in namespace default: ");
  expect_error(Discovery({"server", "unregister", "unknown.example.com"}),
               "cannot unregister server unknown.example.com: ");
  expect_error(Discovery({"token", "info", "not-a-token"}), "token is not valid");
  expect_error(Discovery({"namespace", "register", "-e", "blackbox", "bad name"}),
               "cannot register namespace bad name: ");

  std::filesystem::remove(TokenPath());
  const CommandResult no_token = Discovery({"server", "list"});
  expect_error(no_token, "login required: cannot read token file " + TokenPath());
  EXPECT_THAT(no_token.err, HasSubstr("machine_token: <jwt>"));

  UseToken(admin_token_);
  ASSERT_THAT(discoveryd_->Stop(), IsOk());
  expect_error(Discovery({"namespace", "list"}), "");
  // TLS is the default: without `insecure: true` the CLI does not talk plaintext.
  WriteFile(ConfigPath(), "address: 127.0.0.1:1\n");
  EXPECT_FALSE(Discovery({"namespace", "list", "--timeout", "2s"}).status.success());
}

// A registration while discoveryd is down (Unavailable) is retried with backoff and lands once
// the server is back; a refusal is not retried.
TEST_F(CliTest, RegistrationRetriesWhileTheServerIsDown) {
  ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  ASSERT_THAT(discoveryd_->Stop(), IsOk());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ChildProcess> cli,
                       ChildProcess::Start({.argv = {DISCOVERY_BINARY, "service", "register",
                                                     "node", "-e", "http://host1:9100/metrics"},
                                            .env = Environment({}),
                                            .working_dir = home_},
                                           home_ + "/register.log"));
  // The server comes back once the client has met it down at least once.
  ASSERT_TRUE(Eventually(
      [&] { return cli->LogTail().find("request failed, retrying") != std::string::npos; },
      absl::Seconds(30)))
      << cli->LogTail();
  ASSERT_THAT(discoveryd_->Restart(), IsOk());
  ASSERT_OK_AND_ASSIGN(const ExitStatus exit, cli->WaitExit(absl::Seconds(30)));
  EXPECT_TRUE(exit.success()) << cli->LogTail();
  EXPECT_THAT(cli->LogTail(),
              AllOf(HasSubstr("request failed, retrying"), HasSubstr("service registered")));
  EXPECT_THAT(Discovery({"service", "list"}).out, HasSubstr("http://host1:9100/metrics"));

  const CommandResult refused =
      Discovery({"service", "register", "node", "-n", "nowhere", "-e", "http://a:1/m"});
  EXPECT_FALSE(refused.status.success());
  EXPECT_THAT(refused.err, Not(HasSubstr("retrying")));
}

TEST_F(CliTest, GlobalFlagsEnvironmentAndConfigFiles) {
  CommandResult result = Discovery({"--version"});
  EXPECT_TRUE(result.status.success());
  EXPECT_THAT(result.out, StartsWith("discovery, version "));
  result = Discovery({"--show-config"});
  EXPECT_TRUE(result.status.success());
  EXPECT_THAT(result.err, AllOf(HasSubstr("Configuration files:"), HasSubstr(ConfigPath()),
                                HasSubstr("parsed")));
  result = Discovery({"service", "register", "--help"});
  EXPECT_THAT(result.out,
              AllOf(HasSubstr("($DISCOVERY_ENDPOINTS)"), HasSubstr("($DISCOVERY_NAMESPACE)")));

  // Flags may come after the subcommand; the environment beats the config file.
  WriteFile(ConfigPath(), "address: 127.0.0.1:1\n");
  result = Discovery({"namespace", "list", "--insecure", "-a", discoveryd_->grpc_address()});
  EXPECT_TRUE(result.status.success()) << result.err;
  result = Discovery({"ns", "list"}, {"DISCOVERY_ADDRESS=" + discoveryd_->grpc_address(),
                                      "DISCOVERY_INSECURE=true"});
  EXPECT_TRUE(result.status.success()) << result.err;
  EXPECT_THAT(result.out, HasSubstr("default"));
  // A token file elsewhere, through --token-path.
  const std::string token_path = home_ + "/elsewhere.token";
  WriteFile(token_path, "machine_token: " + admin_token_ + "\n");
  std::filesystem::remove(TokenPath());
  result = Discovery(
      {"srv", "list", "--insecure", "-a", discoveryd_->grpc_address(), "--token-path", token_path});
  EXPECT_TRUE(result.status.success()) << result.err;
  result = Discovery({"svc", "list", "--insecure", "--ca-cert", token_path});
  EXPECT_FALSE(result.status.success());
}

}  // namespace
}  // namespace discovery::testing
