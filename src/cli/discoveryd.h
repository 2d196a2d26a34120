// The command tree of `discoveryd`: `server` (the default) and `token create`; flags, their
// DISCOVERY_* variables and config-file keys of the Go original (docs/decisions.md D43) plus our
// own (store, TLS, placement).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace discovery::cli {

// Runs discoveryd with `args` (without the program name) and returns the exit status. `server`
// runs until SIGINT or SIGTERM.
int RunDiscoveryd(std::vector<std::string> args, std::ostream& out, std::ostream& err);

}  // namespace discovery::cli
