// The cost of one audit line, the INFO record every change writes (api::LogChange), through the
// daemon's real logger (JSON lines, gathered and written to /dev/null), against nlohmann's
// serialization of the same record as one JSON object, in the same run:
//   BM_AuditLine            ns per line through LogInfo;
//   BM_AuditLineAsJsonDump  ns per line built as an ordered_json and dumped.
// Run: build/bench/bench/discovery_bench --benchmark_filter=AuditLine
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "nlohmann/json.hpp"

#include "common/logging.h"

namespace discovery {
namespace {

// What LogChange writes for a registration (see api/audit.cc).
LogFields AuditFields() {
  return {{"object", "service"},
          {"op", "register"},
          {"namespace", "fleet"},
          {"name", "node"},
          {"endpoint", "http://host-0042.example.com:9100/metrics"},
          {"who_kind", "machine"},
          {"who", "admin"},
          {"peer", "ipv4:127.0.0.1:50412"},
          {"outcome", "ok"},
          {"code", "OK"},
          {"id", "2f1c0a3e-3c1b-5a63-9f0e-6f0d2a1b7c44"},
          {"servers", "prometheus1.example.com"}};
}

void BM_AuditLine(benchmark::State& state) {
  const int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  InitLogging({.format = LogOptions::Format::kJson, .output_fd = null_fd});
  const LogFields fields = AuditFields();
  for (auto _ : state) {
    LogInfo("audit", fields);
  }
  InitLogging({.format = LogOptions::Format::kJson, .output_fd = 2});
  close(null_fd);
}
BENCHMARK(BM_AuditLine);

void BM_AuditLineAsJsonDump(benchmark::State& state) {
  const LogFields fields = AuditFields();
  for (auto _ : state) {
    nlohmann::ordered_json line = {
        {"time", "2026-12-07T12:00:00.000Z"}, {"level", "info"}, {"msg", "audit"}};
    for (const auto& [key, value] : fields) {
      line[key] = value;
    }
    std::string text = line.dump();
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_AuditLineAsJsonDump);

}  // namespace
}  // namespace discovery
