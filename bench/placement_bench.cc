// Placement cost of a full re-placement: every service recomputed after a server joins or leaves.
// A join or leave must reach every answer within 2 seconds, at 1,000,000 services too
// (docs/decisions.md D5); one iteration places 100,000 realistic endpoints and items_per_second
// counts services.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"

#include "placement/placement.h"

namespace discovery::placement {
namespace {

constexpr int kServices = 100'000;

const std::vector<std::string>& Keys() {
  static const auto* const keys = [] {
    auto* result = new std::vector<std::string>();
    result->reserve(kServices);
    for (int i = 0; i < kServices; ++i) {
      result->push_back(absl::StrFormat("http://host-%d.example.com:9100/metrics", i));
    }
    return result;
  }();
  return *keys;
}

std::vector<std::string> ServerNames(int64_t n) {
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    names.push_back(absl::StrFormat("prometheus-%03d.example.com", i));
  }
  return names;
}

// Args: servers, replicas, algorithm (0 = rendezvous, 1 = jump).
void BM_PlaceAllServices(benchmark::State& state) {
  const std::vector<std::string>& keys = Keys();
  const std::vector<std::string> servers = ServerNames(state.range(0));
  const auto replicas = static_cast<int>(state.range(1));
  const Algorithm algorithm = state.range(2) == 0 ? Algorithm::kRendezvous : Algorithm::kJump;
  for (auto _ : state) {
    for (const std::string& key : keys) {
      std::vector<std::string> placed = Place(key, servers, replicas, algorithm);
      benchmark::DoNotOptimize(placed.data());
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(keys.size()));
  state.SetLabel(AlgorithmName(algorithm));
}
BENCHMARK(BM_PlaceAllServices)
    ->ArgNames({"servers", "replicas", "jump"})
    ->ArgsProduct({{10, 100}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace discovery::placement
