// discovery: the command-line client of the discovery registry.
#include <iostream>
#include <string>
#include <vector>

#include "cli/discovery.h"

int main(int argc, char** argv) {
  return discovery::cli::RunDiscovery(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                      std::cerr);
}
