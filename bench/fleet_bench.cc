// Fleet-scale benchmarks (docs/decisions.md D41). Each prints both sides of a ratio measured in the
// same run, so the machine's speed cancels out:
//   BM_EmbeddedRegistrationsVsBatchedPuts  registrations/s over gRPC with 64 calls in flight
//                                          vs the embedded store's own put rate of the same
//                                          JSON documents in transactions of 100;
//   BM_RegistrationsVsNamespaceSize        registrations/s into a namespace already holding N
//                                          services vs into an empty one of the same store, in
//                                          alternating rounds (embedded store; the etcd store
//                                          too when DISCOVERY_BENCH_ETCD_ENDPOINTS is set), and
//                                          the rate into the store before it held the N; on
//                                          etcd also vs raw puts of the same documents into
//                                          the same full store in the same rounds;
//   BM_EtcdRegistrationsVsRawPuts          with DISCOVERY_BENCH_ETCD_ENDPOINTS: registrations/s
//                                          with 64 in flight vs raw etcd puts of the same
//                                          documents from 64 threads of the same process, in
//                                          alternating rounds;
//   BM_HttpSdLatencyUnderWrites            http_sd p50/p99 of a 10,000-target namespace idle
//                                          and while 5,000 registrations/s are written into
//                                          another namespace (into_served:0) or into the served
//                                          one (into_served:1), in alternating windows;
//   BM_ExporterUpdateVsFromScratch         the file_sd exporter's work for one registration
//                                          into a namespace of N on one server: its incremental
//                                          renderer vs rendering every file anew, and vs writing
//                                          the same file alone;
//   BM_LoadReadyMemoryAndJoin              a real discoveryd started on a store of N services:
//                                          time until ready vs a plain range read of the whole
//                                          prefix, RSS per service (vs the same binary on an
//                                          empty store) and the load's peak RSS, the time
//                                          from a server join until every http_sd answer
//                                          reflects it, a REST page of 1,000 rows from the
//                                          middle of the list and the whole list unpaged (time
//                                          and growth of peak RSS each), and from
//                                          unregistering the namespace of the N until its
//                                          answer and until every http_sd answer is empty
//                                          (embedded store; the etcd store too when
//                                          DISCOVERY_BENCH_ETCD_ENDPOINTS is set).
// N is 100,000 by default (what CI's smoke run uses); DISCOVERY_BENCH_SERVICES=1000000 for the
// fleet figures of the README. DISCOVERY_BENCH_DAEMON_LOG names a file the logs of the
// discoveryd processes BM_LoadReadyMemoryAndJoin starts go to (otherwise nowhere).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "http_client.h"
#include "in_process_daemon.h"
#include "percentile.h"
#include "registration_load.h"

#include "exporter/file_sd.h"
#include "exporter/file_sd_directory.h"
#include "model/model.h"
#include "readmodel/placed.h"
#include "repo/repo.h"
#include "server/server_config.h"
#include "store/embedded/embedded_store.h"
#include "store/etcd/etcd_store.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif

namespace discovery {
namespace {

constexpr int kInFlight = 64;

int Services() {
  int services = 100'000;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): benchmarks never change their environment
  if (const char* text = std::getenv("DISCOVERY_BENCH_SERVICES"); text != nullptr) {
    (void)absl::SimpleAtoi(text, &services);
  }
  return services;
}

using bench::AdminToken;
using bench::EtcdEndpoints;
using bench::HttpClient;
using bench::HttpGet;
using bench::InProcessDaemon;
using bench::MakeService;
using bench::Percentile;

// Writes services [first, first + count) of `ns` straight into `store`, in transactions of
// `batch`, as a migration would. Returns puts per second.
double BulkPut(store::Store& store, const repo::Repository& repository, std::string_view ns,
               int first, int count, int batch) {
  const absl::Time start = absl::Now();
  for (int begin = first; begin < first + count; begin += batch) {
    store::Txn txn;
    for (int i = begin; i < std::min(first + count, begin + batch); ++i) {
      txn.ops.push_back(*repository.PutServiceOp(MakeService(ns, i)));
    }
    if (!store.Commit(txn).ok()) {
      return 0;
    }
  }
  return count / absl::ToDoubleSeconds(absl::Now() - start);
}

// Registers services [first, first + count) of `ns` over gRPC with `in_flight` calls
// outstanding at any time; registrations per second.
double RegisterConcurrently(const std::shared_ptr<grpc::Channel>& channel, std::string_view ns,
                            int first, int count, int in_flight, int* failures) {
  const bench::LoadResult result = bench::RegisterServices({channel}, "Bearer " + AdminToken(), ns,
                                                           first, count, {.in_flight = in_flight});
  *failures += result.failed;
  return result.per_second;
}

// Waits until http_sd of `server` for `ns` on `daemon` lists `host`.
bool AwaitTarget(const InProcessDaemon& daemon, const std::string& server, const std::string& ns,
                 const std::string& host, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::string body;
    if (HttpGet(daemon.Url(fmt::format("/v1/sd/{}/{}", server, ns)), &body,
                "Bearer " + daemon.token()) == 200 &&
        body.find(host) != std::string::npos) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return false;
}

// Writes services [0, count) of `ns` straight into the store of `daemon`, as a migration would, in
// transactions of 100 (etcd refuses more than 128 operations, --max-txn-ops), and waits until the
// view serves the last of them on p0.
bool BulkLoad(const InProcessDaemon& daemon, const std::string& ns, int count,
              absl::Duration timeout) {
  {
    absl::StatusOr<std::unique_ptr<store::Store>> store = server::OpenStore(daemon.config().store);
    if (!store.ok()) {
      return false;
    }
    repo::Repository repository(**store, repo::Keys(daemon.config().store.prefix));
    if (BulkPut(**store, repository, ns, 0, count, 100) == 0) {
      return false;
    }
  }
  return AwaitTarget(daemon, "p0", ns, fmt::format("{}-host{}.example.com", ns, count - 1),
                     timeout);
}

// Registers `count` services into a fresh discoveryd with 64 calls in flight and reports the
// rate against `baseline`, measured by the caller on the same store kind in the same run.
void RegistrationsAgainst(benchmark::State& state, bool etcd, int count,
                          const std::string& baseline_name, double baseline) {
  InProcessDaemon server(etcd, "registrations");
  if (!server.error().empty() || !server.RegisterServer("p0").ok()) {
    state.SkipWithError("set-up failed");
    return;
  }
  int failures = 0;
  const double registrations =
      RegisterConcurrently(server.channel(), "default", 0, count, kInFlight, &failures);
  state.counters[baseline_name] = baseline;
  state.counters["registrations_per_s"] = registrations;
  state.counters["ratio"] = registrations / baseline;
  state.counters["failures"] = failures;
}

void BM_EmbeddedRegistrationsVsBatchedPuts(benchmark::State& state) {
  constexpr int kCount = 6400;
  for (auto _ : state) {
    // The store's own rate: the same documents in transactions of 100, one writer.
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / fmt::format("discovery_fleet_puts_{}", getpid());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    double batched = 0;
    {
      absl::StatusOr<std::unique_ptr<store::Store>> store =
          store::OpenEmbeddedStore({.path = (dir / "discovery.db").string()});
      if (!store.ok()) {
        state.SkipWithError("cannot open the embedded store");
        return;
      }
      repo::Repository repository(**store, repo::Keys());
      batched = BulkPut(**store, repository, "default", 0, kCount, 100);
    }
    std::filesystem::remove_all(dir);

    RegistrationsAgainst(state, /*etcd=*/false, kCount, "batched_puts_per_s", batched);
  }
}
BENCHMARK(BM_EmbeddedRegistrationsVsBatchedPuts)->Iterations(1)->Unit(benchmark::kSecond);

// `count` services of a namespace "raw" encoded exactly as registrations store them (key and JSON
// document), under a prefix of their own, for raw etcd puts to write.
bool EncodeRawPuts(int count, std::vector<std::pair<std::string, std::string>>* kvs) {
  store::EtcdOptions options;
  options.endpoints = {EtcdEndpoints()};
  absl::StatusOr<std::unique_ptr<store::Store>> store = store::ConnectEtcdStore(options);
  if (!store.ok()) {
    return false;
  }
  // The store is only there because a repository needs one; nothing is written through it.
  const repo::Repository repository(**store, repo::Keys(bench::UniquePrefix("raw")));
  kvs->reserve(kvs->size() + count);
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<store::Op> op = repository.PutServiceOp(MakeService("raw", i));
    if (!op.ok()) {
      return false;
    }
    kvs->emplace_back(op->key, op->value);
  }
  return true;
}

void BM_RegistrationsVsNamespaceSize(benchmark::State& state) {
  const bool etcd = state.range(0) == 1;
  if (etcd && EtcdEndpoints() == nullptr) {
    state.SkipWithError("set DISCOVERY_BENCH_ETCD_ENDPOINTS for the etcd variant");
    return;
  }
  const int services = Services();
  constexpr int kCount = 4000;
  constexpr int kRounds = 3;
  for (auto _ : state) {
    InProcessDaemon server(etcd, "size");
    if (!server.error().empty() || !server.RegisterServer("p0").ok() ||
        !server.RegisterNamespace("first").ok() || !server.RegisterNamespace("big").ok()) {
      state.SkipWithError("set-up failed");
      return;
    }
    // On etcd the store itself slows as it grows (its B-tree and bbolt pages), which is not ours
    // to count: raw puts of the same documents into the same full store, in the same rounds, are
    // the issue's alternative baseline. Encoded up front, under a prefix the daemon does not
    // watch, so that the rounds time only the puts.
    std::vector<std::pair<std::string, std::string>> raw_kvs;
    if (etcd && !EncodeRawPuts(kRounds * kCount, &raw_kvs)) {
      state.SkipWithError("cannot encode the raw puts");
      return;
    }
    int failures = 0;
    // Into an empty namespace of a still empty store: against the rounds below, this shows what
    // the store's own growth costs, which is not the namespace's size.
    const double into_empty_store =
        RegisterConcurrently(server.channel(), "first", 0, kCount, kInFlight, &failures);
    if (!BulkLoad(server, "big", services, absl::Minutes(10))) {
      state.SkipWithError("cannot load the bulk services");
      return;
    }
    // Then, in the same store, a fresh empty namespace and the full one take turns, so that
    // whatever the machine does meanwhile falls on both sides alike; only the size of the
    // namespace written into differs. The figure is the median of the rounds' ratios.
    std::vector<double> into_empty;
    std::vector<double> into_full;
    std::vector<double> ratios;
    std::vector<double> raw_puts_full;
    std::vector<double> raw_ratios;
    int failed_puts = 0;
    for (int round = 0; round < kRounds; ++round) {
      const std::string empty = fmt::format("empty{}", round);
      if (!server.RegisterNamespace(empty).ok()) {
        state.SkipWithError("cannot register a namespace");
        return;
      }
      into_empty.push_back(
          RegisterConcurrently(server.channel(), empty, 0, kCount, kInFlight, &failures));
      into_full.push_back(RegisterConcurrently(server.channel(), "big", services + round * kCount,
                                               kCount, kInFlight, &failures));
      ratios.push_back(into_full.back() / into_empty.back());
      if (etcd) {
        const auto begin = raw_kvs.begin() + static_cast<std::ptrdiff_t>(round) * kCount;
        const std::vector<std::pair<std::string, std::string>> round_kvs(begin, begin + kCount);
        raw_puts_full.push_back(
            bench::RawEtcdPuts({EtcdEndpoints()}, round_kvs, kInFlight, &failed_puts));
        raw_ratios.push_back(into_full.back() / raw_puts_full.back());
      }
    }
    if (failed_puts > 0) {
      state.SkipWithError("raw etcd puts failed");
      return;
    }
    if (etcd) {
      state.counters["raw_puts_full_per_s"] = Percentile(raw_puts_full, 0.5);
      state.counters["full_vs_raw_puts_full"] = Percentile(raw_ratios, 0.5);
    }
    state.counters["services_before"] = services;
    state.counters["into_empty_store_per_s"] = into_empty_store;
    state.counters["into_empty_per_s"] = Percentile(into_empty, 0.5);
    state.counters["into_full_per_s"] = Percentile(into_full, 0.5);
    state.counters["ratio"] = Percentile(ratios, 0.5);
    state.counters["full_vs_empty_store"] = Percentile(into_full, 0.5) / into_empty_store;
    state.counters["failures"] = failures;
  }
}
BENCHMARK(BM_RegistrationsVsNamespaceSize)
    ->ArgName("etcd")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

void BM_EtcdRegistrationsVsRawPuts(benchmark::State& state) {
  if (EtcdEndpoints() == nullptr) {
    state.SkipWithError("set DISCOVERY_BENCH_ETCD_ENDPOINTS");
    return;
  }
  constexpr int kCount = 6400;
  constexpr int kRounds = 5;
  for (auto _ : state) {
    InProcessDaemon server(/*etcd=*/true, "registrations");
    if (!server.error().empty() || !server.RegisterServer("p0").ok()) {
      state.SkipWithError("set-up failed");
      return;
    }
    // The raw puts write the same documents under the same kind of keys, in a prefix of their
    // own (which the daemon does not watch), every round new keys as every round registers new
    // services.
    std::vector<std::pair<std::string, std::string>> kvs;
    if (!EncodeRawPuts(kRounds * kCount, &kvs)) {
      state.SkipWithError("cannot reach etcd or encode a service");
      return;
    }
    // Rounds of a second or so each (one window of each varied the ratio from 0.45 to 0.85
    // between runs of the same code); the figure is the median of the rounds' ratios.
    const bench::RoundsResult rounds =
        bench::RawPutsThenRegistrationsInRounds({EtcdEndpoints()}, kvs, kRounds, {server.channel()},
                                                "Bearer " + AdminToken(), "default", kInFlight);
    if (rounds.failed_puts > 0) {
      state.SkipWithError("raw etcd puts failed");
      return;
    }
    for (const auto& [name, value] : rounds.Counters()) {
      state.counters[name] = value;
    }
  }
}
BENCHMARK(BM_EtcdRegistrationsVsRawPuts)->Iterations(1)->Unit(benchmark::kSecond);

// Latencies in milliseconds of back-to-back GETs of `url` on one keep-alive connection (as one
// Prometheus refreshes), for `window`.
std::vector<double> HttpSdLatencies(const std::string& url, const std::string& authorization,
                                    absl::Duration window, int* errors) {
  HttpClient client(authorization);
  std::vector<double> latencies;
  const absl::Time end = absl::Now() + window;
  while (absl::Now() < end) {
    const absl::Time start = absl::Now();
    if (client.Get(url) != 200) {
      ++*errors;
      continue;
    }
    latencies.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
  }
  return latencies;
}

// http_sd of a 10,000-target namespace, idle and while registrations are written at a steady
// 5,000/s: into another namespace (arg 0, the figure with an aim: p99 at most 2x idle), or into
// the served namespace itself (arg 1, reported without an aim: every write changes the answer,
// which is then rendered again on the next request, never per write).
void BM_HttpSdLatencyUnderWrites(benchmark::State& state) {
  const bool into_served = state.range(0) == 1;
  constexpr int kTargets = 10'000;
  constexpr double kWriteRate = 5000;
  constexpr int kCycles = 5;
  constexpr absl::Duration kWindow = absl::Seconds(3);
  // More than a cycle writes at kWriteRate: every write of the run has its own id.
  constexpr int kWritesPerCycle = 100'000;
  for (auto _ : state) {
    InProcessDaemon server(/*etcd=*/false, "latency");
    if (!server.error().empty() || !server.RegisterServer("p0").ok() ||
        !server.RegisterNamespace("served").ok() || !server.RegisterNamespace("other").ok()) {
      state.SkipWithError("set-up failed");
      return;
    }
    if (!BulkLoad(server, "served", kTargets, absl::Minutes(2))) {
      state.SkipWithError("cannot load the served namespace");
      return;
    }
    const std::string url = server.Url("/v1/sd/p0/served");
    const std::string authorization = "Bearer " + AdminToken();
    int errors = 0;
    // Idle and loaded windows take turns, so that whatever the machine does meanwhile falls on
    // both sides alike; each side's percentiles are over all of its windows.
    std::vector<double> idle;
    std::vector<double> loaded;
    int writes = 0;
    int write_failures = 0;
    double write_seconds = 0;
    for (int cycle = 0; cycle < kCycles; ++cycle) {
      const std::vector<double> quiet = HttpSdLatencies(url, authorization, kWindow, &errors);
      idle.insert(idle.end(), quiet.begin(), quiet.end());

      std::atomic<bool> stop{false};
      bench::LoadResult load;
      std::jthread writer([&] {
        load = bench::RegisterServices({server.channel()}, authorization,
                                       into_served ? "served" : "other",
                                       kTargets + cycle * kWritesPerCycle, kWritesPerCycle,
                                       {.in_flight = 256, .rate = kWriteRate, .stop = &stop});
      });
      absl::SleepFor(absl::Milliseconds(500));  // let the write rate settle before measuring
      const std::vector<double> busy = HttpSdLatencies(url, authorization, kWindow, &errors);
      loaded.insert(loaded.end(), busy.begin(), busy.end());
      stop = true;
      writer.join();
      // The same settling time before the next idle window, so that it does not measure the
      // end of the writes.
      absl::SleepFor(absl::Milliseconds(500));
      writes += load.completed;
      write_seconds += load.per_second > 0 ? load.completed / load.per_second : 0;
      write_failures += load.failed;
    }

    state.counters["idle_p50_ms"] = Percentile(idle, 0.5);
    state.counters["idle_p99_ms"] = Percentile(idle, 0.99);
    state.counters["loaded_p50_ms"] = Percentile(loaded, 0.5);
    state.counters["loaded_p99_ms"] = Percentile(loaded, 0.99);
    state.counters["p99_ratio"] = Percentile(loaded, 0.99) / Percentile(idle, 0.99);
    state.counters["requests_idle"] = static_cast<double>(idle.size());
    state.counters["requests_loaded"] = static_cast<double>(loaded.size());
    state.counters["writes_per_s"] = write_seconds > 0 ? writes / write_seconds : 0;
    state.counters["write_failures"] = write_failures;
    state.counters["http_errors"] = errors;
  }
}
BENCHMARK(BM_HttpSdLatencyUnderWrites)
    ->ArgName("into_served")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

// The file_sd exporter after one registration into a namespace of N services that one server
// scrapes (its file holds all N targets): the exporter's incremental renderer (FileSdRenderer,
// only the changed groups rendered, only their file joined again) vs rendering every file anew
// (DesiredFiles, what the exporter did before), and vs the floor of writing the same bytes to
// the file alone. Each side places and renders the same changes and writes its own directory.
void BM_ExporterUpdateVsFromScratch(benchmark::State& state) {
  const int services = Services();
  constexpr int kChanges = 10;
  for (auto _ : state) {
    const std::filesystem::path root =
        std::filesystem::temp_directory_path() / fmt::format("discovery_fleet_export_{}", getpid());
    std::filesystem::remove_all(root);
    auto initial = std::make_shared<repo::Snapshot>();
    initial->servers["p0"] = Server{.name = "p0"};
    initial->namespaces["fleet"] = Namespace{.name = "fleet"};
    std::vector<std::pair<std::string_view, repo::ServicePtr>> entries;
    entries.reserve(services);
    for (int i = 0; i < services; ++i) {
      entries.emplace_back("", std::make_shared<const Service>(bench::MakeService("fleet", i)));
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.second->id < b.second->id; });
    for (auto& [id, service] : entries) {
      id = service->id;
    }
    initial->services["fleet"] = repo::ServiceMap::FromSorted(std::move(entries));
    // One side: `render` turns each placement into files, written to `directory`. Seconds per
    // change, and the bytes of the last file written.
    const auto run = [&](const std::string& directory,
                         const std::function<exporter::FileSet(const readmodel::Placed&)>& render,
                         size_t* bytes) -> double {
      absl::StatusOr<std::unique_ptr<exporter::FileSdDirectory>> files =
          exporter::FileSdDirectory::Open(root / directory);
      if (!files.ok()) {
        return -1;
      }
      std::shared_ptr<const repo::Snapshot> snapshot = initial;
      std::shared_ptr<const readmodel::Placed> placed =
          readmodel::Placed::Compute(snapshot, nullptr, {});
      if (!(*files)->Apply(render(*placed)).ok()) {
        return -1;
      }
      const absl::Time start = absl::Now();
      for (int i = 0; i < kChanges; ++i) {
        auto next = std::make_shared<repo::Snapshot>(*snapshot);
        auto service = std::make_shared<const Service>(bench::MakeService("fleet", services + i));
        next->services["fleet"] =
            next->services["fleet"].Insert(std::string_view{service->id}, service);
        snapshot = next;
        placed = readmodel::Placed::Compute(snapshot, placed.get(), {});
        const exporter::FileSet rendered = render(*placed);
        if (!(*files)->Apply(rendered).ok() || rendered.empty()) {
          return -1;
        }
        *bytes = rendered.begin()->second.text().size();
      }
      return absl::ToDoubleSeconds(absl::Now() - start) / kChanges;
    };
    exporter::FileSdRenderer renderer;
    std::vector<std::string> problems;
    size_t bytes = 0;
    const double incremental = run(
        "incremental",
        [&](const readmodel::Placed& placed) { return renderer.Update(placed, "p0", &problems); },
        &bytes);
    const double from_scratch = run(
        "from_scratch",
        [&](const readmodel::Placed& placed) {
          return exporter::DesiredFiles(placed, "p0", &problems);
        },
        &bytes);
    // The floor: the same file's bytes, a new copy per change (as any change makes one), written.
    exporter::FileSdRenderer copied;
    const double write_only = run(
        "write_only",
        [&](const readmodel::Placed& placed) {
          exporter::FileSet files;
          for (const auto& [path, content] : copied.Update(placed, "p0", &problems)) {
            files.emplace(path, std::string(content.text()));
          }
          return files;
        },
        &bytes);
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
    if (incremental < 0 || from_scratch < 0 || write_only < 0 || !problems.empty()) {
      state.SkipWithError("rendering or writing the files failed");
      return;
    }
    state.counters["services"] = services;
    state.counters["file_MB"] = static_cast<double>(bytes) / 1e6;
    state.counters["incremental_ms"] = incremental * 1e3;
    state.counters["from_scratch_ms"] = from_scratch * 1e3;
    state.counters["write_only_ms"] = write_only * 1e3;
    state.counters["from_scratch_vs_incremental"] = from_scratch / incremental;
    state.counters["incremental_vs_write_only"] = incremental / write_only;
  }
}
BENCHMARK(BM_ExporterUpdateVsFromScratch)->Iterations(1)->Unit(benchmark::kSecond);

// A real discoveryd process on `data_dir`, for what only a process of its own can show (its
// start-up time and resident memory).
class ChildDaemon {
 public:
  // On the embedded store in `data_dir`, or with `etcd_prefix` on EtcdEndpoints() under it.
  explicit ChildDaemon(const std::filesystem::path& data_dir, const std::string& etcd_prefix = "")
      : grpc_port_(FreePort()), http_port_(FreePort()) {
    std::vector<std::string> args = {DISCOVERYD_BINARY,
                                     "server",
                                     "--data-dir=" + data_dir.string(),
                                     fmt::format("--grpc-listen=127.0.0.1:{}", grpc_port_),
                                     fmt::format("--http-listen=127.0.0.1:{}", http_port_),
                                     std::string("--token-secret=") + bench::kTokenSecret,
                                     std::string("--token-issuer=") + bench::kTokenIssuer,
                                     "--log-format=json"};
    if (!etcd_prefix.empty()) {
      args.push_back(std::string("--etcd-endpoints=") + EtcdEndpoints());
      args.push_back("--etcd-prefix=" + etcd_prefix);
    }
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (std::string& arg : args) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // DISCOVERY_BENCH_DAEMON_LOG names a file the daemons' logs are appended to.
    const char* log = std::getenv("DISCOVERY_BENCH_DAEMON_LOG");  // NOLINT(concurrency-mt-unsafe)
    posix_spawn_file_actions_addopen(&actions, 2, log != nullptr ? log : "/dev/null",
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    // Started as the packaged unit starts it (docs/decisions.md D51), unless this process's
    // environment says otherwise.
    std::vector<char*> envp;
    for (char** variable = environ; *variable != nullptr; ++variable) {
      envp.push_back(*variable);
    }
    std::string tunables = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1";
    if (std::getenv("GLIBC_TUNABLES") == nullptr) {  // NOLINT(concurrency-mt-unsafe)
      envp.push_back(tunables.data());
    }
    envp.push_back(nullptr);
    started_ = absl::Now();
    if (posix_spawn(&pid_, DISCOVERYD_BINARY, &actions, nullptr, argv.data(), envp.data()) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
  }
  ~ChildDaemon() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  ChildDaemon(const ChildDaemon&) = delete;
  ChildDaemon& operator=(const ChildDaemon&) = delete;
  ChildDaemon(ChildDaemon&&) = delete;
  ChildDaemon& operator=(ChildDaemon&&) = delete;

  // Seconds from the spawn until /readyz answers 200; negative on failure.
  double AwaitReady(absl::Duration timeout) const {
    const absl::Time deadline = started_ + timeout;
    while (pid_ > 0 && absl::Now() < deadline) {
      if (HttpGet(Url("/readyz")) == 200) {
        return absl::ToDoubleSeconds(absl::Now() - started_);
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return -1;
  }
  // VmRSS in bytes.
  double ResidentBytes() const { return StatusBytes("VmRSS:"); }
  // VmHWM (the peak of VmRSS so far) in bytes.
  double PeakResidentBytes() const { return StatusBytes("VmHWM:"); }
  std::string Url(std::string_view path) const {
    return fmt::format("http://127.0.0.1:{}{}", http_port_, path);
  }

 private:
  // A "<field> <n> kB" line of /proc/<pid>/status, in bytes.
  double StatusBytes(std::string_view field) const {
    std::ifstream status(fmt::format("/proc/{}/status", pid_));
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with(field)) {
        double kib = 0;
        (void)absl::SimpleAtod(absl::StripAsciiWhitespace(absl::string_view(line).substr(
                                   field.size(), line.size() - field.size() - 3)),
                               &kib);
        return kib * 1024;
      }
    }
    return 0;
  }
  // A loopback port the kernel just handed out and nobody holds; 0 when none could be had (the
  // daemon then fails to start, which the benchmark reports).
  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      return 0;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                       getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
    // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
    close(fd);
    return bound ? ntohs(address.sin_port) : 0;
  }

  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int http_port_ = 0;
  absl::Time started_;
};

// The store BM_LoadReadyMemoryAndJoin fills: the embedded database a daemon opens in `dir`, or a
// connection to EtcdEndpoints() when `etcd`.
absl::StatusOr<std::unique_ptr<store::Store>> OpenLoadStore(bool etcd,
                                                            const std::filesystem::path& dir) {
  if (etcd) {
    store::EtcdOptions options;
    options.endpoints = {EtcdEndpoints()};
    // A million keys in one response take etcd about ten seconds.
    options.request_timeout = absl::Minutes(5);
    return store::ConnectEtcdStore(options);
  }
  return store::OpenEmbeddedStore({.path = (dir / "discovery.db").string()});
}

void BM_LoadReadyMemoryAndJoin(benchmark::State& state) {
  const bool etcd = state.range(0) == 1;
  if (etcd && EtcdEndpoints() == nullptr) {
    state.SkipWithError("set DISCOVERY_BENCH_ETCD_ENDPOINTS");
    return;
  }
  const int services = Services();
  constexpr int kServers = 10;
  // Not "default", which cannot be unregistered.
  constexpr const char* kNamespace = "fleet";
  // etcd refuses transactions of more than 128 operations (--max-txn-ops).
  const int batch = etcd ? 100 : 2000;
  for (auto _ : state) {
    const std::filesystem::path root =
        std::filesystem::temp_directory_path() / fmt::format("discovery_fleet_load_{}", getpid());
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root / "empty");
    std::filesystem::create_directories(root / "full");
    // On etcd each daemon has a prefix of its own.
    const std::string empty_prefix = etcd ? bench::UniquePrefix("loadempty") : "";
    const std::string full_prefix = etcd ? bench::UniquePrefix("loadfull") : "";
    // The same binary on an empty store: the baseline of the memory figure.
    double empty_rss = 0;
    {
      ChildDaemon empty(root / "empty", empty_prefix);
      if (empty.AwaitReady(absl::Seconds(60)) < 0) {
        state.SkipWithError("discoveryd did not start on an empty store");
        return;
      }
      empty_rss = empty.ResidentBytes();
    }
    // N services of two labels on one server, as an operator's fleet would hold them.
    double range_seconds = 0;
    double paged_seconds = 0;
    absl::StatusOr<std::unique_ptr<store::Store>> store = OpenLoadStore(etcd, root / "full");
    if (!store.ok()) {
      state.SkipWithError("cannot open the store");
      return;
    }
    const repo::Keys keys = etcd ? repo::Keys(full_prefix) : repo::Keys();
    {
      repo::Repository repository(**store, keys);
      (void)repository.PutNamespace({.name = kNamespace});
      for (int i = 0; i < kServers; ++i) {
        (void)repository.PutServer({.name = fmt::format("p{:02}", i)});
      }
      BulkPut(**store, repository, kNamespace, 0, services, batch);
      const absl::Time start = absl::Now();
      absl::StatusOr<store::RangeResult> range = (*store)->Range(keys.All());
      range_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      if (!range.ok() || range->kvs.size() < static_cast<size_t>(services)) {
        state.SkipWithError("range read failed");
        return;
      }
      // The same keys read as the daemon's load reads them (Store::RangeInBatches, pages of
      // 4,096 from one snapshot) without decoding them: on etcd much faster than one response.
      size_t paged_keys = 0;
      const absl::Time paged_start = absl::Now();
      const absl::StatusOr<int64_t> paged = (*store)->RangeInBatches(
          keys.All(), 4096,
          [&paged_keys](const std::vector<store::KeyValue>& page) { paged_keys += page.size(); });
      paged_seconds = absl::ToDoubleSeconds(absl::Now() - paged_start);
      if (!paged.ok() || paged_keys != range->kvs.size()) {
        state.SkipWithError("paged range read failed");
        return;
      }
    }
    if (!etcd) {
      store->reset();  // the daemon opens the file itself
    }
    ChildDaemon full(root / "full", full_prefix);
    const double ready_seconds = full.AwaitReady(absl::Minutes(10));
    if (ready_seconds < 0) {
      state.SkipWithError("discoveryd did not get ready on the full store");
      return;
    }
    const double full_rss = full.ResidentBytes();
    // The load's peak: the records as read, their decoding and the first placement's temporaries
    // come on top of what the process keeps.
    const double load_peak_rss = full.PeakResidentBytes();
    const std::string authorization = "Bearer " + AdminToken();
    // Every Prometheus asks for its answer once, as a running fleet's do between joins; the
    // first rendering of them all is reported on its own.
    const absl::Time first_render_start = absl::Now();
    for (int i = 0; i < kServers; ++i) {
      HttpGet(full.Url(fmt::format("/v1/sd/p{:02}/{}", i, kNamespace)), nullptr, authorization);
    }
    const double first_render_seconds = absl::ToDoubleSeconds(absl::Now() - first_render_start);
    // A server joins; done when its answer is non-empty and every other server's answer has
    // been rendered from the new placement.
    const absl::Time join_start = absl::Now();
    HttpClient(authorization).Post(full.Url("/v1/servers"), R"({"name":"joiner"})");
    std::string body;
    while (body.size() <= 2 && absl::Now() - join_start < absl::Minutes(5)) {
      body.clear();
      HttpGet(full.Url(fmt::format("/v1/sd/joiner/{}", kNamespace)), &body, authorization);
    }
    for (int i = 0; i < kServers; ++i) {
      HttpGet(full.Url(fmt::format("/v1/sd/p{:02}/{}", i, kNamespace)), nullptr, authorization);
    }
    const double join_seconds = absl::ToDoubleSeconds(absl::Now() - join_start);
    // A page of 1,000 rows from the middle of the namespace, as the web UI asks for one: only the
    // page is ordered and copied, so neither time nor memory is that of sorting a copy of all.
    const double peak_before_page = full.PeakResidentBytes();
    const absl::Time page_start = absl::Now();
    std::string page;
    const int page_status =
        HttpGet(full.Url(fmt::format("/v1/services?namespace={}&offset={}&limit=1000", kNamespace,
                                     services / 2)),
                &page, authorization);
    const double page_seconds = absl::ToDoubleSeconds(absl::Now() - page_start);
    if (page_status != 200 || !page.starts_with(R"({"services":[{)")) {
      state.SkipWithError(
          fmt::format("a page of the service list: {} {}", page_status, page.substr(0, 200))
              .c_str());
      return;
    }
    const double page_peak_growth = full.PeakResidentBytes() - peak_before_page;
    // The whole list, as the original's clients ask for it (no paging): printed a part at a time,
    // it must not cost memory in proportion to the answer beyond the answer itself.
    const double peak_before_list = full.PeakResidentBytes();
    const absl::Time list_start = absl::Now();
    std::string list;
    const int list_status = HttpGet(full.Url(fmt::format("/v1/services?namespace={}", kNamespace)),
                                    &list, authorization);
    const double list_seconds = absl::ToDoubleSeconds(absl::Now() - list_start);
    const double list_megabytes = static_cast<double>(list.size()) / (1 << 20);
    if (list_status != 200 || !list.starts_with(R"({"services":[{)")) {
      state.SkipWithError(
          fmt::format("the whole service list: {} {}", list_status, list.substr(0, 200)).c_str());
      return;
    }
    std::string().swap(list);
    const double list_peak_growth = full.PeakResidentBytes() - peak_before_list;
    // The namespace is unregistered with all its services: until the answer, and until every
    // http_sd answer is empty.
    HttpClient admin(authorization);
    std::string unregister_answer;
    const absl::Time unregister_start = absl::Now();
    const int unregister_status =
        admin.Delete(full.Url(fmt::format("/v1/namespaces/{}", kNamespace)), &unregister_answer);
    const double unregister_answer_seconds = absl::ToDoubleSeconds(absl::Now() - unregister_start);
    if (unregister_status != 200) {
      state.SkipWithError(
          fmt::format("unregistering the namespace: {} {}", unregister_status, unregister_answer)
              .c_str());
      return;
    }
    // An answer is gone once it is empty or the namespace is unknown.
    for (int i = 0; i < kServers; ++i) {
      while (true) {
        const int status =
            HttpGet(full.Url(fmt::format("/v1/sd/p{:02}/{}", i, kNamespace)), &body, authorization);
        if (status == 404 || (status == 200 && body == "[]")) {
          break;
        }
        if (absl::Now() - unregister_start > absl::Minutes(5)) {
          state.SkipWithError("http_sd still served the unregistered namespace after 5 minutes");
          return;
        }
      }
    }
    const double unregister_seconds = absl::ToDoubleSeconds(absl::Now() - unregister_start);
    state.counters["services"] = services;
    state.counters["range_read_s"] = range_seconds;
    state.counters["ready_s"] = ready_seconds;
    state.counters["ready_vs_range"] = ready_seconds / range_seconds;
    state.counters["paged_read_s"] = paged_seconds;
    state.counters["ready_vs_paged_read"] = ready_seconds / paged_seconds;
    state.counters["rss_empty_MiB"] = empty_rss / (1 << 20);
    state.counters["rss_full_MiB"] = full_rss / (1 << 20);
    state.counters["rss_bytes_per_service"] = (full_rss - empty_rss) / services;
    state.counters["load_peak_rss_MiB"] = load_peak_rss / (1 << 20);
    state.counters["first_render_all_http_sd_s"] = first_render_seconds;
    state.counters["join_to_all_http_sd_s"] = join_seconds;
    state.counters["rest_page_s"] = page_seconds;
    state.counters["rest_page_peak_rss_growth_MiB"] = page_peak_growth / (1 << 20);
    state.counters["rest_list_all_s"] = list_seconds;
    state.counters["rest_list_all_MiB"] = list_megabytes;
    state.counters["rest_list_all_peak_rss_growth_MiB"] = list_peak_growth / (1 << 20);
    state.counters["unregister_answer_s"] = unregister_answer_seconds;
    state.counters["unregister_to_all_http_sd_s"] = unregister_seconds;
    std::error_code ignored;
    std::filesystem::remove_all(root, ignored);
  }
}
BENCHMARK(BM_LoadReadyMemoryAndJoin)
    ->ArgName("etcd")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace
}  // namespace discovery
