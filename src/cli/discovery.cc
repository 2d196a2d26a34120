#include "cli/discovery.h"

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/random/random.h"
#include "absl/time/clock.h"
#include "cli/api_client.h"
#include "cli/bulk.h"
#include "cli/completion.h"
#include "cli/discoveryd.h"
#include "cli/grpc_log.h"
#include "cli/host_resolver.h"
#include "cli/oidc_login.h"
#include "cli/progress.h"
#include "cli/retry.h"
#include "cli/token_file.h"
#include "fmt/format.h"

#include "auth/jwt.h"
#include "client_format/output.h"
#include "client_format/service_import.h"
#include "common/format.h"
#include "common/go_duration.h"
#include "common/logging.h"
#include "config/command_line.h"
#include "model/endpoint.h"
#include "re2/re2.h"
#include "selector/selector.h"

namespace discovery::cli {
namespace {

using client_format::ListedService;
using client_format::OutputFormat;
using client_format::OutputOptions;

// How long `-u` waits for DNS, as the original does.
constexpr absl::Duration kResolveTimeout = absl::Seconds(10);

// Waits between attempts of a call that failed transiently: three retries, each wait jittered
// to between half and one and a half times its value.
constexpr std::array<absl::Duration, 3> kRetryDelays = {absl::Seconds(1), absl::Seconds(2),
                                                        absl::Seconds(4)};

// NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding): grouped by command for readers
struct Flags {
  // global
  ConnectionOptions connection;
  absl::Duration deadline = absl::Seconds(20);  // of a whole one-shot command; 0: none
  std::string token_path = DefaultTokenPath().string();
  bool debug = false;
  std::string oidc_endpoint;
  std::string oidc_client_id;
  std::string oidc_external_login_cmd;
  std::string oidc_client_secret;
  // login
  std::string username;
  bool password_stdin = false;
  // list commands
  std::string output = "table";
  bool headers = false;
  bool no_headers = false;
  // service
  std::string sort_by = "endpoint";
  bool unresolved = false;
  std::string namespace_name;
  std::string filter_name;
  std::string filter_server;
  std::string filter_endpoint;
  std::string filter_selector;
  std::string name;
  std::vector<std::string> endpoints;
  std::map<std::string, std::string> labels;
  std::string selector;
  std::string description;
  absl::Duration ttl = absl::ZeroDuration();
  bool keepalive = false;
  std::vector<std::string> unregister_items;
  double percent = 1.0;
  std::string import_path;
  // bulk commands (import, unregister of many)
  size_t max_in_flight = 64;
  bool quiet = false;
  // namespace
  std::string export_config = "standard";
  bool force = false;
  // token
  std::string token_id;
  absl::Duration expiry = absl::ZeroDuration();
  std::vector<std::string> token_namespaces;
  std::string token;
};

// A command's failure: printed as one line "discovery: <message>".
class Failure {
 public:
  explicit Failure(std::ostream& err) : err_(err) {}
  int operator()(std::string_view message) const {
    err_ << "discovery: " << message << "\n";
    return 1;
  }
  int operator()(const absl::Status& status) const { return (*this)(ToStd(status.message())); }
  // A command line that cannot work, found after parsing: exit status 2 as CLI11's usage errors.
  int Usage(std::string_view message) const {
    (*this)(message);
    return 2;
  }

 private:
  std::ostream& err_;
};

void AddGlobalFlags(CLI::App& app, Flags& flags) {
  ConnectionOptions& connection = flags.connection;
  app.add_option("-a,--address", connection.address, "Address (host:port) of discoveryd's gRPC API")
      ->default_str("localhost:3001");
  config::AddDurationOption(app, "--timeout", &connection.timeout, "Timeout of each request");
  config::AddDurationOption(app, "--deadline", &flags.deadline,
                            "Time limit of a whole command, its retries included (0: none; "
                            "`service import` has none)");
  app.add_flag("-d,--debug", flags.debug, "Log at debug level");
  CLI::Option* insecure =
      app.add_flag("--insecure", connection.insecure, "Talk plaintext gRPC instead of TLS");
  CLI::Option* ca_cert = app.add_option("--ca-cert", connection.ca_cert_file,
                                        "PEM file of CAs trusted in addition to the system's")
                             ->check(CLI::ExistingFile);
  insecure->excludes(ca_cert);
  app.add_option("--token-path", flags.token_path,
                 "Token file (YAML: machine_token, or the tokens of `discovery login`)")
      ->default_str("~/.config/discovery/.token");
  app.add_option("--oidc-endpoint", flags.oidc_endpoint, "OIDC endpoint URL");
  app.add_option("--oidc-client-id", flags.oidc_client_id, "OIDC client ID");
  app.add_option("--oidc-client-secret", flags.oidc_client_secret,
                 "OIDC client secret, for providers that allow the password grant to "
                 "confidential clients only");
  app.add_option("--oidc-external-login-cmd", flags.oidc_external_login_cmd,
                 "Command that logs in instead of `discovery login`");
}

void AddOutputFlags(CLI::App& command, Flags& flags) {
  command
      .add_option("-o,--output", flags.output,
                  "Output format: table, wide (adds why a stored record cannot be served), json, "
                  "yaml or csv (fields separated by ';'). In json and yaml a server's state is 0 "
                  "leaving, 1 joining, 2 active, a namespace's export 0 disabled, 1 standard, 2 "
                  "blackbox")
      ->default_str("table");
  CLI::Option* headers = command.add_flag("-H,--headers", flags.headers,
                                          "Print the header line (the default; kept for scripts)");
  command.add_flag("--no-headers", flags.no_headers, "Do not print the header line")
      ->excludes(headers);
}

// The flags of the commands that send many calls at once.
void AddBulkFlags(CLI::App& command, Flags& flags) {
  command
      .add_option("--max-in-flight,--parallel", flags.max_in_flight,
                  "Requests sent without waiting for their answers, at most")
      ->check(CLI::Range(1, 4096))
      ->default_str("64");
  command.add_flag("-q,--quiet", flags.quiet,
                   "No progress bar (shown only when stderr is a terminal) and no line per "
                   "failed import: only the summary");
}

absl::StatusOr<OutputOptions> OutputOptionsOf(const Flags& flags) {
  absl::StatusOr<OutputFormat> format = client_format::ParseOutputFormat(flags.output);
  if (!format.ok()) {
    return format.status();
  }
  return OutputOptions{.format = *format, .headers = !flags.no_headers};
}

OidcClientOptions OidcOptionsOf(const Flags& flags) {
  return {.endpoint = flags.oidc_endpoint,
          .client_id = flags.oidc_client_id,
          .client_secret = flags.oidc_client_secret,
          .ca_cert_file = flags.connection.ca_cert_file};
}

absl::StatusOr<ApiClient> Connect(const Flags& flags) {
  absl::StatusOr<TokenFile> token = ReadTokenFile(flags.token_path);
  if (!token.ok()) {
    return token.status();
  }
  if (!flags.oidc_endpoint.empty()) {
    absl::StatusOr<std::optional<TokenFile>> refreshed =
        RefreshIfExpired(OidcOptionsOf(flags), *token, absl::Now());
    if (!refreshed.ok()) {
      return refreshed.status();
    }
    if (refreshed->has_value()) {
      if (absl::Status saved = WriteTokenFile(flags.token_path, **refreshed); !saved.ok()) {
        return saved;
      }
      LogDebug("ID token refreshed", {{"token-path", flags.token_path}});
      token = **refreshed;
    }
  }
  ConnectionOptions options = flags.connection;
  options.token = token->BearerToken();
  return ApiClient::Connect(options);
}

// Retries `call` on transient failures, logging every retry with `what` the call is about; no
// retry waits past `deadline`, the command's --deadline.
absl::Status WithRetries(const std::function<absl::Status()>& call, const LogFields& what,
                         absl::Time deadline = absl::InfiniteFuture()) {
  absl::BitGen random;  // seeded from the OS: every host of a fleet waits differently
  return RetryTransient(
      call, kRetryDelays, random,
      [&](const absl::Status& failure, absl::Duration delay) {
        LogFields fields = what;
        fields.emplace_back("error", std::string{failure.message()});
        fields.emplace_back("retry-in", FormatGoDuration(delay));
        LogWarn("request failed, retrying", fields);
        absl::SleepFor(delay);
      },
      deadline);
}

// ---- server ----

int ServerList(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<OutputOptions> output = OutputOptionsOf(flags);
  if (!output.ok()) {
    return fail(output.status());
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<std::vector<Server>> servers = client->ListServers();
  if (!servers.ok()) {
    return fail(servers.status());
  }
  std::sort(servers->begin(), servers->end(),
            [](const Server& a, const Server& b) { return a.name < b.name; });
  out << client_format::FormatServers(*servers, *output);
  return 0;
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

// ---- namespace ----

int NamespaceList(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<OutputOptions> output = OutputOptionsOf(flags);
  if (!output.ok()) {
    return fail(output.status());
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<std::vector<Namespace>> namespaces = client->ListNamespaces();
  if (!namespaces.ok()) {
    return fail(namespaces.status());
  }
  std::sort(namespaces->begin(), namespaces->end(),
            [](const Namespace& a, const Namespace& b) { return a.name < b.name; });
  out << client_format::FormatNamespaces(*namespaces, *output);
  return 0;
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

// ---- service ----

// The services whose endpoint host does not resolve.
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
  absl::StatusOr<std::set<std::string>> unresolved = UnresolvedHosts(hosts, kResolveTimeout);
  if (!unresolved.ok()) {
    return unresolved.status();
  }
  std::erase_if(services, [&](const Service& service) {
    const auto host = host_of.find(service.endpoint);
    return host == host_of.end() || !unresolved->contains(host->second);
  });
  return services;
}

// A compiled --filter-* regular expression (RE2, the syntax of the original's Go regexp);
// nullptr when the flag is empty.
absl::StatusOr<std::unique_ptr<RE2>> CompileFilter(const std::string& flag,
                                                   const std::string& pattern) {
  if (pattern.empty()) {
    return nullptr;
  }
  auto regex = std::make_unique<RE2>(pattern, RE2::Quiet);
  if (!regex->ok()) {
    return absl::InvalidArgumentError(
        fmt::format("invalid {} \"{}\": {}", flag, pattern, regex->error()));
  }
  return regex;
}

// True when `regex` is absent or finds a match in `text` (unanchored, as Go's MatchString).
bool Matches(const std::unique_ptr<RE2>& regex, const std::string& text) {
  return regex == nullptr || RE2::PartialMatch(text, *regex);
}

absl::StatusOr<std::vector<ListedService>> FilterServices(const Flags& flags,
                                                          std::vector<ListedService> services) {
  absl::StatusOr<std::unique_ptr<RE2>> name = CompileFilter("--filter-name", flags.filter_name);
  absl::StatusOr<std::unique_ptr<RE2>> server =
      CompileFilter("--filter-server", flags.filter_server);
  absl::StatusOr<std::unique_ptr<RE2>> endpoint =
      CompileFilter("--filter-endpoint", flags.filter_endpoint);
  for (const auto* compiled : {&name, &server, &endpoint}) {
    if (!compiled->ok()) {
      return compiled->status();
    }
  }
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
    const bool keep =
        Matches(*name, service.name) && Matches(*endpoint, service.endpoint) &&
        (*server == nullptr ||
         std::any_of(service.servers.begin(), service.servers.end(),
                     [&](const std::string& placed) { return Matches(*server, placed); })) &&
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

// The rows of `service list` (without -u's DNS lookups), filtered and sorted as the flags say, to
// `row` in order: as the server streams them, or, from a server without ListServiceStream, from
// its one-message list filtered and sorted here. `served_only` leaves out invalid records.
absl::Status ListServiceRows(const Flags& flags, const ApiClient& client, bool served_only,
                             const std::function<void(ListedService)>& row) {
  // Checked here too, so that an error names the flag rather than the request's field.
  if (absl::StatusOr<std::vector<ListedService>> checked = FilterServices(flags, {});
      !checked.ok()) {
    return checked.status();
  }
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
  absl::StatusOr<std::vector<Service>> services =
      client.ListServices(flags.namespace_name, served_only ? nullptr : &invalid);
  if (!services.ok()) {
    return services.status();
  }
  std::vector<ListedService> listed;
  listed.reserve(services->size() + invalid.size());
  for (Service& service : *services) {
    listed.push_back({.service = std::move(service)});
  }
  for (InvalidService& record : invalid) {
    listed.push_back({.service = std::move(record.service), .invalid = std::move(record.reason)});
  }
  absl::StatusOr<std::vector<ListedService>> filtered = FilterServices(flags, std::move(listed));
  if (!filtered.ok()) {
    return filtered.status();
  }
  SortListed(flags.sort_by, *filtered);
  for (ListedService& item : *filtered) {
    row(std::move(item));
  }
  return absl::OkStatus();
}

int ServiceList(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<OutputOptions> output = OutputOptionsOf(flags);
  if (!output.ok()) {
    return fail(output.status());
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
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

ServiceRegistration RegistrationOf(const Flags& flags, const std::string& endpoint) {
  return {.name = flags.name,
          .namespace_name = flags.namespace_name,
          .endpoint = endpoint,
          .labels = flags.labels,
          .selector = flags.selector,
          .description = flags.description,
          .ttl = flags.ttl};
}

// Registers `endpoint` (retrying transient failures until `deadline`); the service or the
// failure, which is logged.
absl::StatusOr<Service> RegisterOne(const Flags& flags, const ApiClient& client,
                                    const std::string& endpoint, absl::Time deadline) {
  const ServiceRegistration registration = RegistrationOf(flags, endpoint);
  absl::StatusOr<Service> service;
  const absl::Status status = WithRetries(
      [&] {
        service = client.RegisterService(registration);
        return service.status();
      },
      {{"service", flags.name}, {"endpoint", endpoint}}, deadline);
  if (!status.ok()) {
    return status;
  }
  LogInfo("service registered", {{"id", service->id}, {"endpoint", service->endpoint}});
  return service;
}

// The signals that end `service register --keepalive`: blocked in every thread (set before any
// thread is started) and taken with sigtimedwait, so the loop unregisters before it exits.
sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  return signals;
}

// Waits until `until` or a stop signal; the signal, or 0 at `until`.
int WaitForStopSignal(const sigset_t& signals, absl::Time until) {
  while (true) {
    const absl::Duration left = until - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return 0;
    }
    const timespec timeout = absl::ToTimespec(left);
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal > 0) {
      return signal;
    }
    if (errno != EAGAIN && errno != EINTR) {
      return 0;
    }
  }
}

// `service register --keepalive`: renews the registered services at a third of their TTL
// (KeepAlive, all at once), registers again those the server no longer has (they expired while
// it was unreachable, or its store was replaced), and unregisters them on SIGTERM, SIGINT or
// SIGHUP. A renewal that fails is retried every second: a server restart or a lost replica
// costs at most the time it is away, and the TTL leaves two thirds of it to come back.
int KeepAlive(const Flags& flags, const ApiClient& client, const sigset_t& signals,
              std::vector<Service> services, const Failure& fail) {
  absl::Duration ttl = absl::InfiniteDuration();
  for (const Service& service : services) {
    if (!service.HasTtl()) {
      return fail(fmt::format(
          "the server registered {} without a TTL: it does not support TTLs (an older discoveryd "
          "or the Go original); nothing to keep alive",
          service.endpoint));
    }
    ttl = std::min(ttl, service.ttl);
  }
  const absl::Duration interval = ttl / 3;
  LogInfo("keeping services alive", {{"services", std::to_string(services.size())},
                                     {"ttl", FormatGoDuration(ttl)},
                                     {"interval", FormatGoDuration(interval)}});
  absl::Time next = absl::Now() + interval;
  bool failing = false;
  while (true) {
    if (const int signal = WaitForStopSignal(signals, next); signal != 0) {
      LogInfo("stopping: unregistering the services", {{"signal", sigdescr_np(signal)}});
      int failed = 0;
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      for (const Service& service : services) {
        absl::Status status =
            WithRetries([&] { return client.UnregisterService(flags.namespace_name, service.id); },
                        {{"endpoint", service.endpoint}}, deadline);
        if (status.ok() || absl::IsNotFound(status)) {
          LogInfo("service unregistered", {{"endpoint", service.endpoint}});
        } else {
          ++failed;
          fail(fmt::format("cannot unregister {}: {}", service.endpoint, status.message()));
        }
      }
      return failed == 0 ? 0 : 1;
    }
    std::vector<std::string> ids;
    ids.reserve(services.size());
    for (const Service& service : services) {
      ids.push_back(service.id);
    }
    absl::StatusOr<KeepAliveAnswer> answer = client.KeepAlive(flags.namespace_name, ids);
    if (!answer.ok()) {
      if (!failing) {
        LogWarn("keepalive failed, retrying every second",
                {{"error", std::string{answer.status().message()}}});
      }
      failing = true;
      next = absl::Now() + std::min(absl::Seconds(1), interval);
      continue;
    }
    if (failing) {
      LogInfo("keepalive succeeded again");
      failing = false;
    }
    for (const std::string& gone : answer->not_found) {
      auto it = std::find_if(services.begin(), services.end(),
                             [&gone](const Service& service) { return service.id == gone; });
      if (it == services.end()) {
        continue;
      }
      LogWarn("service is gone from the server, registering it again",
              {{"endpoint", it->endpoint}});
      absl::StatusOr<Service> again =
          RegisterOne(flags, client, it->endpoint, absl::Now() + interval);
      if (again.ok()) {
        *it = *std::move(again);
      } else {
        // Tried again with the next renewal.
        LogWarn("cannot register the service again",
                {{"endpoint", it->endpoint}, {"error", std::string{again.status().message()}}});
      }
    }
    next = absl::Now() + interval;
  }
}

int ServiceRegister(const Flags& flags, const Failure& fail) {
  if (flags.name.empty()) {
    return fail("name cannot be empty");
  }
  if (flags.ttl < absl::ZeroDuration()) {
    return fail.Usage("--ttl must not be negative");
  }
  if (flags.keepalive && flags.ttl == absl::ZeroDuration()) {
    return fail.Usage("--keepalive needs --ttl (e.g. --ttl 1m)");
  }
  const sigset_t signals = StopSignals();
  if (flags.keepalive) {
    // Before Connect starts gRPC's threads, so that they inherit the mask.
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  int failed = 0;
  std::vector<Service> registered;
  for (const std::string& endpoint : flags.endpoints) {
    absl::StatusOr<Service> service =
        RegisterOne(flags, *client, endpoint, flags.connection.deadline);
    if (!service.ok()) {
      ++failed;
      fail(fmt::format("cannot register {} in namespace {}: {}", endpoint, flags.namespace_name,
                       service.status().message()));
      continue;
    }
    registered.push_back(*std::move(service));
  }
  if (failed != 0 || !flags.keepalive) {
    return failed == 0 ? 0 : 1;
  }
  return KeepAlive(flags, *client, signals, std::move(registered), fail);
}

// A progress bar on stderr when it is a terminal and --quiet is not given; nullopt otherwise.
std::optional<ProgressBar> ProgressOf(const Flags& flags, std::ostream& err, size_t total) {
  if (flags.quiet || isatty(STDERR_FILENO) == 0) {
    return std::nullopt;
  }
  return std::make_optional<ProgressBar>(err, total, absl::Now());
}

// "12.3s, 8130/s": how long `count` calls took since `start`, and their rate.
std::string Pace(size_t count, absl::Time start) {
  const absl::Duration elapsed = absl::Now() - start;
  const double seconds = std::max(absl::ToDoubleSeconds(elapsed), 1e-6);
  return fmt::format("{:.1f}s, {:.0f}/s", seconds, static_cast<double>(count) / seconds);
}

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

// Writes the entries that could not be imported next to nothing else, so they can be fixed and
// imported again; returns the file's path.
absl::StatusOr<std::string> SaveFailedImports(const std::vector<Service>& failed) {
  std::string path =
      (std::filesystem::temp_directory_path() / "discovery-import-failed-XXXXXX.yaml").string();
  const int fd = mkstemps(path.data(), 5);  // mode 0600
  if (fd < 0) {
    return absl::InternalError(fmt::format("cannot create {}", path));
  }
  const std::string content =
      client_format::FormatServices(failed, {.format = OutputFormat::kYaml});
  const bool written =
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ::close(fd);
  if (!written) {
    return absl::InternalError(fmt::format("cannot write {}", path));
  }
  return path;
}

int ServiceImport(const Flags& flags, std::ostream& err, const Failure& fail) {
  std::ifstream in(flags.import_path);
  if (!in) {
    return fail(fmt::format("cannot read {}", flags.import_path));
  }
  std::ostringstream content;
  content << in.rdbuf();
  absl::StatusOr<std::vector<Service>> entries = client_format::ParseServiceImport(content.str());
  content = {};
  if (!entries.ok()) {
    return fail(fmt::format("cannot import {}: {}", flags.import_path, entries.status().message()));
  }
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  const absl::Time start = absl::Now();
  std::optional<ProgressBar> progress = ProgressOf(flags, err, entries->size());
  const auto clear_progress = [&] {
    if (progress) {
      progress->Clear();
    }
  };
  std::vector<size_t> failed;
  RunBulk(
      entries->size(),
      {.max_in_flight = flags.max_in_flight,
       .retry_delays = kRetryDelays,
       .progress = progress ? &*progress : nullptr},
      [&](size_t i, std::function<void(absl::Status)> done) {
        const Service& entry = (*entries)[i];
        client->RegisterServiceAsync({.name = entry.name,
                                      .namespace_name = entry.namespace_name,
                                      .endpoint = entry.endpoint,
                                      .labels = entry.labels,
                                      .selector = entry.selector,
                                      .description = entry.description},
                                     std::move(done));
      },
      [&](size_t i, const absl::Status& status) {
        if (status.ok()) {
          return;
        }
        failed.push_back(i);
        if (!flags.quiet) {  // --quiet: the file of failed entries says which
          const Service& entry = (*entries)[i];
          clear_progress();
          fail(fmt::format("cannot import entry {} ({} in namespace {}): {}", i + 1, entry.endpoint,
                           entry.namespace_name, status.message()));
        }
      },
      [&](size_t i, const absl::Status& failure, absl::Duration delay) {
        clear_progress();
        LogWarn("request failed, retrying", {{"service", (*entries)[i].name},
                                             {"endpoint", (*entries)[i].endpoint},
                                             {"error", std::string{failure.message()}},
                                             {"retry-in", FormatGoDuration(delay)}});
      });
  clear_progress();
  const size_t imported = entries->size() - failed.size();
  if (failed.empty()) {
    LogInfo("services imported", {{"imported", std::to_string(imported)},
                                  {"failed", "0"},
                                  {"took", Pace(entries->size(), start)}});
    return 0;
  }
  // In the order of the file, whatever order the answers came in.
  std::sort(failed.begin(), failed.end());
  std::vector<Service> failed_entries;
  failed_entries.reserve(failed.size());
  for (const size_t i : failed) {
    failed_entries.push_back(std::move((*entries)[i]));
  }
  absl::StatusOr<std::string> saved = SaveFailedImports(failed_entries);
  if (!saved.ok()) {
    return fail(saved.status());
  }
  return fail(fmt::format("{} of {} entries failed; they are saved in {} ({} imported, {})",
                          failed.size(), entries->size(), *saved, imported,
                          Pace(entries->size(), start)));
}

// ---- token ----

// A token for a namespace that does not exist is made anyway (it may be registered later), but a
// typo would otherwise only show when the token is refused.
void WarnAboutUnknownNamespaces(const ApiClient& client, const std::vector<std::string>& wanted) {
  absl::StatusOr<std::vector<Namespace>> namespaces = client.ListNamespaces();
  if (!namespaces.ok()) {
    return;  // the token is made; this check is a courtesy
  }
  for (const std::string& name : wanted) {
    if (std::none_of(namespaces->begin(), namespaces->end(),
                     [&](const Namespace& ns) { return ns.name == name; })) {
      LogWarn(
          fmt::format("namespace {} does not exist; the token is valid for it once it is "
                      "registered",
                      name));
    }
  }
}

int TokenCreate(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<std::string> token =
      client->CreateToken(flags.token_id, flags.token_namespaces, FormatGoDuration(flags.expiry));
  if (!token.ok()) {
    return fail(
        fmt::format("cannot create token {}: {}", flags.token_id, token.status().message()));
  }
  out << *token << "\n";
  WarnAboutUnknownNamespaces(*client, flags.token_namespaces);
  return 0;
}

int TokenInfo(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<TokenDetails> info = client->TokenInfo(flags.token);
  if (!info.ok()) {
    return fail(info.status());
  }
  // The server vouched for the token; its admin claim is read from the token itself, which the
  // Info answer of the original's API does not carry.
  bool admin = false;
  if (absl::StatusOr<auth::DecodedJwt> decoded = auth::DecodeJwt(flags.token); decoded.ok()) {
    const auto claim = decoded->payload.find("admin");
    admin = claim != decoded->payload.end() && claim->is_boolean() && claim->get<bool>();
  }
  std::string namespaces;
  for (const std::string& ns : info->namespaces) {
    namespaces += namespaces.empty() ? ns : ", " + ns;
  }
  out << "id: " << info->id << "\n"
      << "admin: " << (admin ? "true" : "false") << "\n"
      << "namespaces: [" << namespaces << "]\n"
      << "expiry: "
      << (info->expires ? absl::FormatTime(absl::RFC3339_sec, *info->expires, absl::UTCTimeZone())
                        : "never")
      << "\n";
  return 0;
}

int TokenRevoke(const Flags& flags, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  if (absl::StatusOr<RevokedTokenDetails> revoked = client->RevokeToken(flags.token_id);
      !revoked.ok()) {
    return fail(
        fmt::format("cannot revoke token {}: {}", flags.token_id, revoked.status().message()));
  }
  return 0;
}

// The revoked token ids the server knows of (issued tokens are not recorded anywhere).
int TokenList(const Flags& flags, std::ostream& out, const Failure& fail) {
  absl::StatusOr<ApiClient> client = Connect(flags);
  if (!client.ok()) {
    return fail(client.status());
  }
  absl::StatusOr<std::vector<RevokedTokenDetails>> revoked = client->ListRevokedTokens();
  if (!revoked.ok()) {
    return fail(revoked.status());
  }
  out << "ID\tSTATE\tREVOKED AT\tREVOKED BY\n";
  for (const RevokedTokenDetails& token : *revoked) {
    out << token.id << "\trevoked\t"
        << absl::FormatTime(absl::RFC3339_sec, token.revoked_at, absl::UTCTimeZone()) << "\t"
        << token.revoked_by << "\n";
  }
  return 0;
}

// ---- login ----

// Reads one line from the terminal without echoing it.
absl::StatusOr<std::string> ReadSecretLine(std::istream& in) {
  if (isatty(STDIN_FILENO) == 0) {
    return absl::FailedPreconditionError(
        "reading password: stdin is not a terminal; pipe the password with --password-stdin");
  }
  termios saved{};
  tcgetattr(STDIN_FILENO, &saved);
  termios silent = saved;
  silent.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  tcsetattr(STDIN_FILENO, TCSANOW, &silent);
  std::string line;
  std::getline(in, line);
  tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  return line;
}

int Login(const Flags& flags, std::istream& in, std::ostream& out, std::ostream& err,
          const Failure& fail) {
  if (!flags.oidc_external_login_cmd.empty()) {
    err << "login with the following command:\n\n" << flags.oidc_external_login_cmd << "\n";
    return 0;
  }
  const char* user_env = std::getenv("USER");  // NOLINT(concurrency-mt-unsafe): single-threaded
  const std::string default_user = user_env == nullptr ? "" : user_env;
  std::string username = flags.username;
  if (username.empty() && !flags.password_stdin) {
    out << (default_user.empty() ? std::string("Enter username: ")
                                 : fmt::format("Enter username ({}): ", default_user))
        << std::flush;
    std::getline(in, username);
  }
  if (username.empty()) {
    username = default_user;
  }
  if (username.empty()) {
    return fail("no username given (--username)");
  }
  std::string password;
  if (flags.password_stdin) {
    std::getline(in, password);
  } else {
    out << "Enter password: " << std::flush;
    absl::StatusOr<std::string> read = ReadSecretLine(in);
    out << "\n";
    if (!read.ok()) {
      return fail(read.status());
    }
    password = *std::move(read);
  }
  absl::StatusOr<TokenFile> token = PasswordLogin(OidcOptionsOf(flags), username, password);
  if (!token.ok()) {
    return fail(token.status());
  }
  if (absl::Status saved = WriteTokenFile(flags.token_path, *token); !saved.ok()) {
    return fail(saved);
  }
  LogInfo("logged in", {{"username", username}, {"token-path", flags.token_path}});
  return 0;
}

// Values the completion cannot read from the flags' checks.
std::map<std::string, ValueHint> DiscoveryValueHints() {
  return {
      {"--output", {.words = {"table", "wide", "json", "yaml", "csv"}}},
      {"--token-path", {.kind = ValueHint::Kind::kFiles}},
      {"path", {.kind = ValueHint::Kind::kFiles}},
  };
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

  // server
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

  // service
  CLI::App* service =
      app.add_subcommand("service", "Manage services (scrape targets).")->alias("svc");
  service->require_subcommand(1);
  service->footer(ExamplesFooter({
      "discovery service register -e http://example.com/metrics example -s environment=test",
      "discovery service list -n default",
      "discovery service unregister -n default http://example.com/metrics",
  }));
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

  CLI::App* service_register = service->add_subcommand("register", "Register a service.");
  service_register->footer(ExamplesFooter({
      "discovery service register -e http://example.com/metrics example "
      "--labels=label1=value1,label2=value2 --selector=environment=test",
      "discovery service register -e http://blackbox.example.com -n default-blackbox blackbox "
      "-s environment=test",
      "DISCOVERY_NAME=node discovery service register -e http://$(hostname -f):9100/metrics",
  }));
  service_register->add_option("name", flags.name, "Service name (the Prometheus job)")
      ->envname("DISCOVERY_NAME")
      ->required();
  config::AddListOption(*service_register, "-e,--endpoints", &flags.endpoints,
                        "Endpoint URLs, one service each")
      ->required();
  config::AddMapOption(*service_register, "-l,--labels", &flags.labels, "Target labels (k=v,...)");
  service_register->add_option("-n,--namespace", flags.namespace_name, "Namespace")
      ->default_str("default");
  service_register->add_option("-s,--selector", flags.selector,
                               "Label selector choosing the servers that scrape it");
  service_register->add_option("--description", flags.description, "Free text");
  config::AddDurationOption(*service_register, "--ttl", &flags.ttl,
                            "Expire the services unless renewed within this time (e.g. 1m; the "
                            "server bounds it); without it they stay until unregistered");
  service_register->add_flag(
      "--keepalive", flags.keepalive,
      "Stay in the foreground renewing the services at a third of --ttl, registering them again "
      "when the server lost them, and unregister them on SIGTERM/SIGINT");

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

  CLI::App* service_import =
      service->add_subcommand("import", "Register the services of a YAML or JSON file.");
  service_import->footer(ExamplesFooter({
      "discovery service list -o yaml > services.yaml",
      "discovery service import services.yaml",
      "discovery service import --max-in-flight 256 --quiet services.json",
  }));
  service_import
      ->add_option("path", flags.import_path,
                   "File as printed by `service list -o yaml` or `-o json`")
      ->required();
  AddBulkFlags(*service_import, flags);

  // namespace
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

  // token
  CLI::App* token = app.add_subcommand("token", "Machine tokens.");
  token->require_subcommand(1);
  token->footer(ExamplesFooter({
      "discovery token create -n default,default-blackbox ansible-user",
      "discovery token info \"$(cat ansible-user.token)\"",
  }));
  CLI::App* token_create = token->add_subcommand("create", "Create a machine token.");
  token_create->footer(ExamplesFooter({
      "discovery token create -n default,default-blackbox ansible-user",
      "discovery token create -n web -e 720h ci-pipeline   # valid for 30 days",
  }));
  token_create->add_option("id", flags.token_id, "Token id (who or what uses it)")->required();
  config::AddDurationOption(*token_create, "-e,--expires,--expiry", &flags.expiry,
                            "Validity; 0 never expires (--expiry: the earlier name)");
  config::AddListOption(*token_create, "-n,--namespaces", &flags.token_namespaces,
                        "Namespaces the token may change services in")
      ->required();
  CLI::App* token_info = token->add_subcommand("info", "Show what a token grants.");
  token_info->footer(ExamplesFooter({"discovery token info \"$(cat ansible-user.token)\""}));
  token_info->add_option("token", flags.token, "The token")->required();
  CLI::App* token_revoke =
      token->add_subcommand("revoke", "Revoke a machine token by id before it expires (admin).");
  token_revoke->add_option("id", flags.token_id, "Token id")->required();
  token->add_subcommand("list", "List the revoked machine token ids.");

  CLI::App* login = app.add_subcommand("login", "Log in with the OIDC provider (password grant).");
  login->footer(ExamplesFooter({
      "discovery login",
      R"(printf '%s\n' "$PW" | discovery login --username alice --password-stdin)",
  }));
  login->add_option("-u,--username", flags.username, "User name (default: prompt, then $USER)");
  login->add_flag("--password-stdin", flags.password_stdin,
                  "Read the password from the first line of stdin instead of the terminal");

  // Hidden: prints the bash completion script generated from this command tree.
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
  InitLogging({.debug = flags.debug});
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
