#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "cli/api_client.h"
#include "cli/bulk.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "cli/progress.h"
#include "fmt/format.h"

#include "client_format/output.h"
#include "common/go_duration.h"
#include "common/logging.h"
#include "config/command_line.h"
#include "model/model.h"

namespace discovery::cli::discovery_internal {

using client_format::ListedService;

namespace {

// One service to unregister: its namespace and its ID or endpoint.
struct UnregisterItem {
  std::string namespace_name;
  std::string service;
};

// Unregisters `items` with up to --max-in-flight calls at once, a progress bar on a terminal, each
// failure reported and a one-line summary; 1 when any failed.
int UnregisterMany(const Flags& flags, const ApiClient& client,
                   const std::vector<UnregisterItem>& items, std::ostream& err,
                   const Failure& fail) {
  const absl::Time start = absl::Now();
  std::optional<ProgressBar> progress = ProgressOf(flags, err, items.size());
  const auto clear_progress = [&] {
    if (progress) {
      progress->Clear();
    }
  };
  std::vector<char> gone(items.size(), 0);
  const size_t failed = RunBulk(
      items.size(),
      {.max_in_flight = flags.max_in_flight,
       .retry_delays = kRetryDelays,
       .progress = progress ? &*progress : nullptr},
      [&](size_t i, std::function<void(absl::Status)> done) {
        // A service already gone is what unregistering asks for: noted, not a failure.
        client.UnregisterServiceAsync(
            items[i].namespace_name, items[i].service,
            [&gone, i, done = std::move(done)](absl::Status status) {
              if (absl::IsNotFound(status)) {
                gone[i] = 1;  // read in `finished`, after RunBulk has taken this outcome
                status = absl::OkStatus();
              }
              done(std::move(status));
            });
      },
      [&](size_t i, const absl::Status& status) {
        const UnregisterItem& item = items[i];
        if (gone[i] != 0) {
          clear_progress();
          LogInfo("service not registered, nothing to unregister",
                  {{"namespace", item.namespace_name}, {"service", item.service}});
          return;
        }
        if (!status.ok()) {
          clear_progress();
          fail(fmt::format("cannot unregister {} in namespace {}: {}", item.service,
                           item.namespace_name, status.message()));
          return;
        }
        // One service is reported as before; a bulk one by its summary (-d shows each).
        const LogFields fields = {{"namespace", item.namespace_name}, {"service", item.service}};
        if (items.size() == 1) {
          LogInfo("service unregistered", fields);
        } else {
          LogDebug("service unregistered", fields);
        }
      },
      [&](size_t i, const absl::Status& failure, absl::Duration delay) {
        clear_progress();
        LogWarn("request failed, retrying", {{"namespace", items[i].namespace_name},
                                             {"service", items[i].service},
                                             {"error", std::string{failure.message()}},
                                             {"retry-in", FormatGoDuration(delay)}});
      });
  clear_progress();
  if (items.size() > 1) {
    const auto not_registered = static_cast<size_t>(std::count(gone.begin(), gone.end(), 1));
    LogInfo("services unregistered",
            {{"unregistered", std::to_string(items.size() - failed - not_registered)},
             {"not_registered", std::to_string(not_registered)},
             {"failed", std::to_string(failed)},
             {"took", Pace(items.size(), start)}});
  }
  return failed == 0 ? 0 : 1;
}

int UnregisterUnresolved(const Flags& flags, const ApiClient& client, std::ostream& err,
                         const Failure& fail) {
  std::vector<Service> services;
  if (absl::Status listed =
          ListServiceRows(flags, client, /*served_only=*/true,
                          [&](ListedService row) { services.push_back(std::move(row.service)); });
      !listed.ok()) {
    return fail(listed);
  }
  const std::size_t total = services.size();
  absl::StatusOr<std::vector<Service>> unresolved = Unresolved(std::move(services));
  if (!unresolved.ok()) {
    return fail(unresolved.status());
  }
  if (unresolved->empty()) {
    LogInfo("no unresolved services found");
    return 0;
  }
  const double share = 100.0 * static_cast<double>(unresolved->size()) / static_cast<double>(total);
  if (share > flags.percent) {
    return fail(fmt::format(
        "maximum {:g}% services are allowed to be unregistered, but {} of {} ({:.1f}%) do not "
        "resolve; raise --percent to unregister them",
        flags.percent, unresolved->size(), total, share));
  }
  std::vector<UnregisterItem> items;
  items.reserve(unresolved->size());
  for (const Service& service : *unresolved) {
    LogDebug("unresolved service", {{"id", service.id},
                                    {"endpoint", service.endpoint},
                                    {"namespace", service.namespace_name}});
    items.push_back({.namespace_name = service.namespace_name, .service = service.endpoint});
  }
  return UnregisterMany(flags, client, items, err, fail);
}

}  // namespace

int ServiceUnregister(const Flags& flags, std::ostream& err, const Failure& fail) {
  if (flags.unresolved && !flags.unregister_items.empty()) {
    return fail("unresolved cannot be used in combination with endpoints");
  }
  if (!flags.unresolved && flags.unregister_items.empty()) {
    return fail.Usage(
        "service unregister needs endpoint URLs or service IDs ($DISCOVERY_ENDPOINTS), or -u; see "
        "--help");
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  if (flags.unresolved) {
    return UnregisterUnresolved(flags, *client, err, fail);
  }
  std::vector<UnregisterItem> items;
  items.reserve(flags.unregister_items.size());
  for (const std::string& item : flags.unregister_items) {
    items.push_back({.namespace_name = flags.namespace_name, .service = item});
  }
  if (items.size() == 1) {
    // One service (ExecStopPost's case) is a one-shot command: its retries stay within
    // --deadline.
    const UnregisterItem& item = items.front();
    const LogFields fields = {{"namespace", item.namespace_name}, {"service", item.service}};
    const absl::Status status =
        WithRetries([&] { return client->UnregisterService(item.namespace_name, item.service); },
                    fields, flags.connection.deadline);
    if (absl::IsNotFound(status)) {
      // What ExecStopPost wants: after the command the service is not registered.
      LogInfo("service not registered, nothing to unregister", fields);
      return 0;
    }
    if (!status.ok()) {
      return fail(fmt::format("cannot unregister {} in namespace {}: {}", item.service,
                              item.namespace_name, status.message()));
    }
    LogInfo("service unregistered", fields);
    return 0;
  }
  return UnregisterMany(flags, *client, items, err, fail);
}

void AddServiceUnregisterCommand(CLI::App* service, Flags& flags) {
  CLI::App* service_unregister = service->add_subcommand(
      "unregister", "Unregister services by endpoint URL or ID, or those that do not resolve.");
  service_unregister->footer(ExamplesFooter({
      "discovery service unregister -n default http://example.com/metrics",
      "discovery service unregister 93c156b1-f218-5d79-88a5-219307e59d29",
      "discovery service unregister -u -p 5       # at most 5% of all services",
  }));
  config::AddListOption(*service_unregister, "endpoints", &flags.unregister_items,
                        "Endpoint URLs or service IDs")
      ->envname("DISCOVERY_ENDPOINTS");
  CLI::Option* unregister_namespace =
      service_unregister->add_option("-n,--namespace", flags.namespace_name, "Namespace")
          ->default_str("default");
  service_unregister
      ->add_flag("-u,--unresolved", flags.unresolved,
                 "Unregister the services whose host does not resolve (all namespaces)")
      ->excludes(unregister_namespace);
  service_unregister
      ->add_option("-p,--percent", flags.percent,
                   "With -u: the largest share of all services (in %) that may be unregistered")
      ->default_str("1");
  AddBulkFlags(*service_unregister, flags);
}

}  // namespace discovery::cli::discovery_internal
