// discovery: the command-line client of the discovery registry.
#include <cstdio>

#include "CLI/CLI.hpp"

int main(int argc, char** argv) {
  CLI::App app{"discovery: client of the discovery service registry for Prometheus", "discovery"};
  app.set_version_flag("--version", "discovery, version " DISCOVERY_VERSION);
  CLI11_PARSE(app, argc, argv);
  std::puts(app.help().c_str());
  return 0;
}
