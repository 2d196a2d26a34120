// The command tree of the `discovery` client: server, service, namespace and token commands
// (aliases srv, svc, ns) with the flags, DISCOVERY_* variables and config-file keys of the Go
// original (docs/decisions.md D43), talking gRPC to discoveryd.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace discovery::cli {

// Runs discovery with `args` (without the program name): results go to `out`, errors as one line
// each to `err`, logs to stderr. Returns the exit status.
int RunDiscovery(std::vector<std::string> args, std::ostream& out, std::ostream& err);

// The keys discovery takes from config files: the shared files may hold them, and discoveryd
// accepts them there.
std::vector<std::string> DiscoveryConfigKeys();

// The keys discoveryd takes from config files: the shared files may hold them, and discovery
// accepts them there. Defined by discoveryd's command line (discoveryd.cc) from its command tree;
// the discovery executable, which does not link the server, gets the same list generated at
// build time (library cli_discoveryd_keys).
std::vector<std::string> DiscoverydConfigKeys();

}  // namespace discovery::cli
