// What one Prometheus server's file_sd directory should contain for one placement: a file
// "<namespace>/<job>.json" per job with services placed on that server, holding the same target
// groups as http_sd (in the Go exporter's JSON encoding).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "exporter/file_sd_directory.h"
#include "readmodel/placed.h"

namespace discovery::exporter {

// The files of `server` under `placed`. Namespaces with export `disabled` have none. What cannot
// be written is left out and described in `problems`, so that one bad record costs at most its
// own job's file and never the others: a service whose stored endpoint does not parse, and a
// job whose "<namespace>/<job>.json" is no valid file name (exporter::ValidateFileSdPath).
FileSet DesiredFiles(const readmodel::Placed& placed, std::string_view server,
                     std::vector<std::string>* problems);

}  // namespace discovery::exporter
