#include "cli/discoveryd.h"

#include <sys/resource.h>

#include <csignal>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "cli/completion.h"
#include "cli/discovery.h"
#include "cli/discoveryd_flags.h"
#include "cli/grpc_log.h"
#include "fmt/format.h"

#include "auth/machine_token.h"
#include "common/format.h"
#include "common/go_duration.h"
#include "common/logging.h"
#include "config/command_line.h"
#include "metrics/metrics.h"
#include "server/daemon.h"
#include "server/exporter_daemon.h"
#include "server/server_config.h"

namespace discovery::cli {
namespace {

using discoveryd_internal::AddExporterFlags;
using discoveryd_internal::AddGlobalFlags;
using discoveryd_internal::AddServerFlags;
using discoveryd_internal::AddTokenFlags;
using discoveryd_internal::Flags;

// This build in kong_build_info. The program label stays the original's "discovery", which
// dashboards select by.
metrics::BuildInfo MetricsBuildInfo() {
  const config::BuildInfo build = config::BuildInfo::OfThisBuild("discovery");
  return {.program = build.program,
          .version = build.version,
          .revision = build.revision,
          .date = build.date,
          .compiler = build.compiler};
}

// Every option that has a value, for the start-up log and kong_flag.
std::map<std::string, std::string> FlagValues(const CLI::App& app) {
  std::map<std::string, std::string> values;
  for (const CLI::App* command : {&app}) {
    for (const CLI::Option* option : command->get_options()) {
      if (option->get_lnames().empty()) {
        continue;
      }
      std::string value;
      for (const std::string& result : option->results()) {
        value += value.empty() ? result : "," + result;
      }
      if (value.empty()) {
        value = option->get_default_str();
      }
      values[option->get_lnames().front()] = value;
    }
  }
  return values;
}

std::map<std::string, std::string> AllFlagValues(const CLI::App& root, const CLI::App& command) {
  std::map<std::string, std::string> values = FlagValues(root);
  values.merge(FlagValues(command));
  return values;
}

absl::Status Finish(Flags& flags, const CLI::App& root) {
  server::ServerConfig& config = flags.config;
  config.store.kind = flags.store_kind;
  config.store.data_dir = flags.data_dir;
  config.store.etcd.endpoints = flags.etcd_endpoints;
  config.store.etcd_endpoints_set = root.get_option("--etcd-endpoints")->count() > 0;
  return absl::OkStatus();
}

// Go raises the soft limit on open files to the hard one at start, so the original could hold
// as many connections as the host allows. The usual soft default of 1024 would run out long
// before --http-max-connections: accept() would then fail and leave newcomers waiting in the
// backlog instead of the limit closing the surplus at once.
void RaiseOpenFileLimit(size_t max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0 && getrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return;
    }
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < max_connections) {
    LogWarn(
        "the open-file limit is below --http-max-connections: connections beyond it wait "
        "in the backlog instead of being refused",
        {{"open_file_limit", std::to_string(limit.rlim_cur)},
         {"http_max_connections", std::to_string(max_connections)}});
  }
}

// Starts a daemon with `start` (which returns StatusOr<std::unique_ptr<D>>) and shuts it down at
// the first SIGINT or SIGTERM; 1 when it cannot start, logged as `cannot_start`. The signals are
// blocked before `start` runs any thread, so that only the sigwait() here receives them.
template <typename Start>
int RunUntilSignal(std::string_view cannot_start, Start start, std::ostream& err) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto daemon = start();
  if (!daemon.ok()) {
    LogError(cannot_start, {{"error", std::string{daemon.status().message()}}});
    err << "discoveryd: " << daemon.status().message() << "\n";
    return 1;
  }
  int signal = 0;
  sigwait(&signals, &signal);
  LogInfo("received signal", {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
  (*daemon)->Shutdown();
  return 0;
}

int RunServer(Flags& flags, const CLI::App& root, const CLI::App& command, std::ostream& err) {
  server::ServerConfig& config = flags.config;
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    err << "discoveryd: --tls-cert and --tls-key must be given together\n";
    return 1;
  }
  for (const auto& [flag, timeout] :
       {std::pair{"--http-read-timeout", config.http_limits.read_timeout},
        std::pair{"--http-idle-timeout", config.http_limits.idle_timeout},
        std::pair{"--http-write-timeout", config.http_limits.write_timeout}}) {
    if (timeout <= absl::ZeroDuration()) {
      err << "discoveryd: " << flag << " must be positive\n";
      return 1;
    }
  }
  if (config.min_ttl <= absl::ZeroDuration() || config.max_ttl < config.min_ttl) {
    err << "discoveryd: --min-ttl must be positive and at most --max-ttl\n";
    return 1;
  }
  if (!flags.tls_cert.empty()) {
    config.tls = server::TlsFiles{.cert_file = flags.tls_cert, .key_file = flags.tls_key};
  }
  if (command.get_option("--replicas")->count() > 0 ||
      command.get_option("--placement")->count() > 0) {
    absl::StatusOr<placement::Algorithm> algorithm = placement::ParseAlgorithm(flags.placement);
    placement::Settings settings{.algorithm = algorithm.value_or(placement::Algorithm::kRendezvous),
                                 .replicas = flags.replicas};
    if (absl::Status valid = placement::Validate(settings); !valid.ok()) {
      err << "discoveryd: " << valid.message() << "\n";
      return 1;
    }
    config.placement = settings;
  }
  if (!flags.oidc_endpoint.empty()) {
    if (flags.oidc_client_id.empty()) {
      err << "discoveryd: --oidc-endpoint needs --oidc-client-id\n";
      return 1;
    }
    config.oidc = server::OidcConfig{.endpoint = flags.oidc_endpoint,
                                     .client_id = flags.oidc_client_id,
                                     .ui_client_id = flags.oidc_ui_client_id,
                                     .username_claim = flags.oidc_username_claim,
                                     .roles_claim = flags.oidc_roles_claim,
                                     .ca_cert_file = flags.ca_cert};
  }
  config.build = MetricsBuildInfo();
  config.redacted_flags = RedactedFlags(AllFlagValues(root, command));
  LogInfo("starting grpc server", config.redacted_flags);
  RaiseOpenFileLimit(config.http_limits.max_connections);
  return RunUntilSignal(
      "discoveryd cannot start", [&] { return server::Daemon::Start(config); }, err);
}

int RunExporter(Flags& flags, const CLI::App& root, const CLI::App& command, std::ostream& err) {
  server::ExporterConfig& config = flags.exporter;
  config.store = flags.config.store;
  config.build = MetricsBuildInfo();
  config.redacted_flags = RedactedFlags(AllFlagValues(root, command));
  LogInfo("starting exporter", config.redacted_flags);
  return RunUntilSignal(
      "exporter cannot start", [&] { return server::ExporterDaemon::Start(config); }, err);
}

int RunTokenCreate(Flags& flags, std::ostream& out, std::ostream& err) {
  // Never creates a secret: a new one would sign tokens that the running server, which has its
  // own, rejects.
  absl::StatusOr<std::string> secret = server::ResolveTokenSecret(flags.config, /*create=*/false);
  if (!secret.ok()) {
    err << "discoveryd: " << secret.status().message() << "\n";
    return 1;
  }
  absl::Duration expires = absl::ZeroDuration();
  if (!flags.token_expires.empty()) {
    absl::StatusOr<absl::Duration> parsed = ParseGoDuration(flags.token_expires);
    if (!parsed.ok()) {
      err << "discoveryd: invalid expiry duration " << flags.token_expires << ": "
          << parsed.status().message() << "\n";
      return 1;
    }
    expires = *parsed;
  }
  for (const std::string& ns : flags.token_namespaces) {
    if (absl::Status valid = ValidateNamespaceName(ns); !valid.ok()) {
      err << "discoveryd: invalid namespace '" << ns << "': " << valid.message() << "\n";
      return 1;
    }
  }
  if (!flags.token_admin && flags.token_namespaces.empty()) {
    err << "discoveryd: a token needs --admin or at least one namespace (--namespaces)\n";
    return 1;
  }
  absl::StatusOr<std::string> token = auth::CreateMachineToken(
      {.issuer = flags.config.token_issuer, .secret = *secret, .admin = flags.token_admin},
      flags.token_id, flags.token_namespaces, expires, absl::Now());
  if (!token.ok()) {
    err << "discoveryd: " << token.status().message() << "\n";
    return 1;
  }
  out << *token << "\n";
  return 0;
}

// Checks a machine token offline against the secret `token create` signs with, so scripts can
// tell whether a saved token still belongs to this server (a new data directory means a new
// secret).
int RunTokenVerify(Flags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> secret = server::ResolveTokenSecret(flags.config, /*create=*/false);
  if (!secret.ok()) {
    err << "discoveryd: " << secret.status().message() << "\n";
    return 1;
  }
  std::string token = flags.token_to_verify;
  if (token == "-") {
    std::getline(std::cin, token);
  }
  absl::StatusOr<auth::MachineClaims> claims = auth::VerifyMachineToken(
      token, flags.config.token_issuer, *secret, flags.config.previous_token_secrets, absl::Now());
  if (!claims.ok()) {
    err << "discoveryd: " << claims.status().message() << "\n";
    return 1;
  }
  out << "id: " << claims->id << "\nadmin: " << (claims->admin ? "true" : "false")
      << "\nnamespaces: " << absl::StrJoin(claims->namespaces, ",") << "\nexpires: "
      << (claims->expires
              ? absl::FormatTime(absl::RFC3339_sec, *claims->expires, absl::UTCTimeZone())
              : std::string("never"))
      << "\n";
  return 0;
}

// Values the completion cannot read from the flags' checks.
std::map<std::string, ValueHint> DiscoverydValueHints() {
  const ValueHint files{.kind = ValueHint::Kind::kFiles};
  const ValueHint directories{.kind = ValueHint::Kind::kDirectories};
  return {
      {"--data-dir", directories}, {"--directory", directories}, {"--tls-cert", files},
      {"--tls-key", files},        {"--etcd-cert-file", files},  {"--etcd-key-file", files},
      {"--etcd-ca-file", files},
  };
}

// The command tree of discoveryd, its flags bound to `flags`.
void AddCommands(CLI::App& app, Flags& flags) {
  app.require_subcommand(0, 1);
  app.footer(ExamplesFooter({
      "discoveryd                                  # runs the server",
      "discoveryd server --replicas 2 --grpc-listen :3001 --http-listen :3002",
      "discoveryd exporter --server prometheus1.example.com --directory "
      "/var/lib/discovery-exporter",
      "discoveryd token create admin --admin",
  }));
  AddGlobalFlags(app, flags);

  CLI::App* server = app.add_subcommand("server", "Start the discovery server (default).");
  server->fallthrough();
  server->footer(ExamplesFooter({
      "discoveryd server --data-dir /var/lib/discovery",
      "discoveryd server --store etcd --etcd-endpoints https://etcd1:2379,https://etcd2:2379 "
      "--token-secret \"$SECRET\" --replicas 2",
      "discoveryd server --tls-cert /etc/discovery/tls.crt --tls-key /etc/discovery/tls.key "
      "--grpc-listen :3001 --http-listen :3002",
      "discoveryd server --oidc-endpoint https://auth.example.com/realms/discovery "
      "--oidc-client-id discovery --oidc-roles discovery-admin",
  }));
  AddServerFlags(*server, flags);

  CLI::App* exporter = app.add_subcommand(
      "exporter", "Write the file_sd files of one Prometheus server and keep them current.");
  exporter->fallthrough();
  exporter->footer(ExamplesFooter({
      "discoveryd exporter --server prometheus1.example.com --directory "
      "/var/lib/discovery-exporter --data-dir /var/lib/discovery",
      "discoveryd exporter --server prometheus1.example.com --store etcd --etcd-endpoints "
      "https://etcd1:2379",
  }));
  AddExporterFlags(*exporter, flags);

  CLI::App* token = app.add_subcommand("token", "Machine tokens.");
  token->require_subcommand(1);
  token->fallthrough();
  token->footer(ExamplesFooter({
      "discoveryd token create admin --admin",
      "discoveryd token create ansible --namespaces default,web",
  }));
  CLI::App* create = token->add_subcommand(
      "create", "Create a machine token offline, signed with the server's secret.");
  create->fallthrough();
  create->footer(ExamplesFooter({
      "discoveryd token create admin --admin",
      "discoveryd token create ansible --namespaces default,web --expires 720h",
      "discoveryd token create --data-dir /var/lib/discovery ci --namespaces default",
  }));
  create->add_option("id", flags.token_id, "Token id (who or what uses it)")->required();
  config::AddListOption(*create, "--namespaces", &flags.token_namespaces,
                        "Namespaces the token may change services in");
  create->add_option("--expires", flags.token_expires,
                     "Validity as a Go duration (e.g. 720h); empty: never expires");
  create->add_flag("--admin", flags.token_admin,
                   "The token may also administer namespaces, servers and tokens");
  AddTokenFlags(*create, flags);
  CLI::App* verify = token->add_subcommand(
      "verify", "Check a machine token offline against the server's secret; print its claims.");
  verify->fallthrough();
  verify->footer(ExamplesFooter({
      "discoveryd token verify \"$TOKEN\"",
      "sed -n 's/^machine_token: //p' ~/.config/discovery/.token | discoveryd token verify -",
  }));
  verify->add_option("token", flags.token_to_verify, "The token, or - to read it from stdin")
      ->required();
  AddTokenFlags(*verify, flags);
  config::AddListOption(*verify, "--previous-token-secrets", &flags.config.previous_token_secrets,
                        "Earlier token secrets whose tokens are still accepted");

  // Hidden: prints the bash completion script generated from this command tree.
  CLI::App* completion =
      app.add_subcommand("completion", "Print a shell completion script.")->group("");
  completion->require_subcommand(1);
  CLI::App* completion_bash =
      completion->add_subcommand("bash", "Print the bash completion script of discoveryd.");
  for (CLI::App* command : {completion, completion_bash}) {
    command->footer(ExamplesFooter({
        "discoveryd completion bash > ~/.local/share/bash-completion/completions/discoveryd",
        "source <(discoveryd completion bash)",
    }));
  }
}

}  // namespace

std::vector<std::string> DiscoverydConfigKeys() {
  CLI::App app;
  Flags flags;
  AddCommands(app, flags);
  return config::ConfigKeys(app);
}

int RunDiscoveryd(std::vector<std::string> args, std::ostream& out, std::ostream& err) {
  CLI::App app{"GRPC discovery service.", "discoveryd"};
  Flags flags;
  AddCommands(app, flags);

  // With no subcommand discoveryd runs the server, as the original does.
  bool has_command = false;
  for (const std::string& arg : args) {
    if (arg == "server" || arg == "exporter" || arg == "token" || arg == "completion") {
      has_command = true;
      break;
    }
  }
  const bool meta = std::any_of(args.begin(), args.end(), [](const std::string& arg) {
    return arg == "-h" || arg == "--help" || arg == "--version" || arg == "--show-config";
  });
  if (!has_command && !meta) {
    args.insert(args.begin(), "server");
  }

  // ~/.config/discovery/config.yaml configures the CLI of that user, not the server.
  config::ConfigLocations locations = config::ConfigLocations::FromEnvironment();
  locations.user_file = false;
  config::CommandLine command_line(app, config::ConfigFiles::Load(locations),
                                   config::BuildInfo::OfThisBuild("discoveryd"),
                                   DiscoveryConfigKeys());
  if (std::optional<int> exit = command_line.Parse(std::move(args), out, err)) {
    return *exit;
  }
  if (absl::Status finished = Finish(flags, app); !finished.ok()) {
    err << "discoveryd: " << finished.message() << "\n";
    return 1;
  }
  // With --debug every line is written at once: whoever debugs reads the log as things happen,
  // and pays for it in throughput.
  InitLogging({.debug = flags.debug,
               .format = flags.log_format == "json"   ? LogOptions::Format::kJson
                         : flags.log_format == "text" ? LogOptions::Format::kText
                                                      : LogOptions::Format::kAuto,
               .flush_interval = flags.debug ? absl::ZeroDuration() : LogOptions{}.flush_interval});
  RouteGrpcLogs(GrpcLogLevel::kWarn);
  const CLI::App* server = app.get_subcommand("server");
  const CLI::App* exporter = app.get_subcommand("exporter");
  const CLI::App* token = app.get_subcommand("token");
  if (app.get_subcommand("completion")->get_subcommand("bash")->parsed()) {
    out << BashCompletionScript(app, "discoveryd", DiscoverydValueHints());
    return 0;
  }
  if (token->get_subcommand("create")->parsed()) {
    return RunTokenCreate(flags, out, err);
  }
  if (token->get_subcommand("verify")->parsed()) {
    return RunTokenVerify(flags, out, err);
  }
  if (exporter->parsed()) {
    return RunExporter(flags, app, *exporter, err);
  }
  return RunServer(flags, app, *server, err);
}

}  // namespace discovery::cli
