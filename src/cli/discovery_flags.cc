#include "cli/discovery_flags.h"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/time/clock.h"
#include "cli/retry.h"
#include "fmt/format.h"

#include "common/go_duration.h"
#include "common/status_macros.h"
#include "config/command_line.h"

namespace discovery::cli::discovery_internal {

using client_format::OutputFormat;
using client_format::OutputOptions;

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
  DISCOVERY_ASSIGN_OR_RETURN(const OutputFormat format,
                             client_format::ParseOutputFormat(flags.output));
  return OutputOptions{.format = format, .headers = !flags.no_headers};
}

OidcClientOptions OidcOptionsOf(const Flags& flags) {
  return {.endpoint = flags.oidc_endpoint,
          .client_id = flags.oidc_client_id,
          .client_secret = flags.oidc_client_secret,
          .ca_cert_file = flags.connection.ca_cert_file};
}

absl::StatusOr<Listing> StartListing(const Flags& flags) {
  DISCOVERY_ASSIGN_OR_RETURN(client_format::OutputOptions output, OutputOptionsOf(flags));
  DISCOVERY_ASSIGN_OR_RETURN(ApiClient client, Connect(flags));
  return Listing{.output = output, .client = std::move(client)};
}

absl::StatusOr<ApiClient> Connect(const Flags& flags) {
  DISCOVERY_ASSIGN_OR_RETURN(TokenFile token, ReadTokenFile(flags.token_path));
  if (!flags.oidc_endpoint.empty()) {
    DISCOVERY_ASSIGN_OR_RETURN(std::optional<TokenFile> refreshed,
                               RefreshIfExpired(OidcOptionsOf(flags), token, absl::Now()));
    if (refreshed.has_value()) {
      DISCOVERY_RETURN_IF_ERROR(WriteTokenFile(flags.token_path, *refreshed));
      LogDebug("ID token refreshed", {{"token-path", flags.token_path}});
      token = *std::move(refreshed);
    }
  }
  ConnectionOptions options = flags.connection;
  options.token = token.BearerToken();
  return ApiClient::Connect(options);
}

absl::Status WithRetries(const std::function<absl::Status()>& call, const LogFields& what,
                         absl::Time deadline) {
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

std::optional<ProgressBar> ProgressOf(const Flags& flags, std::ostream& err, size_t total) {
  if (flags.quiet || isatty(STDERR_FILENO) == 0) {
    return std::nullopt;
  }
  return std::make_optional<ProgressBar>(err, total, absl::Now());
}

std::string Pace(size_t count, absl::Time start) {
  const absl::Duration elapsed = absl::Now() - start;
  const double seconds = std::max(absl::ToDoubleSeconds(elapsed), 1e-6);
  return fmt::format("{:.1f}s, {:.0f}/s", seconds, static_cast<double>(count) / seconds);
}

}  // namespace discovery::cli::discovery_internal
