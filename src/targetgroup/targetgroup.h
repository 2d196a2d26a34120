// Prometheus target groups built from services, and their JSON renderings for http_sd and
// file_sd. Shared by the http_sd handler and the file_sd exporter so both hand Prometheus the
// same groups. Pure: no I/O, no logging; every function is thread-safe and returns values the
// caller owns.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "model/endpoint.h"
#include "model/model.h"

namespace discovery::targetgroup {

// One Prometheus target group: `{"targets": [...], "labels": {...}}`.
struct TargetGroup {
  std::vector<std::string> targets;
  Labels labels;

  friend bool operator==(const TargetGroup&, const TargetGroup&) = default;
};

// The target group of `service` under `config`:
// - kStandard (and, as in the Go original, any value that is neither kDisabled nor kBlackbox):
//   targets = [host[:port]] (IPv6 in brackets, no userinfo); labels job = service name,
//   instance = host[:port], __scheme__ = scheme, __metrics_path__ = decoded path with every
//   trailing '/' removed ("/" and no path give ""), __param_<key> = the first value of each
//   query parameter (decoded); then the service's own labels are copied over these, so a
//   service label such as `job` or `instance` wins.
// - kBlackbox: targets = [canonical endpoint URL]; labels = the service's own labels.
// - kDisabled: an empty group (no targets, no labels); the endpoint is not looked at.
// Returns InvalidArgument, naming the service and the endpoint, when `service.endpoint` does
// not parse (a corrupt stored record).
absl::StatusOr<TargetGroup> FromService(const Service& service, ExportConfig config);
// The same for a caller that has parsed `service.endpoint` already (into `endpoint`), so that
// rendering a million services parses each endpoint once.
TargetGroup FromService(const Service& service, const Endpoint& endpoint, ExportConfig config);

// The groups of `services` under `config`, one per service, ordered by canonical endpoint (ties,
// possible only across namespaces, by namespace, name and id) so that output is deterministic
// whatever order the services come in. kDisabled yields no groups. A service whose endpoint does
// not parse is left out, so that one corrupt record never breaks a whole answer, and its
// InvalidArgument (as FromService's) is appended to `skipped` when given. (Stored records are
// classified by repo::View before they get here; this is the last line of defence.)
std::vector<TargetGroup> FromServices(const std::vector<Service>& services, ExportConfig config,
                                      std::vector<absl::Status>* skipped = nullptr);
// The same for services held elsewhere (a view's shared records), without copying them.
std::vector<TargetGroup> FromServices(const std::vector<const Service*>& services,
                                      ExportConfig config,
                                      std::vector<absl::Status>* skipped = nullptr);

// The http_sd response body: a compact JSON array in the given order, each object with exactly
// the keys "targets" and "labels" (both always present: `[]`, `{}` when empty), label names
// sorted; "[]" for no groups. Strings are escaped minimally ('"', '\\', control characters);
// invalid UTF-8 bytes become \ufffd so the body is always valid UTF-8 JSON.
std::string ToHttpSdJson(const std::vector<TargetGroup>& groups);

// A file_sd file's content exactly as the Go exporter writes it (Go encoding/json of
// `targets,omitempty` / `labels,omitempty`): a compact JSON array in the given order, empty
// "targets" or "labels" omitted (a blackbox group without labels is
// `{"targets":["https://x"]}`), label names sorted, '<', '>', '&', U+2028 and U+2029 escaped as
// \u003c, \u003e, \u0026, \u2028, \u2029, invalid UTF-8 bytes as \ufffd; no trailing newline;
// "[]" for no groups.
std::string ToFileSdJson(const std::vector<TargetGroup>& groups);

}  // namespace discovery::targetgroup
