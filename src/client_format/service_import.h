// Reads the file `discovery service import` registers: what `service list -o yaml` or `-o json`
// prints, and the YAML the Go original's `service list -o yaml` wrote.
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "model/model.h"

namespace discovery::client_format {

// Parses a YAML sequence or a JSON array of service mappings with the keys id, name, namespace,
// endpoint, selector, servers, labels, description and modified. `endpoint` is a URL string or
// a mapping of Go url.URL fields (scheme, host, path, rawquery, ...), which is reassembled into
// a URL. A missing or empty namespace becomes "default". id and servers are kept as read;
// modified and invalid (the reason `service list` gives for a stored record that cannot be
// served) are accepted and dropped. The endpoint is only checked for being
// present: the server validates it when the entry is registered.
// An empty document yields no services. InvalidArgument for unparsable input, a document that is
// not a sequence, or the first malformed entry ("entry 3: endpoint is missing",
// "entry 1: unknown key \"port\"", "entry 2: labels: expected a mapping, got a list").
absl::StatusOr<std::vector<Service>> ParseServiceImport(std::string_view content);

}  // namespace discovery::client_format
