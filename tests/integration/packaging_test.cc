// The systemd units and environment files of packaging/ against the real discoveryd binary
// (docs/decisions.md D22: the original's discovery.service started the exporter, and its
// sysconfig set variables that do not exist). discoveryd.service must start `discoveryd
// server`, which then serves the API and Swagger UI on the port of its environment file, and
// every variable the environment files name (also the commented examples) must be one that
// discoveryd reads.
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/http_client.h"
#include "testing/process.h"
#include "testing/status_matchers.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif
#ifndef DISCOVERY_SOURCE_DIR
#error "DISCOVERY_SOURCE_DIR must name the source tree"
#endif

namespace discovery::testing {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

// The values of every `key=` line of a unit file, in order (Environment= may repeat).
std::vector<std::string> UnitValues(const std::string& unit, const std::string& key) {
  std::vector<std::string> values;
  std::istringstream lines(unit);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with(key + "=")) {
      values.push_back(line.substr(key.size() + 1));
    }
  }
  return values;
}

// The value of the first `key=` line of a unit file, "" when there is none.
std::string UnitValue(const std::string& unit, const std::string& key) {
  std::vector<std::string> values = UnitValues(unit, key);
  return values.empty() ? "" : values.front();
}

// The variable names an environment file sets or shows commented out ("#NAME=value"), and its
// "NAME=value" lines.
struct EnvironmentFile {
  std::vector<std::string> names;
  std::vector<std::string> assignments;
};

EnvironmentFile ReadEnvironmentFile(const std::string& path) {
  EnvironmentFile file;
  std::istringstream lines(ReadFile(path));
  static const std::regex assignment_pattern(R"((#?)([A-Za-z_][A-Za-z0-9_]*)=.*)");
  for (std::string line; std::getline(lines, line);) {
    std::smatch match;
    if (std::regex_match(line, match, assignment_pattern)) {
      file.names.push_back(match[2]);
      if (match[1].length() == 0) {
        file.assignments.push_back(line);
      }
    }
  }
  return file;
}

// The $DISCOVERY_* variables `discoveryd <args> --help` lists.
std::set<std::string> Variables(std::vector<std::string> args) {
  std::vector<std::string> argv = {DISCOVERYD_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.emplace_back("--help");
  absl::StatusOr<CommandResult> help =
      RunCommand({.argv = argv, .env = {"HOME=/nonexistent"}}, absl::Seconds(30), true);
  EXPECT_THAT(help, IsOk());
  std::set<std::string> names;
  if (!help.ok()) {
    return names;
  }
  static const std::regex variable_pattern(R"(\$(DISCOVERY_[A-Z0-9_]+))");
  for (std::sregex_iterator it(help->out.begin(), help->out.end(), variable_pattern), end;
       it != end; ++it) {
    names.insert((*it)[1]);
  }
  return names;
}

TEST(PackagingTest, EnvironmentFilesNameOnlyVariablesDiscoverydReads) {
  const std::set<std::string> global = Variables({});
  ASSERT_TRUE(global.contains("DISCOVERY_DATA_DIR"));
  for (const auto& [file, command] : {std::pair<std::string, std::string>{"discoveryd", "server"},
                                      {"discovery-exporter", "exporter"}}) {
    std::set<std::string> known = Variables({command});
    known.insert(global.begin(), global.end());
    const EnvironmentFile env =
        ReadEnvironmentFile(DISCOVERY_SOURCE_DIR "/packaging/default/" + file);
    EXPECT_FALSE(env.names.empty()) << file;
    for (const std::string& name : env.names) {
      EXPECT_TRUE(known.contains(name)) << "packaging/default/" << file << " names " << name
                                        << ", which `discoveryd " << command << "` does not read";
    }
  }
}

// docs/decisions.md D51: glibc reads the tunable only from the environment a process starts
// with, so the units are where the daemon gets its heaps in huge pages.
TEST(PackagingTest, UnitsStartTheDaemonWithMallocHeapsInHugePages) {
  for (const std::string name : {"discoveryd.service", "discovery-exporter.service"}) {
    const std::string unit = ReadFile(DISCOVERY_SOURCE_DIR "/packaging/systemd/" + name);
    EXPECT_THAT(UnitValues(unit, "Environment"),
                ::testing::Contains("GLIBC_TUNABLES=glibc.malloc.hugetlb=1"))
        << name;
    // Before the file, so an operator's setting there wins.
    EXPECT_LT(unit.find("Environment=GLIBC_TUNABLES="), unit.find("EnvironmentFile=")) << name;
  }
}

TEST(PackagingTest, ServerUnitRunsTheServerWithItsEnvironmentFile) {
  const std::string unit = ReadFile(DISCOVERY_SOURCE_DIR "/packaging/systemd/discoveryd.service");
  const std::string exec_start = UnitValue(unit, "ExecStart");
  ASSERT_EQ(exec_start, "/usr/bin/discoveryd server") << unit;
  ASSERT_EQ(UnitValue(unit, "EnvironmentFile"), "-/etc/default/discoveryd");
  const EnvironmentFile file =
      ReadEnvironmentFile(DISCOVERY_SOURCE_DIR "/packaging/default/discoveryd");

  absl::StatusOr<std::string> root = MakeTempDir("discovery-packaging");
  ASSERT_THAT(root, IsOk());
  absl::StatusOr<std::vector<int>> ports = FreePorts(2);
  ASSERT_THAT(ports, IsOk());
  // The file's settings, then what must differ in a test: paths and ports.
  std::vector<std::string> env = file.assignments;
  for (const std::string name :
       {"DISCOVERY_DATA_DIR", "DISCOVERY_GRPC_LISTEN", "DISCOVERY_HTTP_LISTEN"}) {
    EXPECT_TRUE(std::count(file.names.begin(), file.names.end(), name) == 1) << name;
  }
  env.push_back("HOME=" + *root);
  env.push_back("DISCOVERY_DATA_DIR=" + *root + "/data");
  env.push_back("DISCOVERY_GRPC_LISTEN=127.0.0.1:" + std::to_string((*ports)[0]));
  const std::string http = "http://127.0.0.1:" + std::to_string((*ports)[1]);
  env.push_back("DISCOVERY_HTTP_LISTEN=127.0.0.1:" + std::to_string((*ports)[1]));
  std::string command_line = exec_start;
  command_line.replace(0, std::string("/usr/bin/discoveryd").size(), DISCOVERYD_BINARY);
  absl::StatusOr<std::unique_ptr<ChildProcess>> server = ChildProcess::Start(
      {.argv = {"/bin/sh", "-c", "exec " + command_line}, .env = env, .working_dir = *root},
      *root + "/unit.log");
  ASSERT_THAT(server, IsOk());

  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool ready = false;
  while (!ready && absl::Now() < deadline && (*server)->IsRunning()) {
    absl::StatusOr<HttpResult> readyz = HttpGet(http + "/readyz", absl::Seconds(2));
    ready = readyz.ok() && readyz->status == 200;
    if (!ready) {
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  ASSERT_TRUE(ready) << (*server)->LogTail();
  // The server, not the exporter: the API answers (401 without a token) and Swagger UI is there.
  absl::StatusOr<HttpResult> api = HttpGet(http + "/v1/servers");
  ASSERT_THAT(api, IsOk());
  EXPECT_EQ(api->status, 401);
  absl::StatusOr<HttpResult> swagger = HttpGet(http + "/swagger/");
  ASSERT_THAT(swagger, IsOk());
  EXPECT_EQ(swagger->status, 200);
  EXPECT_THAT(swagger->body, HasSubstr("swagger-ui"));

  ASSERT_THAT((*server)->Signal(SIGTERM), IsOk());
  absl::StatusOr<ExitStatus> exit = (*server)->WaitExit(absl::Seconds(20));
  ASSERT_THAT(exit, IsOk());
  EXPECT_TRUE(exit->success()) << exit->ToString() << "\n" << (*server)->LogTail();
  std::error_code ignored;
  std::filesystem::remove_all(*root, ignored);
}

// A discoveryd started by hand keeps its store in the user's ~/.local/share/discovery; only
// the package's units put it into the package's /var/lib/discovery, and they say so themselves
// (also when the environment file was edited or removed).
TEST(PackagingTest, UnitsNameThePackagesDataDirectory) {
  for (const std::string name : {"discoveryd.service", "discovery-exporter.service"}) {
    const std::string unit = ReadFile(DISCOVERY_SOURCE_DIR "/packaging/systemd/" + name);
    EXPECT_EQ(UnitValue(unit, "Environment"), "DISCOVERY_DATA_DIR=/var/lib/discovery") << name;
    EXPECT_LT(unit.find("Environment="), unit.find("EnvironmentFile=")) << name;
  }
  for (const std::string name : {"discoveryd", "discovery-exporter"}) {
    const EnvironmentFile file =
        ReadEnvironmentFile(DISCOVERY_SOURCE_DIR "/packaging/default/" + name);
    EXPECT_THAT(file.assignments, ::testing::Contains("DISCOVERY_DATA_DIR=/var/lib/discovery"))
        << name;
  }
}

}  // namespace
}  // namespace discovery::testing
