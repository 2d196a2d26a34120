#include <algorithm>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/api_client.h"
#include "cli/completion.h"
#include "cli/discovery_commands.h"
#include "cli/discovery_flags.h"
#include "cli/host_resolver.h"
#include "fmt/format.h"

#include "client_format/output.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "model/endpoint.h"
#include "re2/re2.h"
#include "selector/regex_filter.h"
#include "selector/selector.h"

namespace discovery::cli::discovery_internal {

using client_format::ListedService;
using client_format::OutputFormat;
using client_format::OutputOptions;

namespace {

// How long `-u` waits for DNS, as the original does.
constexpr absl::Duration kResolveTimeout = absl::Seconds(10);

absl::StatusOr<std::vector<ListedService>> FilterServices(const Flags& flags,
                                                          std::vector<ListedService> services) {
  // RE2, the syntax of the original's Go regexp; an empty flag matches everything.
  DISCOVERY_ASSIGN_OR_RETURN(const selector::RegexFilter name,
                             selector::RegexFilter::Compile("--filter-name", flags.filter_name));
  DISCOVERY_ASSIGN_OR_RETURN(
      const selector::RegexFilter server,
      selector::RegexFilter::Compile("--filter-server", flags.filter_server));
  DISCOVERY_ASSIGN_OR_RETURN(
      const selector::RegexFilter endpoint,
      selector::RegexFilter::Compile("--filter-endpoint", flags.filter_endpoint));
  std::optional<selector::Selector> labels;
  if (!flags.filter_selector.empty()) {
    absl::StatusOr<selector::Selector> parsed = selector::Selector::Parse(flags.filter_selector);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(fmt::format("invalid --filter-selector \"{}\": {}",
                                                    flags.filter_selector,
                                                    parsed.status().message()));
    }
    labels = *std::move(parsed);
  }
  std::erase_if(services, [&](const ListedService& listed) {
    const Service& service = listed.service;
    const bool keep = name.Matches(service.name) && endpoint.Matches(service.endpoint) &&
                      server.MatchesAny(service.servers) &&
                      (!labels || labels->Matches(service.labels));
    return !keep;
  });
  return services;
}

// `service list`'s orders: by endpoint (then namespace), or by date, newest first.
void SortListed(const std::string& sort_by, std::vector<ListedService>& listed) {
  if (sort_by == "date") {
    std::stable_sort(listed.begin(), listed.end(),
                     [](const ListedService& a, const ListedService& b) {
                       return a.service.modified > b.service.modified;
                     });
  } else {
    std::sort(listed.begin(), listed.end(), [](const ListedService& a, const ListedService& b) {
      return std::tie(a.service.endpoint, a.service.namespace_name) <
             std::tie(b.service.endpoint, b.service.namespace_name);
    });
  }
}

}  // namespace

absl::StatusOr<std::vector<Service>> Unresolved(std::vector<Service> services) {
  std::map<std::string, std::string> host_of;  // endpoint -> host
  std::set<std::string> hosts;
  for (const Service& service : services) {
    absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(service.endpoint);
    if (!endpoint.ok()) {
      continue;  // the server only stores endpoints that parse
    }
    host_of[service.endpoint] = endpoint->Hostname();
    hosts.insert(endpoint->Hostname());
  }
  DISCOVERY_ASSIGN_OR_RETURN(const std::set<std::string> unresolved,
                             UnresolvedHosts(hosts, kResolveTimeout));
  std::erase_if(services, [&](const Service& service) {
    const auto host = host_of.find(service.endpoint);
    return host == host_of.end() || !unresolved.contains(host->second);
  });
  return services;
}

absl::Status ListServiceRows(const Flags& flags, const ApiClient& client, bool served_only,
                             const std::function<void(ListedService)>& row) {
  // Checked here too, so that an error names the flag rather than the request's field.
  DISCOVERY_RETURN_IF_ERROR(FilterServices(flags, {}).status());
  const ServiceQuery query{.namespace_name = flags.namespace_name,
                           .filter_name = flags.filter_name,
                           .filter_endpoint = flags.filter_endpoint,
                           .filter_server = flags.filter_server,
                           .filter_selector = flags.filter_selector,
                           .sort_by = flags.sort_by,
                           .served_only = served_only};
  bool any = false;
  absl::Status streamed = client.StreamServices(query, {}, [&](ListedService listed) {
    any = true;
    row(std::move(listed));
  });
  if (!absl::IsUnimplemented(streamed) || any) {
    return streamed;
  }
  std::vector<InvalidService> invalid;
  DISCOVERY_ASSIGN_OR_RETURN(
      std::vector<Service> services,
      client.ListServices(flags.namespace_name, served_only ? nullptr : &invalid));
  std::vector<ListedService> listed;
  listed.reserve(services.size() + invalid.size());
  for (Service& service : services) {
    listed.push_back({.service = std::move(service)});
  }
  for (InvalidService& record : invalid) {
    listed.push_back({.service = std::move(record.service), .invalid = std::move(record.reason)});
  }
  DISCOVERY_ASSIGN_OR_RETURN(std::vector<ListedService> filtered,
                             FilterServices(flags, std::move(listed)));
  SortListed(flags.sort_by, filtered);
  for (ListedService& item : filtered) {
    row(std::move(item));
  }
  return absl::OkStatus();
}

int ServiceList(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<Listing> listing = StartListing(flags);
  if (!listing.ok()) {
    return fail(listing.status());
  }
  const OutputOptions* output = &listing->output;
  const ApiClient* client = &listing->client;
  // Rows are printed as they arrive (a table once all are in, for its column widths): the list
  // is never held whole in more than one form.
  client_format::ListedServiceWriter writer(out, *output);
  size_t shown_invalid = 0;
  if (flags.unresolved) {  // -u looks up served services only, and needs every host first
    std::vector<Service> served;
    if (absl::Status listed =
            ListServiceRows(flags, *client, /*served_only=*/true,
                            [&](ListedService row) { served.push_back(std::move(row.service)); });
        !listed.ok()) {
      return fail(listed);
    }
    absl::StatusOr<std::vector<Service>> unresolved = Unresolved(std::move(served));
    if (!unresolved.ok()) {
      return fail(unresolved.status());
    }
    for (Service& service : *unresolved) {
      writer.Add({.service = std::move(service)});
    }
  } else if (absl::Status listed = ListServiceRows(flags, *client, /*served_only=*/false,
                                                   [&](const ListedService& row) {
                                                     shown_invalid += row.invalid.empty() ? 0 : 1;
                                                     writer.Add(row);
                                                   });
             !listed.ok()) {
    return fail(listed);
  }
  if (shown_invalid > 0 &&
      (output->format == OutputFormat::kTable || output->format == OutputFormat::kCsv)) {
    LogWarn(
        fmt::format("{} of the listed services are stored records that cannot be served and are "
                    "left out of http_sd and file_sd; `-o wide` shows why",
                    shown_invalid));
  }
  writer.Finish();
  out.flush();
  return 0;
}

CLI::App* AddServiceCommands(CLI::App& app, Flags& flags) {
  CLI::App* service =
      app.add_subcommand("service", "Manage services (scrape targets).")->alias("svc");
  service->require_subcommand(1);
  service->footer(ExamplesFooter({
      "discovery service register -e http://example.com/metrics example -s environment=test",
      "discovery service list -n default",
      "discovery service unregister -n default http://example.com/metrics",
  }));
  AddServiceListCommand(service, flags);
  AddServiceRegisterCommand(service, flags);
  AddServiceUnregisterCommand(service, flags);
  AddServiceImportCommand(service, flags);
  return service;
}

void AddServiceListCommand(CLI::App* service, Flags& flags) {
  CLI::App* service_list = service->add_subcommand("list", "List services.");
  service_list->footer(ExamplesFooter({
      "discovery service list",
      "discovery service list -n default-blackbox -o yaml",
      "discovery service list -N '^example' -S prometheus1 --sort-by date",
      "discovery service list -s environment=test -o csv --no-headers",
      "discovery service list -u                  # hosts that no longer resolve",
  }));
  AddOutputFlags(*service_list, flags);
  service_list->add_option("--sort-by", flags.sort_by, "Sort by endpoint or date (newest first)")
      ->check(CLI::IsMember({"endpoint", "date"}))
      ->default_str("endpoint");
  service_list->add_flag("-u,--unresolved", flags.unresolved,
                         "Only services whose host does not resolve in DNS");
  service_list->add_option("-n,--namespace", flags.namespace_name, "Namespace (default: all)");
  service_list->add_option("-N,--filter-name", flags.filter_name, "Regular expression on the name");
  service_list->add_option("-S,--filter-server", flags.filter_server,
                           "Regular expression on the servers");
  service_list->add_option("-e,--filter-endpoint", flags.filter_endpoint,
                           "Regular expression on the endpoint");
  service_list->add_option("-s,--filter-selector", flags.filter_selector,
                           "Label selector on the service's labels");
}

}  // namespace discovery::cli::discovery_internal
