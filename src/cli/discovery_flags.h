// The plumbing every command of the `discovery` client shares: the flags the command tree binds,
// how a command reports a failure, the global, output and bulk flags, and the connection to
// discoveryd with its retries. Internal to src/cli: discovery.cc and the discovery_<group>.cc
// files of the command groups.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/api_client.h"
#include "cli/oidc_login.h"
#include "cli/progress.h"
#include "cli/token_file.h"

#include "client_format/output.h"
#include "common/format.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace discovery::cli::discovery_internal {

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
  // The exit status of a command that ended with `status`: 0, or 1 with the failure reported.
  int Unless(const absl::Status& status) const { return status.ok() ? 0 : (*this)(status); }
  // A command line that cannot work, found after parsing: exit status 2 as CLI11's usage errors.
  int Usage(std::string_view message) const {
    (*this)(message);
    return 2;
  }

 private:
  std::ostream& err_;
};

void AddGlobalFlags(CLI::App& app, Flags& flags);
// -o and the header flags of the list commands.
void AddOutputFlags(CLI::App& command, Flags& flags);
// The flags of the commands that send many calls at once.
void AddBulkFlags(CLI::App& command, Flags& flags);

absl::StatusOr<client_format::OutputOptions> OutputOptionsOf(const Flags& flags);
OidcClientOptions OidcOptionsOf(const Flags& flags);
// A client of the server --address names, with the token of --token-path (refreshed first when
// it has expired and an OIDC provider is configured).
absl::StatusOr<ApiClient> Connect(const Flags& flags);

// What a list command needs before it calls: its output options (checked first, so a bad -o
// fails without a connection) and a client.
struct Listing {
  client_format::OutputOptions output;
  ApiClient client;
};
absl::StatusOr<Listing> StartListing(const Flags& flags);

// `server list` and `namespace list`: the `T`s `list` returns, sorted by name, as `format`
// prints them.
template <typename T>
absl::Status PrintSortedByName(const Flags& flags, std::ostream& out,
                               absl::StatusOr<std::vector<T>> (ApiClient::*list)() const,
                               std::string (*format)(const std::vector<T>&,
                                                     const client_format::OutputOptions&)) {
  DISCOVERY_ASSIGN_OR_RETURN(const Listing listing, StartListing(flags));
  DISCOVERY_ASSIGN_OR_RETURN(std::vector<T> items, (listing.client.*list)());
  std::sort(items.begin(), items.end(), [](const T& a, const T& b) { return a.name < b.name; });
  out << format(items, listing.output);
  return absl::OkStatus();
}

// Retries `call` on transient failures, logging every retry with `what` the call is about; no
// retry waits past `deadline`, the command's --deadline.
absl::Status WithRetries(const std::function<absl::Status()>& call, const LogFields& what,
                         absl::Time deadline = absl::InfiniteFuture());

// A progress bar on stderr when it is a terminal and --quiet is not given; nullopt otherwise.
std::optional<ProgressBar> ProgressOf(const Flags& flags, std::ostream& err, size_t total);

// "12.3s, 8130/s": how long `count` calls took since `start`, and their rate.
std::string Pace(size_t count, absl::Time start);

}  // namespace discovery::cli::discovery_internal
