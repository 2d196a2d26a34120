#include "metrics/metrics.h"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "common/logging.h"
#include "metrics/collectors.h"

namespace discovery::metrics {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::DoubleEq;
using ::testing::Ge;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Le;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr std::string_view kRegister = "/postfinance.discovery.v1.ServiceAPI/RegisterService";
constexpr std::string_view kRegisterLabels =
    R"(grpc_method="RegisterService",grpc_service="postfinance.discovery.v1.ServiceAPI",)"
    R"(grpc_type="unary")";

// Maps each sample line of a text exposition ("name{labels} value") to its value.
std::map<std::string, double> Samples(const std::string& exposition) {
  std::map<std::string, double> samples;
  std::istringstream stream(exposition);
  for (std::string line; std::getline(stream, line);) {
    if (line.empty() || line.front() == '#') {
      continue;
    }
    const std::size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

// The samples whose series name (before any labels) is exactly `name`.
std::map<std::string, double> SamplesNamed(const std::string& exposition, std::string_view name) {
  std::map<std::string, double> named;
  for (const auto& [series, value] : Samples(exposition)) {
    const std::string_view series_name = std::string_view{series}.substr(0, series.find('{'));
    if (series_name == name) {
      named.emplace(series, value);
    }
  }
  return named;
}

std::string Series(std::string_view name, std::string_view labels) {
  return std::string(name) + "{" + std::string(labels) + "}";
}

TEST(MetricsTest, RpcSeriesUseGoGrpcPrometheusNamesAndLabels) {
  Metrics metrics;

  metrics.RpcStarted(kRegister);
  metrics.RpcHandled(kRegister, absl::StatusCode::kOk, absl::Milliseconds(20));
  metrics.RpcStarted(kRegister);
  metrics.RpcHandled(kRegister, absl::StatusCode::kInvalidArgument, absl::Milliseconds(1));

  const std::map<std::string, double> samples = Samples(metrics.Serialize());
  const std::string labels(kRegisterLabels);
  EXPECT_THAT(samples, Contains(Pair(Series("grpc_server_started_total", labels), 2)));
  EXPECT_THAT(samples, Contains(Pair(Series("grpc_server_msg_received_total", labels), 2)));
  EXPECT_THAT(samples, Contains(Pair(Series("grpc_server_msg_sent_total", labels), 1)));
  EXPECT_THAT(samples, Contains(Pair(
                           Series("grpc_server_handled_total", R"(grpc_code="OK",)" + labels), 1)));
  EXPECT_THAT(
      samples,
      Contains(Pair(Series("grpc_server_handled_total", R"(grpc_code="InvalidArgument",)" + labels),
                    1)));
  EXPECT_THAT(samples, Contains(Pair(Series("grpc_server_handling_seconds_count", labels), 2)));
  EXPECT_THAT(samples,
              Contains(Pair(Series("grpc_server_handling_seconds_sum", labels), DoubleEq(0.021))));
  EXPECT_THAT(
      samples,
      Contains(Pair(Series("grpc_server_handling_seconds_bucket", labels + R"(,le="0.005")"), 1)));
  EXPECT_THAT(
      samples,
      Contains(Pair(Series("grpc_server_handling_seconds_bucket", labels + R"(,le="0.025")"), 2)));
  EXPECT_THAT(
      samples,
      Contains(Pair(Series("grpc_server_handling_seconds_bucket", labels + R"(,le="10")"), 2)));
}

TEST(MetricsTest, MalformedMethodNameIsLabelledUnknown) {
  Metrics metrics;

  metrics.RpcStarted("no-slash");

  EXPECT_THAT(Samples(metrics.Serialize()),
              Contains(Pair(Series("grpc_server_started_total",
                                   R"(grpc_method="unknown",grpc_service="unknown",)"
                                   R"(grpc_type="unary")"),
                            1)));
}

TEST(MetricsTest, FamiliesWithoutSeriesAreNotExposed) {
  Metrics metrics;

  const std::string exposition = metrics.Serialize();

  EXPECT_THAT(exposition, Not(HasSubstr("grpc_server")));
  EXPECT_THAT(exposition, Not(HasSubstr("discovery_replication_factor")));
  EXPECT_THAT(exposition, Not(HasSubstr("discovery_services_count")));
  EXPECT_THAT(exposition, HasSubstr("# TYPE process_cpu_seconds_total counter"));
}

TEST(MetricsTest, HttpRequestsAreCountedPerRouteMethodAndCode) {
  Metrics metrics;

  metrics.HttpHandled("/v1/namespaces", "GET", 200, absl::Milliseconds(5));
  metrics.HttpHandled("/v1/namespaces", "GET", 200, absl::Milliseconds(7));
  metrics.HttpHandled("/v1/namespaces", "POST", 400, absl::Milliseconds(1));

  const std::string exposition = metrics.Serialize();
  EXPECT_THAT(SamplesNamed(exposition, "discovery_http_requests_total"),
              UnorderedElementsAre(Pair(R"(discovery_http_requests_total{code="200",method="GET",)"
                                        R"(route="/v1/namespaces"})",
                                        2),
                                   Pair(R"(discovery_http_requests_total{code="400",method="POST",)"
                                        R"(route="/v1/namespaces"})",
                                        1)));
  EXPECT_THAT(Samples(exposition),
              Contains(Pair(
                  R"(discovery_http_request_duration_seconds_count{route="/v1/namespaces"})", 3)));
}

TEST(MetricsTest, MethodsOutsideRfc9110CountAsOther) {
  Metrics metrics;
  for (int i = 0; i < 100; ++i) {
    metrics.HttpHandled(
        "unmatched", "X" + std::string(4096, static_cast<char>('A' + i % 26)) + std::to_string(i),
        400, absl::Milliseconds(1));
  }
  metrics.HttpHandled("unmatched", "get", 404, absl::Milliseconds(1));
  metrics.HttpHandled("unmatched", "DELETE", 404, absl::Milliseconds(1));

  EXPECT_THAT(
      SamplesNamed(metrics.Serialize(), "discovery_http_requests_total"),
      UnorderedElementsAre(
          Pair(R"(discovery_http_requests_total{code="400",method="other",route="unmatched"})",
               100),
          Pair(R"(discovery_http_requests_total{code="404",method="other",route="unmatched"})", 1),
          Pair(R"(discovery_http_requests_total{code="404",method="DELETE",route="unmatched"})",
               1)));
}

TEST(MetricsTest, ServiceCountsReplaceThePreviousSet) {
  Metrics metrics;
  metrics.SetServiceCounts({{{"server1", "default"}, 2}, {{"server2", "default"}, 1}});

  metrics.SetServiceCounts({{{"server2", "default"}, 3}, {{"server2", "other"}, 4}});

  EXPECT_THAT(SamplesNamed(metrics.Serialize(), "discovery_services_count"),
              UnorderedElementsAre(
                  Pair(R"(discovery_services_count{namespace="default",server="server2"})", 3),
                  Pair(R"(discovery_services_count{namespace="other",server="server2"})", 4)));

  metrics.SetServiceCounts({});

  EXPECT_THAT(metrics.Serialize(), Not(HasSubstr("discovery_services_count")));
}

TEST(MetricsTest, InvalidRecordsReplaceThePreviousSet) {
  Metrics metrics;
  EXPECT_THAT(metrics.Serialize(), Not(HasSubstr("discovery_invalid_records")));
  metrics.SetInvalidRecords({{{"service", "default"}, 2}, {{"server", ""}, 1}});
  metrics.SetInvalidRecords({{{"service", "default"}, 1}, {{"service", "web"}, 3}});

  const std::string exposition = metrics.Serialize();
  EXPECT_THAT(SamplesNamed(exposition, "discovery_invalid_records"),
              UnorderedElementsAre(
                  Pair(R"(discovery_invalid_records{kind="service",namespace="default"})", 1),
                  Pair(R"(discovery_invalid_records{kind="service",namespace="web"})", 3)));
  EXPECT_THAT(exposition, HasSubstr("# TYPE discovery_invalid_records gauge"));

  metrics.SetInvalidRecords({});
  EXPECT_THAT(metrics.Serialize(), Not(HasSubstr("discovery_invalid_records")));
}

TEST(MetricsTest, SimpleCountersAndGauges) {
  Metrics metrics;

  metrics.SetReplicationFactor(2);
  metrics.StoreError("put");
  metrics.StoreError("put");
  metrics.LogMessage("info");
  metrics.ExporterWatchEvent("delete");

  const std::map<std::string, double> samples = Samples(metrics.Serialize());
  EXPECT_THAT(samples, Contains(Pair("discovery_replication_factor", 2)));
  EXPECT_THAT(samples, Contains(Pair(R"(discovery_store_errors_total{op="put"})", 2)));
  EXPECT_THAT(samples, Contains(Pair(R"(discovery_log_messages_total{level="info"})", 1)));
  EXPECT_THAT(samples,
              Contains(Pair(R"(discovery_exporter_service_watch_events_total{op="delete"})", 1)));
}

TEST(MetricsTest, ExporterSyncs) {
  Metrics metrics;
  metrics.ExporterSynced(3, 1, absl::FromUnixSeconds(1700000000));
  metrics.ExporterSynced(1, 0, absl::FromUnixSeconds(1700000060));
  metrics.ExporterError();

  const std::map<std::string, double> samples = Samples(metrics.Serialize());
  EXPECT_THAT(samples, Contains(Pair("discovery_exporter_file_writes_total", 4)));
  EXPECT_THAT(samples, Contains(Pair("discovery_exporter_file_removals_total", 1)));
  EXPECT_THAT(samples, Contains(Pair("discovery_exporter_errors_total", 1)));
  EXPECT_THAT(samples,
              Contains(Pair("discovery_exporter_last_sync_timestamp_seconds", 1700000060)));
}

TEST(MetricsTest, LogCounterHookFeedsLogMessages) {
  Metrics metrics;
  std::ostringstream sink;
  InitLogging({.format = LogOptions::Format::kJson, .output = &sink});
  SetLogCounter([&metrics](std::string_view level) { metrics.LogMessage(level); });

  LogInfo("one");
  LogInfo("two");
  LogError("three");
  SetLogCounter({});
  InitLogging({});

  const std::map<std::string, double> samples = Samples(metrics.Serialize());
  EXPECT_THAT(samples, Contains(Pair(R"(discovery_log_messages_total{level="info"})", 2)));
  EXPECT_THAT(samples, Contains(Pair(R"(discovery_log_messages_total{level="error"})", 1)));
}

TEST(MetricsTest, StartupRecordsBuildInfoAndNonEmptyUnredactedFlags) {
  Metrics metrics;

  metrics.RecordStartup({.version = "1.2.3",
                         .revision = "12345678",
                         .date = "2020-09-23T07:03:55+02:00",
                         .compiler = "gcc 12.2.0"},
                        {{"grpc-listen", ":3001"}, {"etcd-user", ""}, {"token-secret", "*****"}});

  const std::string exposition = metrics.Serialize();
  EXPECT_THAT(SamplesNamed(exposition, "kong_build_info"),
              UnorderedElementsAre(Pair(R"(kong_build_info{compiler="gcc 12.2.0",)"
                                        R"(date="2020-09-23T07:03:55+02:00",program="discovery",)"
                                        R"(revision="12345678",version="1.2.3"})",
                                        1)));
  EXPECT_THAT(SamplesNamed(exposition, "kong_flag"),
              UnorderedElementsAre(
                  Pair(R"(kong_flag{name="grpc-listen",program="discovery",value=":3001"})", 1)));
}

TEST(MetricsTest, ProcessMetricsArePlausible) {
  Metrics metrics;

  const std::map<std::string, double> samples = Samples(metrics.Serialize());

  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_THAT(samples, Contains(Pair("process_cpu_seconds_total", Ge(0))));
  EXPECT_THAT(samples, Contains(Pair("process_resident_memory_bytes", Gt(1 << 20))));
  EXPECT_THAT(samples, Contains(Pair("process_virtual_memory_bytes",
                                     Ge(samples.at("process_resident_memory_bytes")))));
  EXPECT_THAT(samples, Contains(Pair("process_open_fds", Ge(1))));
  EXPECT_THAT(samples, Contains(Pair("process_max_fds", Ge(samples.at("process_open_fds")))));
  EXPECT_THAT(samples, Contains(Key("process_virtual_memory_max_bytes")));
  // The test process started moments ago (allow for clock granularity and slow CI).
  EXPECT_THAT(samples,
              Contains(Pair("process_start_time_seconds", AllOf(Ge(now - 3600), Le(now + 5)))));
}

TEST(ProcessCollectorTest, ReadsGoCollectorValuesFromProcFiles) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("proc-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "fd");
  for (const char* fd : {"0", "1", "2", "7"}) {
    std::ofstream(dir / "fd" / fd) << "";
  }
  // Fields 14/15 (utime/stime) 300/100, 22 (starttime) 500, 23 (vsize) 4096000, 24 (rss) 10;
  // the command name contains ") " to check that parsing starts after the last ')'.
  std::ofstream(dir / "stat") << "42 (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 300 100 0 0 20 "
                                 "0 1 0 500 4096000 10 18446744073709551615 1 1 0 0 0\n";
  std::ofstream(dir / "limits")
      << "Limit                     Soft Limit           Hard Limit           Units     \n"
         "Max open files            1024                 524288               files     \n"
         "Max address space         unlimited            unlimited            bytes     \n";
  std::ofstream(dir / "kernel_stat") << "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
  const ProcessCollector collector(dir.string(), (dir / "kernel_stat").string());

  std::map<std::string, double> values;
  for (const prometheus::MetricFamily& family : collector.Collect()) {
    ASSERT_EQ(family.metric.size(), 1U) << family.name;
    values[family.name] = family.type == prometheus::MetricType::Counter
                              ? family.metric[0].counter.value
                              : family.metric[0].gauge.value;
  }

  const auto hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  const auto page = static_cast<double>(sysconf(_SC_PAGESIZE));
  EXPECT_THAT(values, UnorderedElementsAre(
                          Pair("process_cpu_seconds_total", DoubleEq(400 / hz)),
                          Pair("process_start_time_seconds", DoubleEq(1700000000 + 500 / hz)),
                          Pair("process_virtual_memory_bytes", 4096000),
                          Pair("process_resident_memory_bytes", 10 * page),
                          Pair("process_open_fds", 4), Pair("process_max_fds", 1024),
                          Pair("process_virtual_memory_max_bytes", 18446744073709551615.0)));
  std::filesystem::remove_all(dir);
}

TEST(ProcessCollectorTest, MissingFilesLeaveTheirMetricsOut) {
  const ProcessCollector collector("/nonexistent/proc", "/nonexistent/stat");

  EXPECT_TRUE(collector.Collect().empty());
}

TEST(GrpcCodeNameTest, MatchesGoCodeStrings) {
  EXPECT_EQ(GrpcCodeName(absl::StatusCode::kOk), "OK");
  EXPECT_EQ(GrpcCodeName(absl::StatusCode::kCancelled), "Canceled");
  EXPECT_EQ(GrpcCodeName(absl::StatusCode::kInvalidArgument), "InvalidArgument");
  EXPECT_EQ(GrpcCodeName(absl::StatusCode::kFailedPrecondition), "FailedPrecondition");
  EXPECT_EQ(GrpcCodeName(absl::StatusCode::kUnauthenticated), "Unauthenticated");
  EXPECT_EQ(GrpcCodeName(static_cast<absl::StatusCode>(42)), "Code(42)");
}

TEST(MetricsTest, ConcurrentUpdatesAndScrapesLoseNothing) {
  Metrics metrics;
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 500;
  const std::string other_method = "/postfinance.discovery.v1.ServerAPI/ListServer";

  std::vector<std::thread> threads;
  threads.reserve(kThreads + 1);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, &other_method, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        const std::string_view method = (i % 2 == 0) ? kRegister : std::string_view{other_method};
        metrics.RpcStarted(method);
        metrics.RpcHandled(method,
                           (i % 3 == 0) ? absl::StatusCode::kNotFound : absl::StatusCode::kOk,
                           absl::Microseconds(i));
        metrics.HttpHandled("/v1/services", "GET", 200, absl::Microseconds(i));
        metrics.LogMessage("debug");
        metrics.SetServiceCounts({{{"server", "default"}, t * kCallsPerThread + i}});
      }
    });
  }
  threads.emplace_back([&metrics] {
    for (int i = 0; i < 20; ++i) {
      EXPECT_THAT(metrics.Serialize(), HasSubstr("process_open_fds"));
    }
  });
  for (std::thread& thread : threads) {
    thread.join();
  }

  const std::map<std::string, double> samples = Samples(metrics.Serialize());
  const std::string labels(kRegisterLabels);
  constexpr int kTotal = kThreads * kCallsPerThread;
  EXPECT_THAT(samples, Contains(Pair(Series("grpc_server_started_total", labels), kTotal / 2)));
  double handled = 0;
  for (const auto& [series, value] :
       SamplesNamed(metrics.Serialize(), "grpc_server_handled_total")) {
    handled += value;
  }
  EXPECT_EQ(handled, kTotal);
  EXPECT_THAT(samples, Contains(Pair(R"(discovery_log_messages_total{level="debug"})", kTotal)));
  EXPECT_THAT(samples, Contains(Pair(
                           R"(discovery_http_request_duration_seconds_count{route="/v1/services"})",
                           kTotal)));
  EXPECT_EQ(SamplesNamed(metrics.Serialize(), "discovery_services_count").size(), 1U);
}

}  // namespace
}  // namespace discovery::metrics
