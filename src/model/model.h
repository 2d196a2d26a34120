// Domain types of discovery: namespaces, Prometheus servers, services (scrape targets) and
// their labels. Plain value types without I/O, protobuf or logging; validation returns
// InvalidArgument with a message that names what is wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace discovery {

// How a namespace's services are handed to Prometheus. Numbers are wire and storage values.
enum class ExportConfig : int32_t { kDisabled = 0, kStandard = 1, kBlackbox = 2 };

// "disabled" | "standard" | "blackbox"; other numbers as "ExportConfig(<n>)".
std::string ExportConfigName(ExportConfig config);
// Parses "disabled" | "standard" | "blackbox" (case-sensitive); InvalidArgument otherwise.
absl::StatusOr<ExportConfig> ParseExportConfig(std::string_view name);

// Lifecycle of a Prometheus server. Numbers are wire and storage values.
enum class ServerState : int64_t { kLeaving = 0, kJoining = 1, kActive = 2 };

// "leaving" | "joining" | "active"; other numbers as "ServerState(<n>)".
std::string ServerStateName(ServerState state);

// Label names map to values; ordered so that every rendering is deterministic.
using Labels = std::map<std::string, std::string>;

// Size limits of the records, in bytes (README "Record limits"). Without them a single record
// could fill a whole transport message (a few MiB of labels broke every unfiltered list). Names
// become exporter file and directory names: "<namespace>/<service name>.json" must fit NAME_MAX
// (255) together with the exporter's temporary-file decoration.
inline constexpr std::size_t kMaxNamespaceNameBytes = 255;
inline constexpr std::size_t kMaxServiceNameBytes = 200;
inline constexpr std::size_t kMaxServerNameBytes = 253;  // a DNS name
inline constexpr std::size_t kMaxLabels = 64;            // per service or server
inline constexpr std::size_t kMaxLabelNameBytes = 128;
inline constexpr std::size_t kMaxLabelValueBytes = 4096;
inline constexpr std::size_t kMaxDescriptionBytes = 1024;

// Target labels of a service: at most kMaxLabels, names match ^[a-zA-Z_][a-zA-Z0-9_]*$ and have
// at most kMaxLabelNameBytes, names starting with "__" are reserved except __scrape_interval__
// and __scrape_timeout__ (whose values must be Prometheus durations), values are non-empty UTF-8
// of at most kMaxLabelValueBytes.
absl::Status ValidateLabels(const Labels& labels);

// "k1=v1,k2=v2" with keys ascending; "" for no labels.
std::string LabelsToString(const Labels& labels);

// Parses "k1=v1,k2=v2" (the CLI's --labels form); InvalidArgument on an item without "=".
absl::StatusOr<Labels> ParseLabels(std::string_view text);

struct Namespace {
  std::string name;
  ExportConfig export_config = ExportConfig::kStandard;
  absl::Time modified = absl::UnixEpoch();

  friend bool operator==(const Namespace&, const Namespace&) = default;
};

struct Server {
  std::string name;
  Labels labels;
  ServerState state = ServerState::kJoining;
  absl::Time modified = absl::UnixEpoch();

  // Servers that take part in placement (not leaving).
  bool Enabled() const { return state != ServerState::kLeaving; }

  friend bool operator==(const Server&, const Server&) = default;
};

struct Service {
  std::string id;                    // ServiceId(endpoint)
  std::string name;                  // becomes the Prometheus job
  std::string namespace_name;        // "namespace" on the wire
  std::string endpoint;              // canonical endpoint URL (see model/endpoint.h)
  std::string selector;              // label selector over server labels
  std::vector<std::string> servers;  // placed servers, ascending
  Labels labels;
  std::string description;
  absl::Time modified = absl::UnixEpoch();
  // A registration with a TTL (> 0) expires at `expires` unless it is renewed (registered again
  // or kept alive), which moves `expires` to the renewal's time + ttl. Without one (zero, as
  // every record of the Go original) the service stays until it is unregistered and `expires`
  // means nothing.
  absl::Duration ttl = absl::ZeroDuration();
  absl::Time expires = absl::UnixEpoch();

  bool HasTtl() const { return ttl > absl::ZeroDuration(); }

  friend bool operator==(const Service&, const Service&) = default;
};

// Namespace names: 1..kMaxNamespaceNameBytes of ASCII letters, digits, '-' and '_'.
absl::Status ValidateNamespaceName(std::string_view name);
// Service names (the job): the same character set as namespace names, at most
// kMaxServiceNameBytes.
absl::Status ValidateServiceName(std::string_view name);
// Server names are DNS-name-like: 1..253 chars of ASCII letters, digits, '.', '-', '_'; no
// leading '.', no "..". They become store keys and file names, so nothing else is allowed.
absl::Status ValidateServerName(std::string_view name);
// A name that reads or removes an existing server record. The Go original stored any non-empty
// name (e.g. "host:9090"); such records must stay answerable and removable, so a lookup asks
// only that the name address exactly one key: non-empty, no '/', not "." or "..", no control
// characters.
absl::Status ValidateExistingServerName(std::string_view name);
// At most kMaxDescriptionBytes.
absl::Status ValidateDescription(std::string_view description);

absl::Status Validate(const Namespace& ns);
// The name, and at most kMaxLabels labels that selectors can name.
absl::Status Validate(const Server& server);
// Checks name, namespace, endpoint (must already be canonical: parses and re-serialises to
// itself), the id (must equal ServiceId(endpoint)), labels, description and the selector's syntax.
absl::Status Validate(const Service& service);

// Whether a service as stored can be served: its endpoint parses and it is within the record
// limits (name, namespace name, labels, description). Deliberately narrower than Validate: a
// record the Go original stored (e.g. a label name it let through) keeps being served as long as
// it can be rendered. InvalidArgument with the reason otherwise.
absl::Status CheckStoredService(const Service& service);

// `service` cut down to the record limits (name, labels, description; endpoint and selector to
// kMaxLabelValueBytes), so that a record over a limit can still be shown to an operator without
// blowing up the answer that shows it. Cut strings end on a UTF-8 boundary.
Service ClampToLimits(Service service);

// A stored service record that is left out of every answer (http_sd, ListTargetGroup, file_sd)
// because it cannot be served, with the reason, so that an operator can fix or remove it.
struct InvalidService {
  Service service;  // as far as it decoded, clamped; id and namespace are those of its store key
  std::string reason;

  friend bool operator==(const InvalidService&, const InvalidService&) = default;
};

// UUID v5 (SHA-1) of the canonical endpoint in the name-space
// 12ece826-bfcf-55f3-8e26-f92fe44d4be3 (= UUIDv5(DNS, "discovery")); lower-case, hyphenated.
std::string ServiceId(std::string_view canonical_endpoint);

// RFC 4122 UUID v5 of `name` in the name-space `namespace_uuid` (hyphenated text form).
// InvalidArgument if `namespace_uuid` is not a UUID.
absl::StatusOr<std::string> UuidV5(std::string_view namespace_uuid, std::string_view name);

}  // namespace discovery
