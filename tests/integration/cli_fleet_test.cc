// The `discovery` CLI (DISCOVERY_BINARY) at fleet size against a real `discoveryd`
// (DISCOVERYD_BINARY): lists larger than gRPC's default 4 MiB message limit in every output
// format, a bulk import of thousands of entries with some that fail, bulk unregister, and the
// progress bar, drawn on a terminal (a pty) only.
#include <fcntl.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#include "testing/discoveryd_process.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERY_BINARY
#error "DISCOVERY_BINARY must name the discovery executable"
#endif
#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery::testing {
namespace {

using Json = ::nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

constexpr size_t kFourMiB = 4 << 20;
constexpr absl::Duration kCommandTimeout = absl::Minutes(5);

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

size_t CountLines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

size_t CountOf(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

// A YAML import file of `count` services `fleet-<i>` on hosts `host-<i>`, each with a
// `description` of `description_bytes`; the entries whose index is in `invalid` have an endpoint
// the server refuses.
std::string ImportFile(size_t count, size_t description_bytes,
                       const std::vector<size_t>& invalid = {}) {
  std::string yaml;
  const std::string description(description_bytes, 'd');
  for (size_t i = 0; i < count; ++i) {
    const bool bad = std::find(invalid.begin(), invalid.end(), i) != invalid.end();
    yaml += fmt::format(
        "- name: fleet-{}\n  endpoint: {}\n  labels:\n    team: t{}\n    zone: z{}\n"
        "  description: {}\n",
        i % 10,
        bad ? fmt::format("\"not a url {}\"", i) : fmt::format("http://host-{}:9100/metrics", i),
        i % 7, i % 3, description);
  }
  return yaml;
}

class CliFleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(discoveryd_, DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY}));
    ASSERT_OK_AND_ASSIGN(home_, MakeTempDir("discovery-cli-fleet-home"));
    ASSERT_OK_AND_ASSIGN(const std::string token, discoveryd_->AdminToken());
    std::filesystem::create_directories(home_ + "/.config/discovery");
    WriteFile(home_ + "/.config/discovery/config.yaml",
              fmt::format("address: {}\ninsecure: true\n", discoveryd_->grpc_address()));
    WriteFile(home_ + "/.config/discovery/.token", "machine_token: " + token + "\n");
    // Services are placed on servers: without one, every registration fails.
    ASSERT_TRUE(Discovery({"server", "register", "prom"}).status.success());
  }

  void TearDown() override { std::filesystem::remove_all(home_); }

  // HOME and TMPDIR (the file of failed imports) in this test's home; no DISCOVERY_* variable of
  // the developer's.
  std::vector<std::string> Environment() const {
    std::vector<std::string> result = {"HOME=" + home_, "TMPDIR=" + home_, "TERM=xterm"};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      if (entry.starts_with("DISCOVERY_")) {
        result.emplace_back(entry.substr(0, entry.find('=')));
      }
    }
    return result;
  }

  // Runs the CLI with stdout and stderr on pipes.
  CommandResult Discovery(std::vector<std::string> args) {
    args.insert(args.begin(), DISCOVERY_BINARY);
    absl::StatusOr<CommandResult> result = RunCommand(
        {.argv = std::move(args), .env = Environment(), .working_dir = home_}, kCommandTimeout);
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *std::move(result) : CommandResult{};
  }

  // Runs the CLI on a new pseudo terminal (stdin, stdout and stderr), as from an interactive
  // shell: what the terminal showed, and the exit code.
  std::pair<std::string, int> DiscoveryOnTerminal(std::vector<std::string> args) {
    args.insert(args.begin(), DISCOVERY_BINARY);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      if (!entry.starts_with("DISCOVERY_") && !entry.starts_with("HOME=") &&
          !entry.starts_with("TMPDIR=")) {
        env.emplace_back(entry);
      }
    }
    env.push_back("HOME=" + home_);
    env.push_back("TMPDIR=" + home_);
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& arg : args) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    envp.reserve(env.size() + 1);
    for (std::string& entry : env) {
      envp.push_back(entry.data());
    }
    envp.push_back(nullptr);

    int master = -1;
    const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
    if (pid == 0) {
      if (chdir(home_.c_str()) == 0) {
        execve(argv[0], argv.data(), envp.data());
      }
      _exit(127);
    }
    EXPECT_GT(pid, 0) << "forkpty failed";
    if (pid < 0) {
      return {"", -1};
    }
    std::string shown;
    std::array<char, 4096> buffer{};
    while (true) {
      const ssize_t n = read(master, buffer.data(), buffer.size());
      if (n > 0) {
        shown.append(buffer.data(), static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;  // EIO: the child closed the terminal's last end
      }
    }
    close(master);
    int status = 0;
    waitpid(pid, &status, 0);
    return {shown, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
  }

  std::unique_ptr<DiscoverydProcess> discoveryd_;
  std::string home_;
};

// Every output format of a list far beyond gRPC's default 4 MiB: each prints every row.
TEST_F(CliFleetTest, ListsLargerThanFourMiBInEveryFormat) {
  constexpr size_t kServices = 12000;
  WriteFile(home_ + "/fleet.yaml", ImportFile(kServices, 400));
  const CommandResult imported = Discovery({"service", "import", home_ + "/fleet.yaml"});
  ASSERT_TRUE(imported.status.success()) << imported.err;
  EXPECT_THAT(imported.err, AllOf(HasSubstr("services imported"),
                                  HasSubstr(fmt::format(R"("imported":"{}")", kServices))));

  CommandResult json = Discovery({"service", "list", "-o", "json"});
  ASSERT_TRUE(json.status.success()) << json.err;
  EXPECT_GT(json.out.size(), kFourMiB);
  const Json parsed = Json::parse(json.out);
  ASSERT_EQ(parsed.size(), kServices);
  // Sorted by endpoint, as the unary list was sorted by the CLI.
  std::vector<std::string> endpoints;
  for (const Json& service : parsed) {
    endpoints.push_back(service["endpoint"]);
  }
  EXPECT_TRUE(std::is_sorted(endpoints.begin(), endpoints.end()));
  EXPECT_EQ(endpoints.front(), "http://host-0:9100/metrics");
  EXPECT_EQ(endpoints.back(), "http://host-9:9100/metrics");  // ":" sorts after digits
  EXPECT_EQ(parsed[0]["labels"]["team"], "t0");
  // The json of the whole document, as one array printed at once would be (compared without
  // gtest's diff, which is quadratic in the lines).
  EXPECT_TRUE(json.out == nlohmann::ordered_json::parse(json.out).dump(2) + "\n");
  json = {};

  const CommandResult yaml = Discovery({"service", "list", "-o", "yaml"});
  ASSERT_TRUE(yaml.status.success()) << yaml.err;
  EXPECT_GT(yaml.out.size(), kFourMiB);
  EXPECT_EQ(CountOf(yaml.out, "\n- id: "), kServices - 1);
  EXPECT_TRUE(yaml.out.starts_with("- id: "));
  EXPECT_EQ(CountOf(yaml.out, "\n  description: ddd"), kServices);

  const CommandResult csv = Discovery({"service", "list", "-o", "csv"});
  ASSERT_TRUE(csv.status.success()) << csv.err;
  EXPECT_GT(csv.out.size(), kFourMiB);
  EXPECT_EQ(CountLines(csv.out), kServices + 1);
  EXPECT_TRUE(csv.out.starts_with("NAME;NAMESPACE;ID;ENDPOINT;"));

  const CommandResult table = Discovery({"service", "list"});
  ASSERT_TRUE(table.status.success()) << table.err;
  EXPECT_GT(table.out.size(), kFourMiB);
  const std::vector<std::string> lines = absl::StrSplit(table.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), kServices + 1);
  // Aligned: every column starts where the header's does.
  const size_t endpoint_column = lines[0].find("ENDPOINT");
  const size_t modified_column = lines[0].find("MODIFIED");
  for (const size_t i : {size_t{1}, size_t{2}, kServices / 2, kServices}) {
    EXPECT_EQ(lines[i].find("http://host-"), endpoint_column) << lines[i];
    EXPECT_THAT(lines[i].substr(modified_column, 20),
                MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"));
  }

  // Filters travel with the request and are applied to the whole list.
  const CommandResult filtered = Discovery(
      {"service", "list", "-o", "csv", "--no-headers", "-N", "^fleet-3$", "-s", "zone=z0"});
  ASSERT_TRUE(filtered.status.success()) << filtered.err;
  // i % 10 == 3 and i % 3 == 0: i = 3, 33, 63, ... (one in 30).
  EXPECT_EQ(CountLines(filtered.out), kServices / 30);
  const CommandResult by_endpoint =
      Discovery({"service", "list", "-o", "json", "-e", "host-11[0-9]:"});
  ASSERT_TRUE(by_endpoint.status.success()) << by_endpoint.err;
  EXPECT_EQ(Json::parse(by_endpoint.out).size(), 10U);

  // server and namespace lists: no change at this size, but they work next to it.
  EXPECT_TRUE(Discovery({"namespace", "list", "-o", "json"}).status.success());
  EXPECT_TRUE(Discovery({"server", "list", "-o", "yaml"}).status.success());
}

// A bulk import keeps the original's semantics: every entry registered or reported, the failed
// ones saved for a retry, exit status 1. Piped, there is no progress bar.
TEST_F(CliFleetTest, ImportOfThousandsWithSomeInvalidEntries) {
  constexpr size_t kEntries = 3000;
  std::vector<size_t> invalid;
  for (size_t i = 17; i < kEntries; i += 100) {
    invalid.push_back(i);  // 30 entries
  }
  WriteFile(home_ + "/fleet.yaml", ImportFile(kEntries, 20, invalid));
  const CommandResult imported =
      Discovery({"service", "import", "--max-in-flight", "32", home_ + "/fleet.yaml"});
  EXPECT_EQ(imported.status.code, 1) << imported.err;
  EXPECT_EQ(CountOf(imported.err, "cannot import entry "), invalid.size());
  EXPECT_THAT(imported.err,
              AllOf(HasSubstr("cannot import entry 18 (not a url 17 in namespace default)"),
                    HasSubstr("cannot import entry 2918 ("),
                    HasSubstr(fmt::format("{} of {} entries failed; they are saved in {}/",
                                          invalid.size(), kEntries, home_)),
                    HasSubstr(fmt::format("({} imported, ", kEntries - invalid.size())),
                    Not(HasSubstr("\r")), Not(HasSubstr("\033["))));

  // The file of failed entries holds them all, in the order of the import file.
  const std::string failed_path = [&] {
    for (const auto& entry : std::filesystem::directory_iterator(home_)) {
      if (entry.path().filename().string().starts_with("discovery-import-failed-")) {
        return entry.path().string();
      }
    }
    return std::string();
  }();
  ASSERT_FALSE(failed_path.empty());
  const std::string failed = ReadFile(failed_path);
  EXPECT_EQ(CountOf(failed, "endpoint: not a url"), invalid.size());
  EXPECT_LT(failed.find("not a url 17\n"), failed.find("not a url 117\n"));

  CommandResult listed = Discovery({"service", "list", "-o", "csv", "--no-headers"});
  ASSERT_TRUE(listed.status.success()) << listed.err;
  EXPECT_EQ(CountLines(listed.out), kEntries - invalid.size());

  // Importing the failed file again fails the same way, --quiet with nothing but the summary.
  const CommandResult again = Discovery({"service", "import", "--quiet", failed_path});
  EXPECT_EQ(again.status.code, 1);
  EXPECT_EQ(CountLines(again.err), 1U) << again.err;
  EXPECT_THAT(again.err, HasSubstr(fmt::format("{0} of {0} entries failed", invalid.size())));

  // Bulk unregister: many endpoints at once, one of them not registered, which is what
  // unregistering asks for (noted, not a failure, as for one service in ExecStopPost).
  std::vector<std::string> unregister = {"service", "unregister", "-n", "default"};
  for (size_t i = 0; i < 200; ++i) {
    if (std::find(invalid.begin(), invalid.end(), i) == invalid.end()) {
      unregister.push_back(fmt::format("http://host-{}:9100/metrics", i));
    }
  }
  unregister.emplace_back("http://nowhere.example:9100/metrics");
  const CommandResult unregistered = Discovery(unregister);
  EXPECT_EQ(unregistered.status.code, 0) << unregistered.err;
  EXPECT_EQ(CountOf(unregistered.err, "cannot unregister "), 0U) << unregistered.err;
  EXPECT_EQ(CountOf(unregistered.err, "service not registered, nothing to unregister"), 1U)
      << unregistered.err;
  EXPECT_THAT(
      unregistered.err,
      AllOf(HasSubstr("http://nowhere.example:9100/metrics"), HasSubstr(R"("unregistered":"198")"),
            HasSubstr(R"("not_registered":"1")"), HasSubstr(R"("failed":"0")")));
  listed = Discovery({"service", "list", "-o", "csv", "--no-headers"});
  EXPECT_EQ(CountLines(listed.out), kEntries - invalid.size() - 198);
}

// The progress bar is drawn on a terminal, and not with --quiet; the summary either way.
TEST_F(CliFleetTest, ProgressBarOnATerminalOnly) {
  WriteFile(home_ + "/fleet.yaml", ImportFile(2000, 20));
  auto [shown, code] = DiscoveryOnTerminal({"service", "import", home_ + "/fleet.yaml"});
  EXPECT_EQ(code, 0) << shown;
  EXPECT_THAT(shown, AllOf(HasSubstr("\r\033[K["), HasSubstr("/2000 "), HasSubstr("/s"),
                           HasSubstr("2000/2000  100%"), HasSubstr("services imported")))
      << shown;

  WriteFile(home_ + "/more.yaml", ImportFile(2000, 20));  // the same entries: registered again
  std::tie(shown, code) =
      DiscoveryOnTerminal({"service", "import", "--quiet", home_ + "/more.yaml"});
  EXPECT_EQ(code, 0) << shown;
  EXPECT_THAT(shown, AllOf(Not(HasSubstr("\033[K")), Not(HasSubstr("/2000")),
                           HasSubstr("services imported")))
      << shown;
}

}  // namespace
}  // namespace discovery::testing
