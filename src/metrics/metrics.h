// The Prometheus metrics of both binaries, exposed on /metrics. Names and labels follow what the
// Go original exported (go-grpc-prometheus, the process collector, kong's build info), so
// existing dashboards and alerts keep working.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/labels.h"
#include "prometheus/registry.h"

namespace discovery::metrics {

class GaugeSnapshot;
class ProcessCollector;

// Returns the name Go's codes.Code.String() gives `code` ("OK", "InvalidArgument", ...), or
// "Code(<n>)" for a value outside the canonical codes. Used for the grpc_code label and the
// request log. Thread-safe.
std::string GrpcCodeName(absl::StatusCode code);

// Identifies the running build in kong_build_info.
struct BuildInfo {
  std::string program = "discovery";
  std::string version;
  std::string revision;
  std::string date;
  std::string compiler;
};

// Owns the metric registry. Series appear on first use, as with Go's metric vectors, so
// /metrics of the exporter does not list the server's RPC families. Every method is
// thread-safe. Not copyable or movable: the families point into the registry.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;
  Metrics(Metrics&&) = delete;
  Metrics& operator=(Metrics&&) = delete;

  // Returns the Prometheus text exposition (format 0.0.4) of all metrics, including the
  // process_* metrics read from /proc/self at this call, ordered by family name.
  std::string Serialize() const;

  // Records an RPC arriving for `full_method` ("/postfinance.discovery.v1.ServiceAPI/
  // RegisterService"): grpc_server_started_total and grpc_server_msg_received_total.
  void RpcStarted(std::string_view full_method);

  // Records the end of an RPC started with RpcStarted: grpc_server_handled_total{grpc_code},
  // grpc_server_handling_seconds and, when `code` is OK, grpc_server_msg_sent_total.
  void RpcHandled(std::string_view full_method, absl::StatusCode code, absl::Duration elapsed);

  // Records an HTTP request answered with `status` on `route` (the matched pattern or
  // "unmatched", never the raw path). `method` counts as itself when it is one of RFC 9110's
  // methods and as "other" otherwise: no label takes its value from request input.
  void HttpHandled(std::string_view route, std::string_view method, int status,
                   absl::Duration elapsed);

  // Counts the body bytes of an HTTP answer on `route` (a pattern, as for HttpHandled) as
  // discovery_http_response_body_bytes_total{route, encoding="gzip"|"identity"}.
  void HttpBodySent(std::string_view route, bool gzip, size_t bytes);

  // Replaces every discovery_services_count series with `counts`, keyed by (server,
  // namespace); series missing from `counts` disappear. A scrape sees either the old or the
  // new set, never a mix.
  void SetServiceCounts(const std::map<std::pair<std::string, std::string>, std::int64_t>& counts);

  // Replaces every discovery_invalid_records series with `counts`, keyed by (kind, namespace):
  // the stored records left out of every answer because they cannot be used (kind "service",
  // "namespace", "server" or "settings"; namespace "" except for services). Both come from the
  // store, never from a request. A scrape sees either the old or the new set.
  void SetInvalidRecords(const std::map<std::pair<std::string, std::string>, std::int64_t>& counts);

  // Sets discovery_services_with_ttl (services registered with a TTL, as this replica's view
  // shows them) and discovery_service_expirations_total (services this replica saw expire;
  // `expired` is the view's running count since start).
  void SetTtlServices(std::int64_t with_ttl, std::int64_t expired);
  // Counts renewals of services with a TTL (registrations and keepalives) in
  // discovery_service_renewals_total.
  void ServicesRenewed(std::int64_t renewed);

  // Sets discovery_replication_factor (the --replicas flag).
  void SetReplicationFactor(int replicas);
  // Sets discovery_ready: 1 when the replica serves (what /readyz answers), else 0.
  void SetReady(bool ready);

  // Counts a failed store operation, e.g. op="put", in discovery_store_errors_total.
  void StoreError(std::string_view op);

  // Counts an attempted change in discovery_changes_total{object, op, outcome} (the labels of
  // the audit line, api/audit.h; fixed sets, never request input).
  void Change(std::string_view object, std::string_view op, std::string_view outcome);

  // Counts a log record written at `level`; meant for SetLogCounter.
  void LogMessage(std::string_view level);

  // Counts a service watch event (op="Change" or "Delete", as the original) handled by the
  // exporter.
  void ExporterWatchEvent(std::string_view op);
  // Records a successful exporter sync: files written and removed, and the time of the sync
  // (discovery_exporter_last_sync_timestamp_seconds).
  void ExporterSynced(int written, int removed, absl::Time at);
  // Counts a failed exporter sync (a file that could not be written or removed), and each
  // record the exporter leaves out of its files (once, when it is first left out).
  void ExporterError();

  // Sets kong_build_info to 1 for `build`, and kong_flag{name,value} to 1 for each flag in
  // `flags`, which must already be redacted (RedactedFlags in common/logging.h). Flags with an
  // empty or redacted value are left out, as the Go original did. Call once at start-up.
  void RecordStartup(const BuildInfo& build,
                     const std::vector<std::pair<std::string, std::string>>& flags);

 private:
  // The series of `family` named by `key` (its label values joined), made with `labels()` the
  // first time. Family::Add builds and hashes a label map on every call (Histogram's even
  // constructs a histogram with its buckets when the series exists), which cost more than the
  // update itself on every request; this finds the series by the short key instead.
  template <typename Metric, typename MakeLabels>
  Metric& Series(prometheus::Family<Metric>& family, std::string_view key,
                 const MakeLabels& labels);

  // Declared first: the families below are owned by it.
  prometheus::Registry registry_;
  std::unique_ptr<ProcessCollector> process_;
  std::unique_ptr<GaugeSnapshot> services_count_;
  std::unique_ptr<GaugeSnapshot> invalid_records_;

  prometheus::Family<prometheus::Counter>& grpc_started_;
  prometheus::Family<prometheus::Counter>& grpc_handled_;
  prometheus::Family<prometheus::Counter>& grpc_msg_received_;
  prometheus::Family<prometheus::Counter>& grpc_msg_sent_;
  prometheus::Family<prometheus::Histogram>& grpc_handling_seconds_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_request_duration_;
  prometheus::Family<prometheus::Counter>& http_body_bytes_;
  prometheus::Family<prometheus::Gauge>& replication_factor_;
  prometheus::Family<prometheus::Gauge>& services_with_ttl_;
  prometheus::Family<prometheus::Counter>& service_expirations_;
  prometheus::Family<prometheus::Counter>& service_renewals_;
  absl::Mutex expirations_mu_;
  // The view's count already added to service_expirations_.
  std::int64_t expirations_seen_ ABSL_GUARDED_BY(expirations_mu_) = 0;
  prometheus::Family<prometheus::Gauge>& ready_;
  prometheus::Family<prometheus::Counter>& store_errors_;
  prometheus::Family<prometheus::Counter>& changes_;
  prometheus::Family<prometheus::Counter>& log_messages_;
  prometheus::Family<prometheus::Counter>& exporter_watch_events_;
  prometheus::Family<prometheus::Counter>& exporter_file_writes_;
  prometheus::Family<prometheus::Counter>& exporter_file_removals_;
  prometheus::Family<prometheus::Counter>& exporter_errors_;
  prometheus::Family<prometheus::Gauge>& exporter_last_sync_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Family<prometheus::Gauge>& flags_;

  absl::Mutex series_mutex_;
  // Values are a prometheus::Counter* or Histogram*, as the family the key names holds.
  absl::flat_hash_map<std::pair<const void*, std::string>, void*> series_
      ABSL_GUARDED_BY(series_mutex_);
};

}  // namespace discovery::metrics
