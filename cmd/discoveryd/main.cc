// discoveryd: the discovery registry daemon.
#include <cstdio>

#include "CLI/CLI.hpp"

int main(int argc, char** argv) {
  CLI::App app{"discoveryd: service discovery registry for Prometheus", "discoveryd"};
  app.set_version_flag("--version", "discovery, version " DISCOVERY_VERSION);
  CLI11_PARSE(app, argc, argv);
  std::puts(app.help().c_str());
  return 0;
}
