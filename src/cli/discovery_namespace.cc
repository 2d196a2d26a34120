#include <algorithm>
#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/api_client.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "fmt/format.h"

#include "client_format/output.h"
#include "common/logging.h"
#include "model/model.h"

namespace discovery::cli::discovery_internal {

int NamespaceList(const Flags& flags, std::ostream& out, const Failure& fail) {
  return fail.Unless(PrintSortedByName<Namespace>(flags, out, &ApiClient::ListNamespaces,
                                                  client_format::FormatNamespaces));
}

int NamespaceRegister(const Flags& flags, const Failure& fail) {
  absl::StatusOr<ExportConfig> export_config = ParseExportConfig(flags.export_config);
  if (!export_config.ok()) {
    return fail(export_config.status());
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<Namespace> ns = client->RegisterNamespace(flags.name, *export_config);
  if (!ns.ok()) {
    return fail(fmt::format("cannot register namespace {}: {}", flags.name, ns.status().message()));
  }
  LogInfo("namespace registered",
          {{"name", ns->name}, {"export", ExportConfigName(ns->export_config)}});
  return 0;
}

int NamespaceUnregister(const Flags& flags, const Failure& fail) {
  if (flags.name == "default") {
    return fail(
        "refusing to unregister namespace default: services registered without --namespace go "
        "there");
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  // Counted before deleting so that an operator learns what --force would remove; a namespace
  // the server does not know is left to UnregisterNamespace to report.
  std::size_t services = 0;
  if (absl::StatusOr<std::vector<Service>> listed = client->ListServices(flags.name); listed.ok()) {
    services = listed->size();
  } else if (!absl::IsNotFound(listed.status())) {
    return fail(
        fmt::format("cannot unregister namespace {}: {}", flags.name, listed.status().message()));
  }
  if (services > 0 && !flags.force) {
    return fail(fmt::format(
        "namespace {} still holds {} service{}; unregister them first, or pass --force to "
        "unregister the namespace with {}",
        flags.name, services, services == 1 ? "" : "s", services == 1 ? "it" : "all of them"));
  }
  if (absl::Status status = client->UnregisterNamespace(flags.name); !status.ok()) {
    return fail(fmt::format("cannot unregister namespace {}: {}", flags.name, status.message()));
  }
  LogInfo("namespace unregistered",
          {{"name", flags.name}, {"services-removed", std::to_string(services)}});
  return 0;
}

CLI::App* AddNamespaceCommands(CLI::App& app, Flags& flags) {
  CLI::App* ns = app.add_subcommand("namespace", "Manage namespaces.")->alias("ns");
  ns->require_subcommand(1);
  ns->footer(ExamplesFooter({
      "discovery namespace list",
      "discovery namespace register -e blackbox default-blackbox",
      "discovery ns unregister default-blackbox",
  }));
  CLI::App* ns_list = ns->add_subcommand("list", "List namespaces.");
  ns_list->footer(ExamplesFooter({"discovery namespace list", "discovery ns list -o json"}));
  AddOutputFlags(*ns_list, flags);
  CLI::App* ns_register = ns->add_subcommand("register", "Register a namespace.");
  ns_register->footer(ExamplesFooter({
      "discovery namespace register web",
      "discovery namespace register -e blackbox default-blackbox",
  }));
  ns_register->add_option("name", flags.name, "Namespace name")->required();
  ns_register
      ->add_option("-e,--export-config", flags.export_config, "How its services are exported")
      ->check(CLI::IsMember({"standard", "blackbox", "disabled"}))
      ->default_str("standard");
  CLI::App* ns_unregister =
      ns->add_subcommand("unregister", "Unregister a namespace and its services.");
  ns_unregister->footer(ExamplesFooter({
      "discovery namespace unregister default-blackbox",
      "discovery namespace unregister --force old-team   # with the services it still holds",
  }));
  ns_unregister->add_option("name", flags.name, "Namespace name (not default)")->required();
  ns_unregister->add_flag("--force", flags.force,
                          "Also unregister the services the namespace still holds");
  return ns;
}

}  // namespace discovery::cli::discovery_internal
