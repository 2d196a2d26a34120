// What a user reads from the command line besides results: option help that names each
// option's environment variable, and one-line usage errors that suggest the closest known
// command or flag.
#pragma once

#include <string>

#include "CLI/CLI.hpp"

namespace discovery::config {

// Formats the help of `app` and its subcommands with each option's environment variable at the
// end of its description, and a fallthrough subcommand's inherited flags under GLOBAL OPTIONS.
void UseEnvHelpFormatter(CLI::App& app);

// What the user typed that CLI11 could not place in `root`, as one line: the unknown flag or
// command with the closest known one, or CLI11's own message.
std::string UsageMessage(const CLI::App& root, const CLI::ParseError& error);

}  // namespace discovery::config
