#include "cli/completion.h"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/discovery.h"
#include "cli/discoveryd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

// Runs `command` with /bin/sh and returns its stdout; fails the test on a non-zero exit.
std::string Shell(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return "";
  }
  std::string out;
  std::array<char, 4096> buffer{};
  for (std::size_t n = 0; (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) {
    out.append(buffer.data(), n);
  }
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command;
  return out;
}

// The generated scripts of both binaries, written to a temporary directory and exercised through
// bash the way bash's programmable completion calls them.
class CompletionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/completion-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    std::ostringstream out;
    std::ostringstream err;
    ASSERT_EQ(RunDiscovery({"completion", "bash"}, out, err), 0) << err.str();
    discovery_script_ = out.str();
    std::ofstream(dir_ / "discovery") << discovery_script_;
    out.str("");
    ASSERT_EQ(RunDiscoveryd({"completion", "bash"}, out, err), 0) << err.str();
    discoveryd_script_ = out.str();
    std::ofstream(dir_ / "discoveryd") << discoveryd_script_;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // What bash completes for `words`, the last of which is the word under the cursor; sorted.
  std::vector<std::string> Complete(const std::vector<std::string>& words) {
    std::string array;
    for (const std::string& word : words) {
      array += " '" + word + "'";
    }
    const std::string& program = words.front();
    const std::string script = "source " + (dir_ / program).string() + "; COMP_WORDS=(" + array +
                               "); COMP_CWORD=" + std::to_string(words.size() - 1) + "; _" +
                               program + R"(; printf '%s\n' "${COMPREPLY[@]}")";
    std::vector<std::string> lines = Lines(
        Shell("cd " + dir_.string() + " && bash -c \"$(cat <<'EOS'\n" + script + "\nEOS\n)\""));
    std::erase(lines, "");
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  // Every command path of `program` ("" for the program itself, "service list", ...), walked
  // through the script's own tables.
  std::vector<std::string> CommandPaths(const std::string& program) {
    const std::string script = "source " + (dir_ / program).string() + R"(
queue=("")
while ((${#queue[@]})); do
  path=${queue[0]}; queue=("${queue[@]:1}"); printf '%s\n' ":$path"
  __)" + program + R"(_spec "$path"
  for word in $subcommands; do
    __)" + program + R"(_command "$path" "$word"
    [[ $command == "$path${path:+ }$word" ]] && queue+=("$command")
  done
done)";
    std::vector<std::string> paths;
    for (const std::string& line :
         Lines(Shell("bash -c \"$(cat <<'EOS'\n" + script + "\nEOS\n)\""))) {
      paths.push_back(line.substr(1));
    }
    return paths;
  }

  std::filesystem::path dir_;
  std::string discovery_script_;
  std::string discoveryd_script_;
};

TEST_F(CompletionTest, ScriptRegistersItselfAndNamesEveryCommand) {
  EXPECT_THAT(discovery_script_, HasSubstr("complete -F _discovery discovery\n"));
  EXPECT_THAT(discoveryd_script_, HasSubstr("complete -F _discoveryd discoveryd\n"));
  for (const char* command : {"':server'", "':srv'", "':service'", "':svc'", "':namespace'",
                              "':ns'", "':token'", "':login'", "'server:list'", "'service:import'",
                              "'token:info'", "'namespace:unregister'"}) {
    EXPECT_THAT(discovery_script_, HasSubstr(command));
  }
  for (const char* command : {"':server'", "':exporter'", "':token'", "'token:create'"}) {
    EXPECT_THAT(discoveryd_script_, HasSubstr(command));
  }
}

TEST_F(CompletionTest, CompletesSubcommandsAndAliases) {
  EXPECT_THAT(Complete({"discovery", "se"}), ElementsAre("server", "service"));
  EXPECT_THAT(Complete({"discovery", ""}),
              ElementsAre("login", "namespace", "ns", "server", "service", "srv", "svc", "token"));
  EXPECT_THAT(Complete({"discovery", "svc", ""}),
              ElementsAre("import", "list", "register", "unregister"));
  // Global flags and their values before the command are skipped.
  EXPECT_THAT(Complete({"discovery", "--insecure", "-a", "host:1", "ns", "r"}),
              ElementsAre("register"));
  EXPECT_THAT(Complete({"discoveryd", "ex"}), ElementsAre("exporter"));
  EXPECT_THAT(Complete({"discoveryd", "token", ""}), ElementsAre("create", "verify"));
}

TEST_F(CompletionTest, HiddenCompletionCommandIsNotOffered) {
  EXPECT_THAT(Complete({"discovery", "comp"}), IsEmpty());
  EXPECT_THAT(Complete({"discoveryd", "comp"}), IsEmpty());
}

TEST_F(CompletionTest, CompletesOptionsIncludingInheritedOnes) {
  EXPECT_THAT(Complete({"discovery", "service", "list", "--so"}), ElementsAre("--sort-by"));
  EXPECT_THAT(Complete({"discovery", "service", "register", "--ins"}), ElementsAre("--insecure"));
  EXPECT_THAT(Complete({"discovery", "service", "list", "--no"}), ElementsAre("--no-headers"));
  // Flags of `service list` do not leak into `server list`.
  EXPECT_THAT(Complete({"discovery", "server", "list", "--so"}), IsEmpty());
  EXPECT_THAT(Complete({"discoveryd", "exporter", "--res"}), ElementsAre("--resync-interval"));
}

TEST_F(CompletionTest, CompletesKnownValues) {
  EXPECT_THAT(Complete({"discovery", "service", "list", "-o", ""}),
              ElementsAre("csv", "json", "table", "wide", "yaml"));
  EXPECT_THAT(Complete({"discovery", "srv", "list", "--output", "j"}), ElementsAre("json"));
  // `--output=y`, split by bash at '=' (COMP_WORDBREAKS).
  EXPECT_THAT(Complete({"discovery", "svc", "list", "--output", "=", "y"}), ElementsAre("yaml"));
  EXPECT_THAT(Complete({"discovery", "service", "list", "--sort-by", ""}),
              ElementsAre("date", "endpoint"));
  EXPECT_THAT(Complete({"discovery", "namespace", "register", "-e", ""}),
              ElementsAre("blackbox", "disabled", "standard"));
  EXPECT_THAT(Complete({"discoveryd", "server", "--placement", ""}),
              ElementsAre("jump", "rendezvous"));
  EXPECT_THAT(Complete({"discoveryd", "--store", "e"}), ElementsAre("embedded", "etcd"));
  // A value nothing is known about completes to nothing rather than to a command.
  EXPECT_THAT(Complete({"discovery", "-a", ""}), IsEmpty());
}

TEST_F(CompletionTest, CompletesFilesWhereAFileIsExpected) {
  std::ofstream(dir_ / "services.yaml") << "[]\n";
  EXPECT_THAT(Complete({"discovery", "service", "import", "serv"}), ElementsAre("services.yaml"));
  EXPECT_THAT(Complete({"discoveryd", "server", "--tls-cert", "serv"}),
              ElementsAre("services.yaml"));
}

TEST_F(CompletionTest, EveryCommandOfDiscoveryHasHelpWithExamples) {
  std::vector<std::string> paths = CommandPaths("discovery");
  EXPECT_GE(paths.size(), 18U);
  paths.emplace_back("completion");
  paths.emplace_back("completion bash");
  for (const std::string& path : paths) {
    std::vector<std::string> args;
    std::istringstream words(path);
    for (std::string word; words >> word;) {
      args.push_back(word);
    }
    args.emplace_back("--help");
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(RunDiscovery(args, out, err), 0) << path;
    EXPECT_THAT(out.str(), HasSubstr("\nExamples:\n  discovery ")) << "discovery " << path;
  }
}

TEST_F(CompletionTest, EveryCommandOfDiscoverydHasHelpWithExamples) {
  std::vector<std::string> paths = CommandPaths("discoveryd");
  EXPECT_GE(paths.size(), 5U);
  paths.emplace_back("completion");
  paths.emplace_back("completion bash");
  for (const std::string& path : paths) {
    std::vector<std::string> args;
    std::istringstream words(path);
    for (std::string word; words >> word;) {
      args.push_back(word);
    }
    args.emplace_back("--help");
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(RunDiscoveryd(args, out, err), 0) << path;
    EXPECT_THAT(out.str(), HasSubstr("\nExamples:\n  discoveryd")) << "discoveryd " << path;
  }
}

TEST(ExamplesFooterTest, IndentsEachLine) {
  EXPECT_EQ(ExamplesFooter({"a b", "c"}), "Examples:\n  a b\n  c");
  EXPECT_THAT(ExamplesFooter({}), Not(HasSubstr("\n")));
}

}  // namespace
}  // namespace discovery::cli
