// discoveryd: the discovery registry daemon.
#include <iostream>
#include <string>
#include <vector>

#include "cli/discoveryd.h"

int main(int argc, char** argv) {
  return discovery::cli::RunDiscoveryd(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                       std::cerr);
}
