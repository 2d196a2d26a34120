#include "config/command_line.h"

#include <unistd.h>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "config/config_files.h"
#include "config/test_util.h"
#include "testing/scoped_env.h"

namespace discovery::config {
namespace {

using ::discovery::config::testutil::TempTree;
using ::discovery::testing::ScopedEnv;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

// Values of the flags of a small two-level CLI, shaped like the discovery client's.
struct Flags {
  std::string address = "default-address";
  std::string ns = "default";
  std::string token;
  std::vector<std::string> endpoints;
  std::map<std::string, std::string> labels;
  absl::Duration timeout = absl::Seconds(5);
  bool debug = false;
  std::string register_server;
  std::string register_namespace;
  std::string list_namespace;
  std::string id;
};

class CommandLineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name :
         {"DISCOVERY_ADDRESS", "DISCOVERY_NAMESPACE", "DISCOVERY_TOKEN", "DISCOVERY_ENDPOINTS",
          "DISCOVERY_LABELS", "DISCOVERY_TIMEOUT", "DISCOVERY_DEBUG", "DISCOVERY_SERVER",
          "DISCOVERY_ID", "DISCOVERY_SHOW_CONFIG", "DISCOVERY_VERSION", "TEST_TOKEN"}) {
      env_.Unset(name);
    }
  }

  // Builds the app, binds it to the files of `tree_` and parses `args`.
  std::optional<int> Parse(const std::vector<std::string>& args) {
    app_ = std::make_unique<CLI::App>("test client", "discovery");
    CLI::Option* address = app_->add_option("--address,-a", flags_.address, "server address");
    if (require_address_) {
      address->required();
    }
    app_->add_option("--namespace,-n", flags_.ns, "namespace to use");
    app_->add_option("--token", flags_.token, "machine token")->envname("TEST_TOKEN");
    AddListOption(*app_, "--endpoints,-e", &flags_.endpoints, "endpoints");
    AddMapOption(*app_, "--labels,-l", &flags_.labels, "labels");
    AddDurationOption(*app_, "--timeout", &flags_.timeout, "request timeout");
    app_->add_flag("--debug", flags_.debug, "debug logging");
    CLI::App* service = app_->add_subcommand("service", "manage services");
    CLI::App* register_cmd = service->add_subcommand("register", "register a service");
    register_cmd->add_option("--server", flags_.register_server, "server name")->required();
    register_cmd->add_option("--namespace", flags_.register_namespace, "namespace");
    register_cmd->add_option("id", flags_.id, "service id");
    CLI::App* list_cmd = service->add_subcommand("list", "list services");
    list_cmd->add_option("--namespace", flags_.list_namespace, "namespace");

    command_line_ = std::make_unique<CommandLine>(*app_, ConfigFiles::Load(tree_.Locations()),
                                                  BuildInfo{.version = "1.2.3",
                                                            .revision = "0123456789abcdef",
                                                            .date = "2024-01-02T03:04:05Z",
                                                            .compiler = "g++ 12.2.0"},
                                                  other_keys_);
    return command_line_->Parse(args, out_, err_);
  }

  TempTree tree_;
  ScopedEnv env_;
  Flags flags_;
  bool require_address_ = false;
  std::vector<std::string> other_keys_;  // of the other program reading the shared files
  std::unique_ptr<CLI::App> app_;
  std::unique_ptr<CommandLine> command_line_;
  std::ostringstream out_;
  std::ostringstream err_;
};

// `discovery service register -e URL NAME`: the list and map flags must not swallow NAME.
TEST(ListAndMapOptionTest, TakeOneValuePerOccurrence) {
  CLI::App app;
  std::vector<std::string> endpoints;
  std::map<std::string, std::string> labels;
  std::string name;
  AddListOption(app, "-e,--endpoints", &endpoints, "endpoints");
  AddMapOption(app, "-l,--labels", &labels, "labels");
  app.add_option("name", name)->required();
  ASSERT_NO_THROW(app.parse("-e http://a,http://b -l k=v,x=y -e http://c svc", false));
  EXPECT_EQ(endpoints, (std::vector<std::string>{"http://a", "http://b", "http://c"}));
  EXPECT_EQ(labels, (std::map<std::string, std::string>{{"k", "v"}, {"x", "y"}}));
  EXPECT_EQ(name, "svc");
}

TEST(EnvVarNameTest, UpperSnakeCaseWithPrefix) {
  EXPECT_EQ(EnvVarName("oidc-client-id"), "DISCOVERY_OIDC_CLIENT_ID");
  EXPECT_EQ(EnvVarName("etcd-auto-sync-interval"), "DISCOVERY_ETCD_AUTO_SYNC_INTERVAL");
  EXPECT_EQ(EnvVarName("namespace"), "DISCOVERY_NAMESPACE");
}

TEST_F(CommandLineTest, FlagBeatsEnvironmentAndFiles) {
  TempTree::Write(tree_.LocalFile(), "namespace: local\n");
  TempTree::Write(tree_.UserFile(), "namespace: user\n");
  TempTree::Write(tree_.SystemFile(), "namespace: system\n");
  env_.Set("DISCOVERY_NAMESPACE", "env");
  EXPECT_EQ(Parse({"--namespace", "flag"}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "flag");
}

TEST_F(CommandLineTest, EnvironmentBeatsFiles) {
  TempTree::Write(tree_.LocalFile(), "namespace: local\n");
  TempTree::Write(tree_.UserFile(), "namespace: user\n");
  TempTree::Write(tree_.SystemFile(), "namespace: system\n");
  env_.Set("DISCOVERY_NAMESPACE", "env");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "env");
}

TEST_F(CommandLineTest, LocalFileBeatsUserAndSystemFiles) {
  TempTree::Write(tree_.LocalFile(), "namespace: local\n");
  TempTree::Write(tree_.UserFile(), "namespace: user\n");
  TempTree::Write(tree_.SystemFile(), "namespace: system\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "local");
}

TEST_F(CommandLineTest, UserFileBeatsSystemFile) {
  TempTree::Write(tree_.UserFile(), "namespace: user\n");
  TempTree::Write(tree_.SystemFile(), "namespace: system\naddress: sys-address\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "user");
  EXPECT_EQ(flags_.address, "sys-address");
}

TEST_F(CommandLineTest, SystemFileBeatsDefault) {
  TempTree::Write(tree_.SystemFile(), "namespace: system\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "system");
}

TEST_F(CommandLineTest, DefaultsStayWhenNothingIsSet) {
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "default");
  EXPECT_EQ(flags_.timeout, absl::Seconds(5));
  EXPECT_FALSE(flags_.debug);
}

TEST_F(CommandLineTest, EmptyEnvironmentVariableIsIgnored) {
  TempTree::Write(tree_.UserFile(), "namespace: user\n");
  env_.Set("DISCOVERY_NAMESPACE", "");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "user");
}

TEST_F(CommandLineTest, KeysOfTheOtherProgramAreIgnored) {
  other_keys_ = {"no-such-flag"};
  TempTree::Write(tree_.LocalFile(), "no-such-flag: 1\nnamespace: local\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "local");
}

TEST_F(CommandLineTest, ListFromCommandLineIsCommaSeparatedAndRepeatable) {
  EXPECT_EQ(Parse({"-e", "a,b", "--endpoints", "c"}), std::nullopt) << err_.str();
  EXPECT_THAT(flags_.endpoints, ElementsAre("a", "b", "c"));
}

TEST_F(CommandLineTest, ListFromEnvironmentIsCommaSeparated) {
  TempTree::Write(tree_.LocalFile(), "endpoints: [x, y]\n");
  env_.Set("DISCOVERY_ENDPOINTS", "a,b");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_THAT(flags_.endpoints, ElementsAre("a", "b"));
}

TEST_F(CommandLineTest, ListFromYamlList) {
  TempTree::Write(tree_.UserFile(), "endpoints:\n  - https://a:3001\n  - https://b:3001\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_THAT(flags_.endpoints, ElementsAre("https://a:3001", "https://b:3001"));
}

TEST_F(CommandLineTest, MapFromCommandLine) {
  EXPECT_EQ(Parse({"--labels", "team=sre,tier=1", "-l", "zone=a=b"}), std::nullopt) << err_.str();
  EXPECT_THAT(flags_.labels,
              UnorderedElementsAre(Pair("team", "sre"), Pair("tier", "1"), Pair("zone", "a=b")));
}

TEST_F(CommandLineTest, MapFromEnvironment) {
  env_.Set("DISCOVERY_LABELS", "team=sre,tier=1");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_THAT(flags_.labels, UnorderedElementsAre(Pair("team", "sre"), Pair("tier", "1")));
}

TEST_F(CommandLineTest, MapFromYamlMappingOrList) {
  TempTree::Write(tree_.LocalFile(), "labels: {team: sre, tier: 1}\n");
  TempTree::Write(tree_.UserFile(), "labels: [other=x]\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_THAT(flags_.labels, UnorderedElementsAre(Pair("team", "sre"), Pair("tier", "1")));
}

TEST_F(CommandLineTest, MapItemWithoutEqualsIsAnError) {
  EXPECT_THAT(Parse({"--labels", "team"}), Optional(Not(0)));
  EXPECT_THAT(err_.str(), HasSubstr("expected key=value, got \"team\""));
}

TEST_F(CommandLineTest, DurationFromEnvironmentAndFile) {
  TempTree::Write(tree_.LocalFile(), "timeout: 1h30m\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.timeout, absl::Minutes(90));
}

TEST_F(CommandLineTest, DurationFromEnvironment) {
  env_.Set("DISCOVERY_TIMEOUT", "300ms");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.timeout, absl::Milliseconds(300));
}

TEST_F(CommandLineTest, InvalidDurationIsAnError) {
  EXPECT_THAT(Parse({"--timeout", "5d"}), Optional(Not(0)));
  EXPECT_THAT(err_.str(), HasSubstr(R"(time: unknown unit "d" in duration "5d")"));
}

TEST_F(CommandLineTest, BooleanFlagFromFileAndEnvironment) {
  TempTree::Write(tree_.LocalFile(), "debug: true\n");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_TRUE(flags_.debug);
}

TEST_F(CommandLineTest, BooleanFlagFromEnvironmentBeatsFile) {
  TempTree::Write(tree_.LocalFile(), "debug: true\n");
  env_.Set("DISCOVERY_DEBUG", "false");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_FALSE(flags_.debug);
}

TEST_F(CommandLineTest, KeysApplyToEverySubcommandWithThatFlag) {
  TempTree::Write(tree_.LocalFile(), "namespace: shared\nserver: s1\n");
  EXPECT_EQ(Parse({"service", "register", "--namespace", "mine"}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "shared");
  EXPECT_EQ(flags_.register_namespace, "mine");
  EXPECT_EQ(flags_.register_server, "s1");
  EXPECT_EQ(flags_.list_namespace, "shared");
}

TEST_F(CommandLineTest, EnvironmentAppliesToSubcommands) {
  env_.Set("DISCOVERY_NAMESPACE", "env");
  env_.Set("DISCOVERY_SERVER", "s2");
  EXPECT_EQ(Parse({"service", "register"}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.register_namespace, "env");
  EXPECT_EQ(flags_.register_server, "s2");
}

TEST_F(CommandLineTest, RequiredFlagSatisfiedByEnvironment) {
  require_address_ = true;
  env_.Set("DISCOVERY_ADDRESS", "env-address");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.address, "env-address");
}

TEST_F(CommandLineTest, RequiredFlagSatisfiedByFile) {
  TempTree::Write(tree_.SystemFile(), "server: from-file\n");
  EXPECT_EQ(Parse({"service", "register"}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.register_server, "from-file");
}

TEST_F(CommandLineTest, MissingRequiredFlagIsAnError) {
  EXPECT_THAT(Parse({"service", "register"}), Optional(Not(0)));
  EXPECT_THAT(err_.str(), HasSubstr("--server is required"));
}

TEST_F(CommandLineTest, UsageErrorsAreOneLineWithExitCodeTwoAndASuggestion) {
  EXPECT_THAT(Parse({"servce", "list"}), Optional(CommandLine::kUsageExitCode));
  EXPECT_EQ(err_.str(),
            "discovery: unknown command \"servce\" for `discovery`; did you mean `discovery "
            "service`?\n");
  err_.str("");
  EXPECT_THAT(Parse({"service", "list", "--namespcae", "x"}),
              Optional(CommandLine::kUsageExitCode));
  EXPECT_EQ(err_.str(),
            "discovery: unknown flag --namespcae for `discovery service list`; did you mean "
            "--namespace?\n");
  err_.str("");
  EXPECT_THAT(Parse({"service", "list", "--frobnicate=1"}), Optional(CommandLine::kUsageExitCode));
  EXPECT_EQ(err_.str(),
            "discovery: unknown flag --frobnicate for `discovery service list`; see `discovery "
            "service list --help`\n");
  err_.str("");
  EXPECT_THAT(Parse({"service", "register", "--server", "s", "id", "extra"}),
              Optional(CommandLine::kUsageExitCode));
  EXPECT_EQ(err_.str(),
            "discovery: unexpected argument \"extra\" for `discovery service register`; see "
            "`discovery service register --help`\n");
  err_.str("");
  EXPECT_THAT(Parse({"--timeout", "5d"}), Optional(CommandLine::kUsageExitCode));
  EXPECT_THAT(err_.str(),
              AllOf(StartsWith("discovery: --timeout: "), EndsWith("; see `discovery --help`\n")));
}

TEST_F(CommandLineTest, ExplicitEnvironmentNameIsKept) {
  env_.Set("DISCOVERY_TOKEN", "wrong");
  env_.Set("TEST_TOKEN", "right");
  EXPECT_EQ(Parse({}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.token, "right");
}

TEST_F(CommandLineTest, PositionalsTakeNoEnvironmentOrFileValue) {
  other_keys_ = {"id"};  // not a key of this program, whose "id" is a positional
  env_.Set("DISCOVERY_ID", "env-id");
  TempTree::Write(tree_.LocalFile(), "id: file-id\nserver: s\n");
  EXPECT_EQ(Parse({"service", "register"}), std::nullopt) << err_.str();
  EXPECT_THAT(flags_.id, IsEmpty());
}

TEST_F(CommandLineTest, ExtraConfigFileBeatsCandidates) {
  TempTree::Write(tree_.LocalFile(), "namespace: local\naddress: local\n");
  const std::filesystem::path extra = tree_.LocalFile().parent_path() / "extra.yaml";
  TempTree::Write(extra, "namespace: extra\n");
  EXPECT_EQ(Parse({"--config-file", extra.string()}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.ns, "extra");
  EXPECT_EQ(flags_.address, "local");
}

TEST_F(CommandLineTest, InvalidFileIsAnErrorNamingTheFile) {
  TempTree::Write(tree_.UserFile(), "namespace: [unclosed\n");
  EXPECT_THAT(Parse({}), Optional(Not(0)));
  EXPECT_THAT(err_.str(), AllOf(HasSubstr("invalid config file " + tree_.UserFile().string()),
                                HasSubstr("yaml-cpp: error at line")));
}

TEST_F(CommandLineTest, InvalidFileWinsOverOtherParseErrors) {
  TempTree::Write(tree_.LocalFile(), "- not\n- a mapping\n");
  EXPECT_THAT(Parse({"service", "register"}), Optional(Not(0)));
  EXPECT_THAT(err_.str(), HasSubstr("invalid config file " + tree_.LocalFile().string()));
  EXPECT_THAT(err_.str(), Not(HasSubstr("--server is required")));
}

TEST_F(CommandLineTest, ShowConfigListsEveryCandidateEvenWithoutRequiredFlags) {
  require_address_ = true;
  TempTree::Write(tree_.LocalFile(), "a: [\n");
  TempTree::Write(tree_.SystemFile(), "");
  EXPECT_THAT(Parse({"--show-config"}), Optional(0));
  const std::string local = tree_.LocalFile().string();
  const std::string user = tree_.UserFile().string();
  const std::string system = tree_.SystemFile().string();
  // The user file has the longest path, so the others are padded to its width.
  ASSERT_GT(user.size(), local.size());
  ASSERT_GT(user.size(), system.size());
  EXPECT_THAT(err_.str(), StartsWith("Configuration files:\n"
                                     "  " +
                                     local + std::string(user.size() - local.size() + 1, ' ') +
                                     "invalid\n"
                                     "  " +
                                     user +
                                     " not found\n"
                                     "  " +
                                     system + std::string(user.size() - system.size() + 1, ' ') +
                                     "parsed\nSettings:\n"));
  EXPECT_THAT(out_.str(), IsEmpty());
}

TEST_F(CommandLineTest, SharedFilesTakeTheOtherProgramsKeysButNoOthers) {
  other_keys_ = {"grpc-listen"};
  TempTree::Write(tree_.LocalFile(), "namespace: web\ngrpc-listen: x:1\n");
  TempTree::Write(tree_.SystemFile(), "grpc-listen: x:2\n");
  EXPECT_EQ(Parse({"service", "list"}), std::nullopt) << err_.str();
  EXPECT_EQ(flags_.list_namespace, "web");

  TempTree::Write(tree_.SystemFile(), "\ngrpc-lisen: x:2\n");
  EXPECT_THAT(Parse({"service", "list"}), Optional(CommandLine::kUsageExitCode));
  EXPECT_EQ(err_.str(), "discovery: " + tree_.SystemFile().string() +
                            ":2: unknown key \"grpc-lisen\"; did you mean \"grpc-listen\"?\n");
}

TEST_F(CommandLineTest, ShowConfigListsEverySettingWithItsSource) {
  TempTree::Write(tree_.LocalFile(), "namespace: web\ntimeout: 3s\n");
  TempTree::Write(tree_.SystemFile(), "timeout: 9s\nendpoints: [a, b]\n");
  env_.Set("DISCOVERY_ADDRESS", "env:1");
  env_.Set("TEST_TOKEN", "s3cret");
  EXPECT_THAT(Parse({"--show-config", "service", "list", "--namespace", "cli"}), Optional(0));
  const std::string settings = err_.str().substr(err_.str().find("Settings:\n"));
  const std::string local = tree_.LocalFile().string();
  const std::string system = tree_.SystemFile().string();
  // The --namespace of `service list` is shown, the command the arguments name.
  EXPECT_EQ(settings,
            "Settings:\n"
            "  address   env:1 environment DISCOVERY_ADDRESS\n"
            "  debug     false default\n"
            "  endpoints a,b   file " +
                system +
                "\n"
                "  labels    \"\"    default\n"
                "  namespace cli   flag\n"
                "  server    \"\"    default\n"
                "  timeout   3s    file " +
                local +
                "\n"
                "  token     ***** environment TEST_TOKEN\n");
}

TEST_F(CommandLineTest, ShowConfigReportsPermissionDenied) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "root reads every file";
  }
  TempTree::Write(tree_.UserFile(), "namespace: x\n");
  std::filesystem::permissions(tree_.UserFile(), std::filesystem::perms::none);
  EXPECT_THAT(Parse({"--show-config"}), Optional(0));
  EXPECT_THAT(err_.str(), HasSubstr("  " + tree_.UserFile().string() + " permission denied\n"));
}

TEST_F(CommandLineTest, ShowConfigWinsOverBadValues) {
  env_.Set("DISCOVERY_TIMEOUT", "soon");
  EXPECT_THAT(Parse({"--show-config"}), Optional(0));
  EXPECT_THAT(err_.str(), HasSubstr("Configuration files:\n"));
}

TEST_F(CommandLineTest, VersionPrintsThreeLinesToStdout) {
  require_address_ = true;
  TempTree::Write(tree_.LocalFile(), "a: [\n");
  EXPECT_THAT(Parse({"--version"}), Optional(0));
  EXPECT_EQ(out_.str(),
            "discovery, version 1.2.3 (revision: 01234567)\n"
            "  build date:       2024-01-02T03:04:05Z\n"
            "  compiler:         g++ 12.2.0\n");
  EXPECT_THAT(err_.str(), IsEmpty());
}

TEST_F(CommandLineTest, HelpWorksWithInvalidFileAndMissingRequiredFlags) {
  require_address_ = true;
  TempTree::Write(tree_.LocalFile(), "a: [\n");
  EXPECT_THAT(Parse({"--help"}), Optional(0));
  EXPECT_THAT(out_.str(), HasSubstr("--namespace"));
}

TEST_F(CommandLineTest, HelpTextEndsWithEnvironmentVariable) {
  EXPECT_THAT(Parse({"--help"}), Optional(0));
  const std::string help = out_.str();
  EXPECT_THAT(help, Not(HasSubstr("Env:")));
  std::istringstream lines(help);
  int bound = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("--namespace") != std::string::npos) {
      EXPECT_THAT(line, EndsWith("namespace to use ($DISCOVERY_NAMESPACE)"));
      ++bound;
    } else if (line.find("--token") != std::string::npos) {
      EXPECT_THAT(line, EndsWith("machine token ($TEST_TOKEN)"));
      ++bound;
    } else if (line.find("--timeout") != std::string::npos) {
      EXPECT_THAT(line, AllOf(HasSubstr("DURATION=5s"), EndsWith("($DISCOVERY_TIMEOUT)")));
      ++bound;
    } else if (line.find("--help") != std::string::npos ||
               line.find("--version") != std::string::npos ||
               line.find("--show-config") != std::string::npos) {
      EXPECT_THAT(line, Not(HasSubstr("$DISCOVERY_")));
    }
  }
  EXPECT_EQ(bound, 3);
  EXPECT_THAT(help, Not(HasSubstr("--config-file")));
}

TEST_F(CommandLineTest, SubcommandHelpShowsEnvironmentVariables) {
  EXPECT_THAT(Parse({"service", "register", "--help"}), Optional(0));
  EXPECT_THAT(out_.str(), AllOf(HasSubstr("server name ($DISCOVERY_SERVER)"),
                                HasSubstr("namespace ($DISCOVERY_NAMESPACE)")));
}

TEST_F(CommandLineTest, ParsesMainArguments) {
  const std::array<const char*, 3> argv = {"/usr/bin/discovery", "--namespace", "argv"};
  app_ = std::make_unique<CLI::App>("test client");
  std::string ns;
  app_->add_option("--namespace", ns, "namespace");
  CommandLine command_line(*app_, ConfigFiles::Load(tree_.Locations()));
  EXPECT_EQ(command_line.Parse(static_cast<int>(argv.size()), argv.data(), out_, err_),
            std::nullopt)
      << err_.str();
  EXPECT_EQ(ns, "argv");
  EXPECT_EQ(app_->get_name(), "/usr/bin/discovery");
}

TEST_F(CommandLineTest, ConfigToStrWritesYaml) {
  EXPECT_EQ(Parse({"--namespace", "x", "-e", "a,b"}), std::nullopt) << err_.str();
  const std::string yaml = app_->config_to_str(false, false);
  EXPECT_THAT(yaml, AllOf(HasSubstr("namespace: x"), HasSubstr("endpoints: [a, b]")));
}

TEST(FormatShowConfigTest, PadsToTheLongestPath) {
  const ConfigFiles files({
      ConfigFile{.path = "/a/discovery.yaml", .status = FileStatus::kParsed},
      ConfigFile{.path = "/home/u/.config/discovery/config.yaml",
                 .status = FileStatus::kPermissionDenied},
      ConfigFile{.path = "/etc/discovery/config.yaml", .status = FileStatus::kNotFound},
  });
  EXPECT_EQ(FormatShowConfig(files),
            "Configuration files:\n"
            "  /a/discovery.yaml                     parsed\n"
            "  /home/u/.config/discovery/config.yaml permission denied\n"
            "  /etc/discovery/config.yaml            not found\n");
}

TEST(BuildInfoTest, VersionNamesTheProgram) {
  const BuildInfo build{.program = "discoveryd",
                        .version = "1.2.3",
                        .revision = "0123456789abcdef",
                        .date = "2024-01-02T03:04:05Z"};
  EXPECT_EQ(FormatVersion(build),
            "discoveryd, version 1.2.3 (revision: 01234567)\n"
            "  build date:       2024-01-02T03:04:05Z\n"
            "  compiler:         " +
                BuildInfo::CompilerVersion());
  EXPECT_THAT(BuildInfo::CompilerVersion(), Not(IsEmpty()));
}

}  // namespace
}  // namespace discovery::config
