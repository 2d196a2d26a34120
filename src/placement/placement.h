// Placement: which Prometheus servers scrape a service. Pure functions of the service key
// (canonical endpoint), the candidate servers and the replica count, so every discoveryd
// replica and every exporter computes the same answer from the same stored state.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "model/model.h"
#include "selector/selector.h"

namespace discovery::placement {

enum class Algorithm {
  // Highest-random-weight hashing: each candidate scores hash(server, key); the R highest win.
  // A join moves only the services the new server wins; a leave moves only the leaver's.
  kRendezvous,
  // The Go original's assignment: CRC-64/XZ(key), jump hash over the name-sorted candidates for
  // a start index, then R consecutive candidates (wrapping).
  kJump,
};

// "rendezvous" | "jump".
std::string AlgorithmName(Algorithm algorithm);
// Parses "rendezvous" | "jump"; InvalidArgument otherwise.
absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view name);

// How services are placed; stored once for the whole registry so that every discoveryd replica
// and every exporter computes the same placement (docs/decisions.md D27).
struct Settings {
  Algorithm algorithm = Algorithm::kRendezvous;
  int replicas = 1;
  friend bool operator==(const Settings&, const Settings&) = default;
};

// InvalidArgument `number of replicas has to be >= 1` (the original's text) for replicas < 1.
absl::Status Validate(const Settings& settings);

// Names of the servers eligible for a service with `selector`: enabled (not leaving) and
// matching, ascending by name.
std::vector<std::string> Candidates(std::span<const Server> servers,
                                    const selector::Selector& selector);

// Chooses min(replicas, candidates) servers for `key` among `candidates` (names, any order,
// unique). The result is ascending by name and independent of the candidates' order.
// Empty when there are no candidates or replicas < 1.
std::vector<std::string> Place(std::string_view key, std::span<const std::string> candidates,
                               int replicas, Algorithm algorithm);

}  // namespace discovery::placement
