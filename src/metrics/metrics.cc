#include "metrics/metrics.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/labels.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

#include "common/format.h"
#include "common/logging.h"
#include "metrics/collectors.h"

namespace discovery::metrics {
namespace {

// Series of a gauge labelled by a pair of names (server or kind, namespace).
std::vector<GaugeSnapshot::Series> PairSeries(
    const std::map<std::pair<std::string, std::string>, std::int64_t>& counts) {
  std::vector<GaugeSnapshot::Series> series;
  series.reserve(counts.size());
  for (const auto& [key, count] : counts) {
    series.emplace_back(std::vector<std::string>{key.first, key.second},
                        static_cast<double>(count));
  }
  return series;
}

// The only kind of RPC the API has.
constexpr std::string_view kUnary = "unary";

// Prometheus client defaults (prometheus.DefBuckets), which go-grpc-prometheus uses.
const prometheus::Histogram::BucketBoundaries& DefaultBuckets() {
  static const auto* const buckets =
      new prometheus::Histogram::BucketBoundaries{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  return *buckets;
}

// go-grpc-prometheus's labels for "/package.Service/Method", including its "unknown" fallback
// for a name without a second slash.
prometheus::Labels RpcLabels(std::string_view full_method) {
  if (!full_method.empty() && full_method.front() == '/') {
    full_method.remove_prefix(1);
  }
  std::string service = "unknown";
  std::string method = "unknown";
  if (const std::size_t slash = full_method.find('/'); slash != std::string_view::npos) {
    service = std::string(full_method.substr(0, slash));
    method = std::string(full_method.substr(slash + 1));
  }
  return {{"grpc_type", std::string(kUnary)},
          {"grpc_service", std::move(service)},
          {"grpc_method", std::move(method)}};
}

// A request may carry any token as its method; a label taking it as sent would let every client
// add series without bound.
std::string_view MethodLabel(std::string_view method) {
  static constexpr std::array<std::string_view, 9> kKnown = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};
  for (std::string_view known : kKnown) {
    if (method == known) {
      return known;
    }
  }
  return "other";
}

template <typename T>
prometheus::Family<T>& Register(prometheus::detail::Builder<T> builder,
                                prometheus::Registry& registry, const std::string& name,
                                const std::string& help) {
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

std::string GrpcCodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "Canceled";
    case absl::StatusCode::kUnknown:
      return "Unknown";
    case absl::StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case absl::StatusCode::kDeadlineExceeded:
      return "DeadlineExceeded";
    case absl::StatusCode::kNotFound:
      return "NotFound";
    case absl::StatusCode::kAlreadyExists:
      return "AlreadyExists";
    case absl::StatusCode::kPermissionDenied:
      return "PermissionDenied";
    case absl::StatusCode::kResourceExhausted:
      return "ResourceExhausted";
    case absl::StatusCode::kFailedPrecondition:
      return "FailedPrecondition";
    case absl::StatusCode::kAborted:
      return "Aborted";
    case absl::StatusCode::kOutOfRange:
      return "OutOfRange";
    case absl::StatusCode::kUnimplemented:
      return "Unimplemented";
    case absl::StatusCode::kInternal:
      return "Internal";
    case absl::StatusCode::kUnavailable:
      return "Unavailable";
    case absl::StatusCode::kDataLoss:
      return "DataLoss";
    case absl::StatusCode::kUnauthenticated:
      return "Unauthenticated";
    default:
      return "Code(" + std::to_string(static_cast<int>(code)) + ")";
  }
}

Metrics::Metrics()
    : process_(std::make_unique<ProcessCollector>()),
      services_count_(std::make_unique<GaugeSnapshot>(
          "discovery_services_count", "Number of registered services per server and namespace.",
          std::vector<std::string>{"server", "namespace"})),
      invalid_records_(std::make_unique<GaugeSnapshot>(
          "discovery_invalid_records",
          "Number of stored records left out of every answer because they cannot be used, per "
          "kind and namespace.",
          std::vector<std::string>{"kind", "namespace"})),
      grpc_started_(Register(prometheus::BuildCounter(), registry_, "grpc_server_started_total",
                             "Total number of RPCs started on the server.")),
      grpc_handled_(Register(
          prometheus::BuildCounter(), registry_, "grpc_server_handled_total",
          "Total number of RPCs completed on the server, regardless of success or failure.")),
      grpc_msg_received_(Register(prometheus::BuildCounter(), registry_,
                                  "grpc_server_msg_received_total",
                                  "Total number of RPC stream messages received on the server.")),
      grpc_msg_sent_(Register(prometheus::BuildCounter(), registry_, "grpc_server_msg_sent_total",
                              "Total number of gRPC stream messages sent by the server.")),
      grpc_handling_seconds_(Register(prometheus::BuildHistogram(), registry_,
                                      "grpc_server_handling_seconds",
                                      "Histogram of response latency (seconds) of gRPC that had "
                                      "been application-level handled by the server.")),
      http_requests_(Register(prometheus::BuildCounter(), registry_,
                              "discovery_http_requests_total",
                              "Total number of HTTP requests by route, method and status code.")),
      http_request_duration_(Register(prometheus::BuildHistogram(), registry_,
                                      "discovery_http_request_duration_seconds",
                                      "Histogram of HTTP request latency (seconds) by route.")),
      http_body_bytes_(Register(prometheus::BuildCounter(), registry_,
                                "discovery_http_response_body_bytes_total",
                                "Total bytes of HTTP response bodies sent, by route and "
                                "content encoding (gzip or identity).")),
      replication_factor_(Register(prometheus::BuildGauge(), registry_,
                                   "discovery_replication_factor",
                                   "Number of servers each service is assigned to.")),
      services_with_ttl_(Register(prometheus::BuildGauge(), registry_,
                                  "discovery_services_with_ttl",
                                  "Number of services registered with a TTL, as this replica's "
                                  "view of the store shows them.")),
      service_expirations_(Register(prometheus::BuildCounter(), registry_,
                                    "discovery_service_expirations_total",
                                    "Services with a TTL this replica saw expire (every replica "
                                    "sees each expiration).")),
      service_renewals_(Register(prometheus::BuildCounter(), registry_,
                                 "discovery_service_renewals_total",
                                 "Renewals of services with a TTL (registrations and keepalives) "
                                 "this replica answered.")),
      ready_(Register(prometheus::BuildGauge(), registry_, "discovery_ready",
                      "1 when this replica serves: its registry is loaded and follows the store "
                      "(as /readyz answers 200), else 0.")),
      store_errors_(Register(prometheus::BuildCounter(), registry_, "discovery_store_errors_total",
                             "Total number of failed store operations by operation.")),
      changes_(Register(prometheus::BuildCounter(), registry_, "discovery_changes_total",
                        "Total number of attempted changes (the audit trail's lines) by object, "
                        "operation and outcome.")),
      log_messages_(Register(prometheus::BuildCounter(), registry_, "discovery_log_messages_total",
                             "Total number of log messages by level.")),
      exporter_watch_events_(Register(prometheus::BuildCounter(), registry_,
                                      "discovery_exporter_service_watch_events_total",
                                      "Total number of service watch events by operation.")),
      exporter_file_writes_(Register(prometheus::BuildCounter(), registry_,
                                     "discovery_exporter_file_writes_total",
                                     "Total number of file_sd files written.")),
      exporter_file_removals_(Register(prometheus::BuildCounter(), registry_,
                                       "discovery_exporter_file_removals_total",
                                       "Total number of file_sd files removed.")),
      exporter_errors_(Register(prometheus::BuildCounter(), registry_,
                                "discovery_exporter_errors_total",
                                "Total number of exporter syncs that failed.")),
      exporter_last_sync_(Register(prometheus::BuildGauge(), registry_,
                                   "discovery_exporter_last_sync_timestamp_seconds",
                                   "Unix time of the last successful exporter sync.")),
      build_info_(Register(prometheus::BuildGauge(), registry_, "kong_build_info",
                           "Build information of the program.")),
      flags_(Register(prometheus::BuildGauge(), registry_, "kong_flag",
                      "Flag values the program was started with.")) {}

Metrics::~Metrics() = default;

std::string Metrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = registry_.Collect();
  for (const prometheus::Collectable* collectable :
       {static_cast<const prometheus::Collectable*>(process_.get()),
        static_cast<const prometheus::Collectable*>(services_count_.get()),
        static_cast<const prometheus::Collectable*>(invalid_records_.get())}) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  // Go's registry omits vectors without series; a bare HELP/TYPE header would only be noise.
  std::erase_if(families,
                [](const prometheus::MetricFamily& family) { return family.metric.empty(); });
  std::sort(families.begin(), families.end(),
            [](const prometheus::MetricFamily& a, const prometheus::MetricFamily& b) {
              return a.name < b.name;
            });
  return prometheus::TextSerializer().Serialize(families);
}

template <typename Metric, typename MakeLabels>
Metric& Metrics::Series(prometheus::Family<Metric>& family, std::string_view key,
                        const MakeLabels& labels) {
  absl::MutexLock lock(&series_mutex_);
  void*& series = series_[std::pair<const void*, std::string>(&family, key)];
  if (series == nullptr) {
    if constexpr (std::is_same_v<Metric, prometheus::Histogram>) {
      series = &family.Add(labels(), DefaultBuckets());
    } else {
      series = &family.Add(labels());
    }
  }
  return *static_cast<Metric*>(series);
}

void Metrics::RpcStarted(std::string_view full_method) {
  const auto labels = [full_method] { return RpcLabels(full_method); };
  Series(grpc_started_, full_method, labels).Increment();
  // Unary: exactly one request message per call.
  Series(grpc_msg_received_, full_method, labels).Increment();
}

void Metrics::RpcHandled(std::string_view full_method, absl::StatusCode code,
                         absl::Duration elapsed) {
  const auto labels = [full_method] { return RpcLabels(full_method); };
  Series(grpc_handling_seconds_, full_method, labels).Observe(absl::ToDoubleSeconds(elapsed));
  if (code == absl::StatusCode::kOk) {
    // A failed unary call sends no response message.
    Series(grpc_msg_sent_, full_method, labels).Increment();
  }
  const std::string code_name = GrpcCodeName(code);
  Series(grpc_handled_, absl::StrCat(ToAbsl(full_method), "\n", code_name), [&] {
    prometheus::Labels with_code = RpcLabels(full_method);
    with_code.emplace("grpc_code", code_name);
    return with_code;
  }).Increment();
}

void Metrics::HttpHandled(std::string_view route, std::string_view method, int status,
                          absl::Duration elapsed) {
  const std::string_view method_label = MethodLabel(method);
  Series(http_requests_, absl::StrCat(ToAbsl(route), "\n", ToAbsl(method_label), "\n", status),
         [&]() -> prometheus::Labels {
           return {{"route", std::string(route)},
                   {"method", std::string(method_label)},
                   {"code", std::to_string(status)}};
         })
      .Increment();
  Series(http_request_duration_, route, [route]() -> prometheus::Labels {
    return {{"route", std::string(route)}};
  }).Observe(absl::ToDoubleSeconds(elapsed));
}

void Metrics::HttpBodySent(std::string_view route, bool gzip, size_t bytes) {
  const std::string_view encoding = gzip ? "gzip" : "identity";
  Series(http_body_bytes_, absl::StrCat(ToAbsl(route), "\n", ToAbsl(encoding)),
         [&]() -> prometheus::Labels {
           return {{"route", std::string(route)}, {"encoding", std::string(encoding)}};
         })
      .Increment(static_cast<double>(bytes));
}

void Metrics::SetServiceCounts(
    const std::map<std::pair<std::string, std::string>, std::int64_t>& counts) {
  services_count_->Replace(PairSeries(counts));
}

void Metrics::SetInvalidRecords(
    const std::map<std::pair<std::string, std::string>, std::int64_t>& counts) {
  invalid_records_->Replace(PairSeries(counts));
}

void Metrics::SetReplicationFactor(int replicas) { replication_factor_.Add({}).Set(replicas); }

void Metrics::SetTtlServices(std::int64_t with_ttl, std::int64_t expired) {
  services_with_ttl_.Add({}).Set(static_cast<double>(with_ttl));
  prometheus::Counter& expirations = service_expirations_.Add({});
  absl::MutexLock lock(&expirations_mu_);
  if (expired > expirations_seen_) {
    expirations.Increment(static_cast<double>(expired - expirations_seen_));
    expirations_seen_ = expired;
  }
}

void Metrics::ServicesRenewed(std::int64_t renewed) {
  service_renewals_.Add({}).Increment(static_cast<double>(renewed));
}

void Metrics::SetReady(bool ready) { ready_.Add({}).Set(ready ? 1 : 0); }

void Metrics::StoreError(std::string_view op) {
  store_errors_.Add({{"op", std::string(op)}}).Increment();
}

void Metrics::Change(std::string_view object, std::string_view op, std::string_view outcome) {
  changes_
      .Add({{"object", std::string(object)},
            {"op", std::string(op)},
            {"outcome", std::string(outcome)}})
      .Increment();
}

void Metrics::LogMessage(std::string_view level) {
  log_messages_.Add({{"level", std::string(level)}}).Increment();
}

void Metrics::ExporterWatchEvent(std::string_view op) {
  exporter_watch_events_.Add({{"op", std::string(op)}}).Increment();
}

void Metrics::ExporterSynced(int written, int removed, absl::Time at) {
  exporter_file_writes_.Add({}).Increment(written);
  exporter_file_removals_.Add({}).Increment(removed);
  exporter_last_sync_.Add({}).Set(absl::ToDoubleSeconds(at - absl::UnixEpoch()));
}

void Metrics::ExporterError() { exporter_errors_.Add({}).Increment(); }

void Metrics::RecordStartup(const BuildInfo& build,
                            const std::vector<std::pair<std::string, std::string>>& flags) {
  build_info_
      .Add({{"program", build.program},
            {"version", build.version},
            {"revision", build.revision},
            {"date", build.date},
            {"compiler", build.compiler}})
      .Set(1);
  for (const auto& [name, value] : flags) {
    if (value.empty() || value == kRedactedValue) {
      continue;
    }
    flags_.Add({{"program", build.program}, {"name", name}, {"value", value}}).Set(1);
  }
}

}  // namespace discovery::metrics
