// Command-line mechanics shared by both binaries: every flag can also be set through a
// DISCOVERY_* environment variable or a key of the YAML config files, with the precedence
// flag > environment > ./discovery.yaml > ~/.config/discovery/config.yaml >
// /etc/discovery/config.yaml > default. Also provides --version, --show-config and helpers for
// list, map and Go-duration flags.
#pragma once

#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"

#include "config/config_files.h"

namespace discovery::config {

// What --version prints; `compiler` is our analogue of the Go original's Go version.
struct BuildInfo {
  std::string program = "discovery";
  std::string version = "0.0.0";
  std::string revision = "unknown";  // commit id; printed as its first 8 characters
  std::string date = "unknown";
  std::string compiler = CompilerVersion();

  // `program` as built: the project's version, the git commit and the build date (UTC, or
  // SOURCE_DATE_EPOCH's), from cmake/DiscoveryBuildInfo.cmake.
  static BuildInfo OfThisBuild(std::string program);
  // The compiler this translation unit was built with, e.g. "g++ 12.2.0".
  static std::string CompilerVersion();
};

// The three --version lines (no trailing newline):
//   <program>, version <version> (revision: <revision[:8]>)
//     build date:       <date>
//     compiler:         <compiler>
std::string FormatVersion(const BuildInfo& build);

// What --show-config prints first: "Configuration files:" and one line per candidate, two
// spaces, the path padded to a common width plus one space, and the file's status. Ends with a
// newline.
std::string FormatShowConfig(const ConfigFiles& files);

// The config-file keys of `app`: the long names of the configurable options of the app and all
// its subcommands, sorted.
std::vector<std::string> ConfigKeys(CLI::App& app);

// The environment variable of a flag: "oidc-client-id" -> "DISCOVERY_OIDC_CLIENT_ID".
std::string EnvVarName(std::string_view flag);

// Binds a fully built CLI::App (options and subcommands already added) to the environment and
// the config files, and parses its command line.
//
// Every configurable option with a long name, in the app and in all its subcommands, gets
//   * the environment variable EnvVarName(<long name>), unless it already has an explicit one;
//   * the value of the config-file key <long name>, from the highest-precedence file;
//   * its environment variable appended to its help text: "... ($DISCOVERY_<NAME>)".
// Keys and variables are matched by flag name only, so one key feeds every subcommand that has a
// flag of that name. Values from the environment or a file satisfy required options. Positionals
// take environment values only when given an explicit envname. --help, --version and
// --show-config are actions and are not bound.
//
// Global flags are accepted before the first subcommand only, unless the caller enables CLI11's
// fallthrough on its subcommands. Not thread-safe; `app` must outlive this object and must not
// be bound twice.
class CommandLine {
 public:
  // The exit status of every usage error (a bad command line or config file); other failures of
  // the programs exit 1.
  static constexpr int kUsageExitCode = 2;

  // Adds --version, --show-config and a hidden --config-file (an extra YAML file, above all
  // candidates in precedence) to `app`, and binds it as described above. Replaces the app's
  // help formatter and config formatter. `other_keys` are the keys of the other program that
  // reads the same files: a file that is not exclusive to this one may hold them; any other key
  // that is none of `app`'s is a usage error.
  CommandLine(CLI::App& app, ConfigFiles files, BuildInfo build = {},
              std::vector<std::string> other_keys = {});

  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;
  CommandLine(CommandLine&&) = delete;
  CommandLine& operator=(CommandLine&&) = delete;
  ~CommandLine() = default;

  // Parses `args` (without the program name). Returns std::nullopt when the program should go on
  // to run the selected command. Otherwise it returns the exit status after printing to `out`
  // (help, version) or `err` (show-config, errors):
  //   * --help, --version and --show-config print and return 0, even when required flags are
  //     missing or a config file is invalid; --show-config prints the files and then every
  //     setting (by its config key) with its effective value, secrets redacted, and where the
  //     value came from: "flag", "environment DISCOVERY_...", "file <path>" or "default";
  //   * every other error is a usage error: one line "<app>: <message>" on `err` and
  //     kUsageExitCode. An invalid config file names the file and the parser's message; an
  //     unknown command or flag is named with the closest known one ("did you mean ...?").
  std::optional<int> Parse(std::vector<std::string> args, std::ostream& out, std::ostream& err);

  // As above, for main()'s arguments; argv[0] names the app when it has no name yet.
  std::optional<int> Parse(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

  const ConfigFiles& files() const { return files_; }

 private:
  int HandleParseError(const CLI::ParseError& error, std::ostream& out, std::ostream& err);
  // Prints "<app>: <message>" and returns kUsageExitCode.
  int UsageError(const std::string& message, std::ostream& err) const;
  // The first key of a parsed file that neither program knows, as a usage error.
  std::optional<int> CheckKeys(std::ostream& err) const;
  // The "Settings:" part of --show-config for `args`.
  std::string FormatSettings(const std::vector<std::string>& args);

  CLI::App& app_;
  ConfigFiles files_;
  BuildInfo build_;
  CLI::Option* version_ = nullptr;
  CLI::Option* show_config_ = nullptr;
  CLI::Option* config_files_ = nullptr;
  std::vector<std::string> known_keys_;  // the long names of every option: valid file keys
  std::vector<std::string> other_keys_;  // the other program's keys, valid in shared files
  std::string settings_;                 // what --show-config prints after the files
  // Off while Parse finds what the command line alone sets, for --show-config.
  std::shared_ptr<bool> read_files_ = std::make_shared<bool>(true);
};

// Adds a list flag to `app`: comma-separated ("-e a,b") and repeatable on the command line, one
// value per occurrence (so "-e a NAME" leaves NAME to a positional),
// comma-separated in the environment, a scalar or a YAML list in config files.
// `values` must outlive the parse.
CLI::Option* AddListOption(CLI::App& app, const std::string& name, std::vector<std::string>* values,
                           const std::string& description);

// Adds a map flag to `app`: "k=v" pairs separated by commas (--labels a=b,c=d), repeatable with
// one value per occurrence,
// a "k=v" list or a YAML mapping in config files. An item without "=" is a validation error.
// A later pair overrides an earlier one with the same key. `values` must outlive the parse.
CLI::Option* AddMapOption(CLI::App& app, const std::string& name,
                          std::map<std::string, std::string>* values,
                          const std::string& description);

// Adds a flag holding a Go duration ("300ms", "1h30m"); its help shows the current value of
// `value` as the default, in Go syntax. `value` must outlive the parse.
CLI::Option* AddDurationOption(CLI::App& app, const std::string& name, absl::Duration* value,
                               const std::string& description);

}  // namespace discovery::config
