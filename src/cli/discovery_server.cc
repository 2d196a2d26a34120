#include <algorithm>
#include <ostream>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/api_client.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "fmt/format.h"

#include "client_format/output.h"
#include "common/logging.h"
#include "config/command_line.h"
#include "model/model.h"

namespace discovery::cli::discovery_internal {

int ServerList(const Flags& flags, std::ostream& out, const Failure& fail) {
  return fail.Unless(
      PrintSortedByName<Server>(flags, out, &ApiClient::ListServers, client_format::FormatServers));
}

int ServerRegister(const Flags& flags, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<Server> server = client->RegisterServer(flags.name, flags.labels);
  if (!server.ok()) {
    return fail(
        fmt::format("cannot register server {}: {}", flags.name, server.status().message()));
  }
  LogInfo("server registered",
          {{"name", server->name}, {"labels", LabelsToString(server->labels)}});
  return 0;
}

int ServerUnregister(const Flags& flags, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  if (absl::Status status = client->UnregisterServer(flags.name); !status.ok()) {
    return fail(fmt::format("cannot unregister server {}: {}", flags.name, status.message()));
  }
  LogInfo("server unregistered", {{"name", flags.name}});
  return 0;
}

CLI::App* AddServerCommands(CLI::App& app, Flags& flags) {
  CLI::App* server = app.add_subcommand("server", "Manage Prometheus servers.")->alias("srv");
  server->require_subcommand(1);
  server->footer(ExamplesFooter({
      "discovery server register prometheus1.example.com --labels=environment=test",
      "discovery server list",
      "discovery srv unregister prometheus1.example.com",
  }));
  CLI::App* server_list = server->add_subcommand("list", "List servers.");
  server_list->footer(ExamplesFooter({
      "discovery server list",
      "discovery server list -o json",
      "discovery srv list --no-headers",
  }));
  AddOutputFlags(*server_list, flags);
  CLI::App* server_register = server->add_subcommand("register", "Register a server.");
  server_register->footer(ExamplesFooter({
      "discovery server register prometheus1.example.com --labels=environment=test",
      "discovery server register prometheus2.example.com -l environment=prod,zone=a",
  }));
  server_register->add_option("name", flags.name, "Server name")->required();
  config::AddMapOption(*server_register, "-l,--labels", &flags.labels,
                       "Labels services select the server by (k=v,...)");
  CLI::App* server_unregister = server->add_subcommand("unregister", "Unregister a server.");
  server_unregister->footer(
      ExamplesFooter({"discovery server unregister prometheus1.example.com"}));
  server_unregister->add_option("name", flags.name, "Server name")->required();
  return server;
}

}  // namespace discovery::cli::discovery_internal
