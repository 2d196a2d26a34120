// The stored JSON document of a service, written for every registration on the thread that
// starts it, against building the same bytes through nlohmann's DOM, in the same run:
//   BM_EncodeService          ns per document (repo::EncodeService);
//   BM_EncodeServiceWithDom   ns per document the way it was written before
//                             (repo::internal::EncodeServiceWithDom, kept as the tests' reference);
//   BM_FormatTimestamp        ns per "modified" timestamp, which both write.
// Run: build/bench/bench/discovery_bench --benchmark_filter='EncodeService|FormatTimestamp'
#include <benchmark/benchmark.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "model/model.h"
#include "repo/codec.h"

namespace discovery {
namespace {

// A service as a fleet registers it: a node_exporter endpoint with two labels.
Service FleetService() {
  Service service;
  service.name = "node";
  service.namespace_name = "default";
  service.endpoint = "http://host-0042.example.com:9100/metrics";
  service.id = ServiceId(service.endpoint);
  service.labels = {{"datacenter", "dc2"}, {"team", "team-07"}};
  service.modified = absl::FromUnixNanos(1'796'000'000'123'456'789);
  return service;
}

void BM_EncodeService(benchmark::State& state) {
  const Service service = FleetService();
  for (auto _ : state) {
    std::string json = repo::EncodeService(service);
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_EncodeService);

void BM_EncodeServiceWithDom(benchmark::State& state) {
  const Service service = FleetService();
  for (auto _ : state) {
    std::string json = repo::internal::EncodeServiceWithDom(service);
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_EncodeServiceWithDom);

void BM_FormatTimestamp(benchmark::State& state) {
  const absl::Time time = FleetService().modified;
  for (auto _ : state) {
    std::string text = repo::FormatTimestamp(time);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_FormatTimestamp);

}  // namespace
}  // namespace discovery
