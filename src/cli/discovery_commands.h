// The command groups of the `discovery` client, one file each: server (discovery_server.cc),
// service (discovery_service.cc with list, and discovery_service_{register,unregister,import}.cc),
// namespace (discovery_namespace.cc), token (discovery_token.cc) and login
// (discovery_login.cc). Each group adds its commands to the tree and runs them; discovery.cc puts
// the tree together and dispatches. Internal to src/cli.
#pragma once

#include <functional>
#include <istream>
#include <ostream>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/api_client.h"
#include "cli/discovery_flags.h"

#include "client_format/output.h"
#include "model/model.h"

namespace discovery::cli::discovery_internal {

// Each Add*Commands adds its group under `app` with the flags bound to `flags` and returns the
// group's command.

CLI::App* AddServerCommands(CLI::App& app, Flags& flags);
int ServerList(const Flags& flags, std::ostream& out, const Failure& fail);
int ServerRegister(const Flags& flags, const Failure& fail);
int ServerUnregister(const Flags& flags, const Failure& fail);

CLI::App* AddNamespaceCommands(CLI::App& app, Flags& flags);
int NamespaceList(const Flags& flags, std::ostream& out, const Failure& fail);
int NamespaceRegister(const Flags& flags, const Failure& fail);
int NamespaceUnregister(const Flags& flags, const Failure& fail);

// service: the group and `service list` (discovery_service.cc); each other subcommand in its
// own file adds itself under `service`.
CLI::App* AddServiceCommands(CLI::App& app, Flags& flags);
void AddServiceListCommand(CLI::App* service, Flags& flags);
void AddServiceRegisterCommand(CLI::App* service, Flags& flags);
void AddServiceUnregisterCommand(CLI::App* service, Flags& flags);
void AddServiceImportCommand(CLI::App* service, Flags& flags);
int ServiceList(const Flags& flags, std::ostream& out, const Failure& fail);
int ServiceRegister(const Flags& flags, const Failure& fail);
int ServiceUnregister(const Flags& flags, std::ostream& err, const Failure& fail);
int ServiceImport(const Flags& flags, std::ostream& err, const Failure& fail);

// Shared by `service list` and `service unregister -u`.
// The services whose endpoint host does not resolve.
absl::StatusOr<std::vector<Service>> Unresolved(std::vector<Service> services);
// The rows of `service list` (without -u's DNS lookups), filtered and sorted as the flags say, to
// `row` in order: as the server streams them, or, from a server without ListServiceStream, from
// its one-message list filtered and sorted here. `served_only` leaves out invalid records.
absl::Status ListServiceRows(const Flags& flags, const ApiClient& client, bool served_only,
                             const std::function<void(client_format::ListedService)>& row);

CLI::App* AddTokenCommands(CLI::App& app, Flags& flags);
int TokenCreate(const Flags& flags, std::ostream& out, const Failure& fail);
int TokenInfo(const Flags& flags, std::ostream& out, const Failure& fail);
int TokenRevoke(const Flags& flags, const Failure& fail);
// The revoked token ids the server knows of (issued tokens are not recorded anywhere).
int TokenList(const Flags& flags, std::ostream& out, const Failure& fail);

CLI::App* AddLoginCommand(CLI::App& app, Flags& flags);
int Login(const Flags& flags, std::istream& in, std::ostream& out, std::ostream& err,
          const Failure& fail);

}  // namespace discovery::cli::discovery_internal
