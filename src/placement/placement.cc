#include "placement/placement.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#include "hash/crc64.h"
#include "hash/jump_hash.h"
#include "model/model.h"
#include "selector/selector.h"

namespace discovery::placement {
namespace {

// SplitMix64's output finaliser (Stafford's "Mix13"). CRC-64 is linear over GF(2), so raw CRCs
// of similar names ("server1", "server2") differ in fixed bit patterns; the finaliser's
// multiplications break that structure so scores of different servers behave independently.
constexpr uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The rendezvous weight of `server` for a key whose mixed hash is `mixed_key`:
//
//   score(server, key) = Mix(Crc64Xz(server) ^ Mix(Crc64Xz(key)))
//
// over the raw bytes of the server name and the canonical endpoint, with Mix as above. The key
// is mixed on its own first so it is hashed once per service, not once per candidate.
// This formula is frozen. Every discoveryd replica and exporter must agree on it, and changing
// it reassigns almost every service of every installation at once.
uint64_t Score(std::string_view server, uint64_t mixed_key) {
  return Mix(hash::Crc64Xz(server) ^ mixed_key);
}

struct Scored {
  uint64_t score = 0;
  const std::string* name = nullptr;
};

// Replica counts up to this need no heap allocation besides the result.
constexpr size_t kInlineReplicas = 8;

// Higher score wins; equal scores (a 64-bit collision) fall back to the smaller name so the
// outcome never depends on the order candidates arrive in.
bool Better(const Scored& a, const Scored& b) {
  if (a.score != b.score) {
    return a.score > b.score;
  }
  return *a.name < *b.name;
}

std::vector<std::string> SortedCopy(std::span<const std::string> names) {
  std::vector<std::string> result(names.begin(), names.end());
  std::sort(result.begin(), result.end());
  return result;
}

std::vector<std::string> PlaceRendezvous(std::string_view key,
                                         std::span<const std::string> candidates, size_t replicas) {
  const uint64_t mixed_key = Mix(hash::Crc64Xz(key));
  // A heap of the best `replicas` seen so far whose front is the worst of them, so each
  // candidate costs one comparison and at most O(log R) work: O(N log R) per service. Replica
  // counts are small, so the heap normally lives on the stack.
  std::array<Scored, kInlineReplicas> inline_heap;
  std::vector<Scored> allocated_heap;
  std::span<Scored> storage(inline_heap);
  if (replicas > inline_heap.size()) {
    allocated_heap.resize(replicas);
    storage = allocated_heap;
  }
  const std::span<Scored> best = storage.first(replicas);
  size_t size = 0;
  for (const std::string& name : candidates) {
    const Scored scored{Score(name, mixed_key), &name};
    if (size < replicas) {
      best[size++] = scored;
      std::push_heap(best.begin(), best.begin() + static_cast<ptrdiff_t>(size), Better);
    } else if (Better(scored, best.front())) {
      std::pop_heap(best.begin(), best.end(), Better);
      best.back() = scored;
      std::push_heap(best.begin(), best.end(), Better);
    }
  }
  std::sort(best.begin(), best.end(),
            [](const Scored& a, const Scored& b) { return *a.name < *b.name; });
  std::vector<std::string> result;
  result.reserve(best.size());
  for (const Scored& scored : best) {
    result.push_back(*scored.name);
  }
  return result;
}

std::vector<std::string> PlaceJump(std::string_view key, std::span<const std::string> candidates,
                                   size_t replicas) {
  // The original indexes the name-sorted candidate list; sort pointers rather than strings, and
  // only when the caller has not already sorted (Candidates() returns sorted names).
  std::vector<const std::string*> sorted;
  sorted.reserve(candidates.size());
  for (const std::string& name : candidates) {
    sorted.push_back(&name);
  }
  const auto by_name = [](const std::string* a, const std::string* b) { return *a < *b; };
  if (!std::is_sorted(sorted.begin(), sorted.end(), by_name)) {
    std::sort(sorted.begin(), sorted.end(), by_name);
  }
  const size_t n = sorted.size();
  const auto start = static_cast<size_t>(
      hash::JumpHash(hash::Crc64Xz(key), static_cast<int32_t>(std::min<size_t>(n, INT32_MAX))));
  std::vector<std::string> result;
  result.reserve(replicas);
  for (size_t i = 0; i < replicas; ++i) {
    result.push_back(*sorted[(start + i) % n]);
  }
  std::sort(result.begin(), result.end());
  return result;
}

}  // namespace

std::string AlgorithmName(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kRendezvous:
      return "rendezvous";
    case Algorithm::kJump:
      return "jump";
  }
  return absl::StrCat("Algorithm(", static_cast<int>(algorithm), ")");
}

absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view name) {
  if (name == "rendezvous") {
    return Algorithm::kRendezvous;
  }
  if (name == "jump") {
    return Algorithm::kJump;
  }
  // absl::string_view is not std::string_view in Debian's abseil, so no StrCat here.
  return absl::InvalidArgumentError("unknown placement algorithm '" + std::string{name} +
                                    "': expected 'rendezvous' or 'jump'");
}

absl::Status Validate(const Settings& settings) {
  if (settings.replicas < 1) {
    return absl::InvalidArgumentError("number of replicas has to be >= 1");
  }
  return absl::OkStatus();
}

std::vector<std::string> Candidates(std::span<const Server> servers,
                                    const selector::Selector& selector) {
  std::vector<std::string> names;
  for (const Server& server : servers) {
    if (server.Enabled() && selector.Matches(server.labels)) {
      names.push_back(server.name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> Place(std::string_view key, std::span<const std::string> candidates,
                               int replicas, Algorithm algorithm) {
  if (replicas < 1 || candidates.empty()) {
    return {};
  }
  // Both algorithms agree here, and the original returns every candidate without hashing.
  if (static_cast<size_t>(replicas) >= candidates.size()) {
    return SortedCopy(candidates);
  }
  const auto r = static_cast<size_t>(replicas);
  switch (algorithm) {
    case Algorithm::kRendezvous:
      return PlaceRendezvous(key, candidates, r);
    case Algorithm::kJump:
      return PlaceJump(key, candidates, r);
  }
  // Only reachable through a cast to an undeclared enumerator; use the default algorithm.
  return PlaceRendezvous(key, candidates, r);
}

}  // namespace discovery::placement
