// Benchmarks of the `discovery` CLI at fleet size, the real binaries on loopback: `discoveryd
// server` on its embedded store (tests/testing/discoveryd_process.h) and the `discovery` CLI as an
// operator runs it.
//   BM_ImportVsRegistration  `discovery service import` of N entries (--max-in-flight 64; the
//                            time includes reading the file) against the registration
//                            benchmark's load (bench/registration_load.h: 64 RegisterService
//                            calls in flight) of N other services, half before the import and
//                            half after, same server, same run: both rates and their ratio.
//   BM_ListJson              `discovery service list -o json` of every service (2N after the
//                            above): wall time, the CLI's peak RSS and the output's size.
//   BM_FilteredLists         `service list` with the filters (-n, -e, -s, -N, --sort-by) over
//                            every service: wall time and rows of each.
//   BM_BackupRestore         the README's backup and restore: `service list -o yaml >
//                            services.yaml` from this server, `service import services.yaml` into
//                            a fresh one, and the count listed there.
// N is 100,000 unless DISCOVERY_CLI_BENCH_SERVICES says otherwise; a list of 1,000,000 services:
//   cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/release --target discovery_cli_bench discoveryd discovery
//   DISCOVERY_CLI_BENCH_SERVICES=500000 build/release/bench/discovery_cli_bench
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "registration_load.h"

#include "client_format/output.h"
#include "testing/discoveryd_process.h"
#include "testing/process.h"

#ifndef DISCOVERYD_BINARY
#error "DISCOVERYD_BINARY must name the discoveryd executable"
#endif
#ifndef DISCOVERY_BINARY
#error "DISCOVERY_BINARY must name the discovery executable"
#endif

namespace discovery::testing {
namespace {

constexpr int kInFlight = 64;

// Set up by main() on the main thread: child processes die with the thread that started them.
DiscoverydProcess* server = nullptr;
std::string work_dir;
std::string admin_token;
int services = 100000;

struct Timed {
  int exit_code = -1;
  double seconds = 0;
  double peak_rss_bytes = 0;
};

// Runs the CLI against `target` with stdout to `stdout_path` (/dev/null when empty), stderr to
// a log in the work dir: its exit code, wall time and peak resident set.
Timed RunCli(const DiscoverydProcess& target, std::vector<std::string> args,
             const std::string& stdout_path = "") {
  const std::string token_path = work_dir + "/token.yaml";
  std::ofstream(token_path) << "machine_token: " << admin_token << "\n";
  std::vector<std::string> argv = {DISCOVERY_BINARY, "--address",    target.grpc_address(),
                                   "--insecure",     "--token-path", token_path};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> pointers;
  pointers.reserve(argv.size() + 1);
  for (std::string& arg : argv) {
    pointers.push_back(arg.data());
  }
  pointers.push_back(nullptr);
  const std::string out = stdout_path.empty() ? "/dev/null" : stdout_path;
  const std::string err = work_dir + "/cli.log";
  const absl::Time start = absl::Now();
  const pid_t pid = fork();
  if (pid == 0) {
    if (std::freopen(out.c_str(), "w", stdout) == nullptr ||
        std::freopen(err.c_str(), "a", stderr) == nullptr) {
      _exit(126);
    }
    execv(pointers[0], pointers.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  Timed timed;
  timed.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  timed.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  timed.peak_rss_bytes = static_cast<double>(usage.ru_maxrss) * 1024;  // Linux: KiB
  return timed;
}

bool SetUpServer(const DiscoverydProcess& target, const std::vector<std::string>& namespaces) {
  if (RunCli(target, {"server", "register", "prometheus1.example.com"}).exit_code != 0) {
    return false;
  }
  return std::all_of(namespaces.begin(), namespaces.end(), [&target](const std::string& ns) {
    return RunCli(target, {"namespace", "register", ns}).exit_code == 0;
  });
}

void BM_ImportVsRegistration(benchmark::State& state) {
  for (auto _ : state) {
    // What `service list -o yaml` prints, of N services the registrations do not touch.
    const std::string file = work_dir + "/import.yaml";
    {
      std::vector<Service> entries;
      entries.reserve(services);
      for (int i = 0; i < services; ++i) {
        entries.push_back(bench::MakeService("imported", i));
      }
      std::ofstream(file) << client_format::FormatServices(
          entries, {.format = client_format::OutputFormat::kYaml});
    }
    // Half the registration load before the import and half after, so that both sides write
    // into a store of N services on average (writes slow down as the store grows).
    const std::shared_ptr<grpc::Channel> channel =
        grpc::CreateChannel(server->grpc_address(), grpc::InsecureChannelCredentials());
    const bench::LoadResult first_half =
        bench::RegisterServices({channel}, "Bearer " + admin_token, "registered", 0, services / 2,
                                {.in_flight = kInFlight});
    const Timed import = RunCli(*server, {"service", "import", "--quiet", "--max-in-flight",
                                          std::to_string(kInFlight), file});
    const bench::LoadResult second_half =
        bench::RegisterServices({channel}, "Bearer " + admin_token, "registered", services / 2,
                                services - services / 2, {.in_flight = kInFlight});
    const double registration_seconds = first_half.completed / first_half.per_second +
                                        second_half.completed / second_half.per_second;
    const double registrations_per_s =
        (first_half.completed + second_half.completed) / registration_seconds;
    const double import_per_s = services / import.seconds;
    state.counters["registrations_per_s"] = registrations_per_s;
    state.counters["import_per_s"] = import_per_s;
    state.counters["ratio"] = import_per_s / registrations_per_s;
    state.counters["registration_failures"] = first_half.failed + second_half.failed;
    state.counters["import_exit"] = import.exit_code;
    std::cout << fmt::format(
        "import of {} entries: {:.0f}/s ({:.1f}s, exit {}); registration load, {} in flight: "
        "{:.0f}/s; ratio {:.2f}\n",
        services, import_per_s, import.seconds, import.exit_code, kInFlight, registrations_per_s,
        import_per_s / registrations_per_s);
  }
}
BENCHMARK(BM_ImportVsRegistration)->Iterations(1)->Unit(benchmark::kSecond);

void BM_ListJson(benchmark::State& state) {
  for (auto _ : state) {
    const std::string output = work_dir + "/services.json";
    const Timed list = RunCli(*server, {"service", "list", "-o", "json"}, output);
    const double bytes = static_cast<double>(std::filesystem::file_size(output));
    std::string content;
    size_t rows = 0;
    {
      std::ifstream in(output);
      for (std::string line; std::getline(in, line);) {
        rows += line.starts_with("    \"id\": ") ? 1 : 0;
      }
    }
    state.counters["services"] = static_cast<double>(rows);
    state.counters["seconds"] = list.seconds;
    state.counters["output_MB"] = bytes / 1e6;
    state.counters["peak_rss_MB"] = list.peak_rss_bytes / 1e6;
    state.counters["rss_per_output"] = list.peak_rss_bytes / bytes;
    state.counters["exit"] = list.exit_code;
    std::cout << fmt::format(
        "service list -o json of {} services: {:.1f}s, output {:.1f} MB, peak RSS {:.1f} MB "
        "({:.2f}x the output), exit {}\n",
        rows, list.seconds, bytes / 1e6, list.peak_rss_bytes / 1e6, list.peak_rss_bytes / bytes,
        list.exit_code);
    std::filesystem::remove(output);
  }
}
BENCHMARK(BM_ListJson)->Iterations(1)->Unit(benchmark::kSecond);

// The filters of `service list` (namespace, endpoint, selector, name, date order) on the whole
// store (2N services): the server applies them to its view, so a list of a few rows out of a
// million should take seconds, not minutes. Each line prints the filter, the wall time and the rows
// printed. It lists what BM_ImportVsRegistration stored, so it runs after that one.
void BM_FilteredLists(benchmark::State& state) {
  const std::vector<std::vector<std::string>> filters = {
      {"-n", "imported"},
      {"-n", "registered", "-e", "host1234\\.example"},
      {"-s", "datacenter=dc1,team=t5"},
      {"-N", "^nothing-matches$"},
      {"-n", "imported", "--sort-by", "date"},
  };
  for (auto _ : state) {
    double slowest = 0;
    for (const std::vector<std::string>& filter : filters) {
      std::vector<std::string> args = {"service", "list", "-o", "csv", "--no-headers"};
      args.insert(args.end(), filter.begin(), filter.end());
      const std::string output = work_dir + "/filtered.csv";
      const Timed list = RunCli(*server, args, output);
      size_t rows = 0;
      {
        std::ifstream in(output);
        for (std::string line; std::getline(in, line);) {
          ++rows;
        }
      }
      slowest = std::max(slowest, list.seconds);
      std::string shown;
      for (const std::string& arg : filter) {
        shown += " " + arg;
      }
      // Flushed: the next RunCli forks, and the child must not write this line again.
      std::cout << fmt::format("service list{}: {:.2f}s, {} rows, exit {}", shown, list.seconds,
                               rows, list.exit_code)
                << std::endl;
      std::filesystem::remove(output);
    }
    state.counters["slowest_filter_seconds"] = slowest;
  }
}
BENCHMARK(BM_FilteredLists)->Iterations(1)->Unit(benchmark::kSecond);

void BM_BackupRestore(benchmark::State& state) {
  for (auto _ : state) {
    const std::string backup = work_dir + "/services.yaml";
    const Timed list = RunCli(*server, {"service", "list", "-o", "yaml"}, backup);
    absl::StatusOr<std::unique_ptr<DiscoverydProcess>> fresh =
        DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY, .debug_logs = false});
    if (!fresh.ok() || !SetUpServer(**fresh, {"registered", "imported"})) {
      state.SkipWithError("cannot start the second server");
      return;
    }
    const Timed restore = RunCli(**fresh, {"service", "import", "--quiet", backup});
    const std::string csv = work_dir + "/restored.csv";
    RunCli(**fresh, {"service", "list", "-o", "csv", "--no-headers"}, csv);
    size_t restored = 0;
    {
      std::ifstream in(csv);
      for (std::string line; std::getline(in, line);) {
        ++restored;
      }
    }
    state.counters["backup_seconds"] = list.seconds;
    state.counters["restore_seconds"] = restore.seconds;
    state.counters["restored"] = static_cast<double>(restored);
    std::cout << fmt::format(
        "backup: service list -o yaml > services.yaml: {:.1f}s, {:.1f} MB, exit {}; restore into "
        "a fresh server: service import services.yaml: {:.1f}s, exit {}; {} services listed "
        "there\n",
        list.seconds, static_cast<double>(std::filesystem::file_size(backup)) / 1e6, list.exit_code,
        restore.seconds, restore.exit_code, restored);
    (void)(*fresh)->Stop();
  }
}
BENCHMARK(BM_BackupRestore)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
}  // namespace discovery::testing

int main(int argc, char** argv) {
  namespace t = discovery::testing;
  benchmark::Initialize(&argc, argv);
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read before any thread starts
  if (const char* n = std::getenv("DISCOVERY_CLI_BENCH_SERVICES"); n != nullptr) {
    t::services = std::atoi(n);
  }
  absl::StatusOr<std::string> dir = t::MakeTempDir("discovery-cli-bench");
  absl::StatusOr<std::unique_ptr<t::DiscoverydProcess>> started =
      t::DiscoverydProcess::Start({.binary = DISCOVERYD_BINARY, .debug_logs = false});
  if (!dir.ok() || !started.ok()) {
    std::cerr << "cannot start discoveryd: " << started.status() << "\n";
    return 1;
  }
  t::work_dir = *dir;
  t::server = started->get();
  absl::StatusOr<std::string> token = t::server->AdminToken();
  if (!token.ok() ||
      (t::admin_token = *token, !t::SetUpServer(*t::server, {"registered", "imported"}))) {
    std::cerr << "cannot set up discoveryd\n";
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  t::server = nullptr;
  std::filesystem::remove_all(t::work_dir);
  return 0;
}
