#include "cli/discovery.h"

#include <functional>
#include <initializer_list>
#include <iostream>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "cli/grpc_log.h"
#include "cli/token_file.h"

#include "common/logging.h"
#include "config/command_line.h"

namespace discovery::cli {
namespace {

using discovery_internal::AddGlobalFlags;
using discovery_internal::AddLoginCommand;
using discovery_internal::AddNamespaceCommands;
using discovery_internal::AddServerCommands;
using discovery_internal::AddServiceCommands;
using discovery_internal::AddTokenCommands;
using discovery_internal::Failure;
using discovery_internal::Flags;
using discovery_internal::Login;
using discovery_internal::NamespaceList;
using discovery_internal::NamespaceRegister;
using discovery_internal::NamespaceUnregister;
using discovery_internal::ServerList;
using discovery_internal::ServerRegister;
using discovery_internal::ServerUnregister;
using discovery_internal::ServiceImport;
using discovery_internal::ServiceList;
using discovery_internal::ServiceRegister;
using discovery_internal::ServiceUnregister;
using discovery_internal::TokenCreate;
using discovery_internal::TokenInfo;
using discovery_internal::TokenList;
using discovery_internal::TokenRevoke;

// Values the completion cannot read from the flags' checks.
std::map<std::string, ValueHint> DiscoveryValueHints() {
  return {
      {"--output", {.words = {"table", "wide", "json", "yaml", "csv"}}},
      {"--token-path", {.kind = ValueHint::Kind::kFiles}},
      {"path", {.kind = ValueHint::Kind::kFiles}},
  };
}

// Hidden: prints the bash completion script generated from this command tree.
void AddCompletionCommand(CLI::App& app) {
  CLI::App* completion =
      app.add_subcommand("completion", "Print a shell completion script.")->group("");
  completion->require_subcommand(1);
  CLI::App* completion_bash =
      completion->add_subcommand("bash", "Print the bash completion script of discovery.");
  for (CLI::App* command : {completion, completion_bash}) {
    command->footer(ExamplesFooter({
        "discovery completion bash > ~/.local/share/bash-completion/completions/discovery",
        "source <(discovery completion bash)",
    }));
  }
}

// The command tree of discovery, its flags bound to `flags`.
void AddCommands(CLI::App& app, Flags& flags) {
  app.require_subcommand(1);
  app.footer(ExamplesFooter({
      "discovery server register prometheus1.example.com --labels=environment=test",
      // NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one example, split to fit the width
      "discovery service register -e http://example.com/metrics example "
      "--selector=environment=test",
      "discovery service list",
      "discovery --address discovery.example.com:3001 --ca-cert ca.pem namespace list",
      "source <(discovery completion bash)",
  }));
  AddGlobalFlags(app, flags);
  CLI::App* server = AddServerCommands(app, flags);
  CLI::App* service = AddServiceCommands(app, flags);
  CLI::App* ns = AddNamespaceCommands(app, flags);
  CLI::App* token = AddTokenCommands(app, flags);
  CLI::App* login = AddLoginCommand(app, flags);
  AddCompletionCommand(app);

  // Global flags may follow the subcommands (`discovery service list --insecure`).
  login->fallthrough();
  for (CLI::App* command : {server, service, ns, token}) {
    command->fallthrough();
    for (CLI::App* sub : command->get_subcommands({})) {
      sub->fallthrough();
    }
  }
}

// A command by its names: Command(app, {"service", "list"}).
CLI::App* Command(CLI::App& app, std::initializer_list<std::string> names) {
  CLI::App* command = &app;
  for (const std::string& name : names) {
    command = command->get_subcommand(name);
  }
  return command;
}

}  // namespace

std::vector<std::string> DiscoveryConfigKeys() {
  CLI::App app;
  Flags flags;
  AddCommands(app, flags);
  return config::ConfigKeys(app);
}

int RunDiscovery(std::vector<std::string> args, std::ostream& out, std::ostream& err) {
  CLI::App app{"GRPC client for discovery service.", "discovery"};
  Flags flags;
  AddCommands(app, flags);

  config::CommandLine command_line(
      app, config::ConfigFiles::Load(config::ConfigLocations::FromEnvironment()),
      config::BuildInfo::OfThisBuild("discovery"), DiscoverydConfigKeys());
  if (std::optional<int> exit = command_line.Parse(std::move(args), out, err)) {
    return *exit;
  }
  flags.token_path = ExpandHome(flags.token_path).string();
  // Unbuffered: the tool's log lines must stay in order with what it prints to stderr.
  InitLogging({.debug = flags.debug, .flush_interval = absl::ZeroDuration()});
  RouteGrpcLogs(GrpcLogLevel::kDebug);
  // Import runs as long as its file needs; every other command ends within --deadline, except
  // the parts that grow with the fleet and are bounded per call instead (a streamed list, the
  // calls of a bulk unregister).
  CLI::App* service_import = Command(app, {"service", "import"});
  const bool keepalive = Command(app, {"service", "register"})->parsed() && flags.keepalive;
  if (flags.deadline > absl::ZeroDuration() && !service_import->parsed() && !keepalive) {
    flags.connection.deadline = absl::Now() + flags.deadline;
  }
  const Failure fail(err);
  CLI::App* service_register = Command(app, {"service", "register"});
  CLI::App* service_unregister = Command(app, {"service", "unregister"});

  if ((service_register->parsed() || (service_unregister->parsed() && !flags.unresolved)) &&
      flags.namespace_name.empty()) {
    flags.namespace_name = "default";
  }
  const std::vector<std::pair<const CLI::App*, std::function<int()>>> commands = {
      {Command(app, {"completion", "bash"}),
       [&] {
         out << BashCompletionScript(app, "discovery", DiscoveryValueHints());
         return 0;
       }},
      {Command(app, {"server", "list"}), [&] { return ServerList(flags, out, fail); }},
      {Command(app, {"server", "register"}), [&] { return ServerRegister(flags, fail); }},
      {Command(app, {"server", "unregister"}), [&] { return ServerUnregister(flags, fail); }},
      {Command(app, {"service", "list"}), [&] { return ServiceList(flags, out, fail); }},
      {service_register, [&] { return ServiceRegister(flags, fail); }},
      {service_unregister, [&] { return ServiceUnregister(flags, err, fail); }},
      {service_import, [&] { return ServiceImport(flags, err, fail); }},
      {Command(app, {"namespace", "list"}), [&] { return NamespaceList(flags, out, fail); }},
      {Command(app, {"namespace", "register"}), [&] { return NamespaceRegister(flags, fail); }},
      {Command(app, {"namespace", "unregister"}), [&] { return NamespaceUnregister(flags, fail); }},
      {Command(app, {"token", "create"}), [&] { return TokenCreate(flags, out, fail); }},
      {Command(app, {"token", "info"}), [&] { return TokenInfo(flags, out, fail); }},
      {Command(app, {"token", "revoke"}), [&] { return TokenRevoke(flags, fail); }},
      {Command(app, {"token", "list"}), [&] { return TokenList(flags, out, fail); }},
      {Command(app, {"login"}), [&] { return Login(flags, std::cin, out, err, fail); }},
  };
  for (const auto& [command, run] : commands) {
    if (command->parsed()) {
      return run();
    }
  }
  return fail("no command given; see --help");
}

}  // namespace discovery::cli
