// What one Prometheus server's file_sd directory should contain for one placement: a file
// "<namespace>/<job>.json" per job with services placed on that server, holding the same target
// groups as http_sd (in the Go exporter's JSON encoding).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "exporter/file_sd_directory.h"
#include "registry/placed.h"

namespace discovery::exporter {

// The files of `server` under `placed`. Namespaces with export `disabled` have none. A service
// whose stored endpoint does not parse (a corrupt record) is left out and described in
// `problems`, so one bad record cannot empty its whole job.
FileSet DesiredFiles(const registry::Placed& placed, std::string_view server,
                     std::vector<std::string>* problems);

}  // namespace discovery::exporter
