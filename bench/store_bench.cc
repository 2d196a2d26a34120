// Write throughput of the embedded store on a real file. A lone Commit is one fsynced SQLite
// transaction (WAL, synchronous=FULL), so single-put commits from one thread measure the
// durable-commit latency and 100-put commits show how much batching amortizes it;
// items_per_second counts puts. BM_EmbeddedGroupCommit compares, in one run, the store's own
// batched rate with 64 threads committing single puts, which group commit shares out.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <latch>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

#include "store/embedded/embedded_store.h"
#include "store/store.h"

namespace discovery::store {
namespace {

// A service document is a few hundred bytes of JSON; the key space is reused so the table
// stays at a realistic size instead of growing with the iteration count.
constexpr int kKeySpace = 10'000;
const std::string& Value() {
  static const auto* const value = new std::string(256, 'v');
  return *value;
}

// An embedded store in a fresh temporary directory, removed afterwards.
class TempStore {
 public:
  explicit TempStore(std::string_view name)
      : dir_(std::filesystem::temp_directory_path() /
             absl::StrCat("discovery_store_bench_", getpid(), "_", std::string(name))) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    absl::StatusOr<std::unique_ptr<Store>> opened =
        OpenEmbeddedStore({.path = (dir_ / "store.db").string()});
    if (opened.ok()) {
      store_ = *std::move(opened);
    } else {
      error_ = opened.status().ToString();
    }
  }
  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;
  TempStore(TempStore&&) = delete;
  TempStore& operator=(TempStore&&) = delete;
  ~TempStore() {
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  Store* store() const { return store_.get(); }
  const std::string& error() const { return error_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::string error_;
};

void BM_EmbeddedPutPerCommit(benchmark::State& state) {
  TempStore temp("put");
  if (temp.store() == nullptr) {
    state.SkipWithError(temp.error().c_str());
    return;
  }
  int64_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<TxnResult> result =
        Put(*temp.store(), absl::StrCat("/bench/service/", i++ % kKeySpace), Value());
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EmbeddedPutPerCommit)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Arg: puts per Commit.
void BM_EmbeddedPutBatchPerCommit(benchmark::State& state) {
  TempStore temp("batch");
  if (temp.store() == nullptr) {
    state.SkipWithError(temp.error().c_str());
    return;
  }
  const int64_t batch = state.range(0);
  int64_t i = 0;
  for (auto _ : state) {
    Txn txn;
    txn.ops.reserve(static_cast<size_t>(batch));
    for (int64_t n = 0; n < batch; ++n) {
      txn.ops.push_back(Op::Put(absl::StrCat("/bench/service/", i++ % kKeySpace), Value()));
    }
    absl::StatusOr<TxnResult> result = temp.store()->Commit(txn);
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_EmbeddedPutBatchPerCommit)->Arg(100)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The documents of BM_EmbeddedGroupCommit: services as the registry stores them (key layout of
// repo::Keys, JSON as the Go original writes it), distinct per index.
struct Record {
  std::string key;
  std::string value;
};
std::vector<Record> ServiceRecords(int count) {
  std::vector<Record> records;
  records.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const std::string id = absl::StrCat("93c156b1-f218-5d79-88a5-", absl::Hex(i, absl::kZeroPad12));
    records.push_back(
        {.key = absl::StrCat("/discovery/service/v1/default/", id),
         .value = absl::StrCat(
             R"({"id":")", id, R"(","name":"node","namespace":"default","endpoint":"http://host-)",
             i, R"(.example.com:9100/metrics","labels":{"datacenter":"dc1","team":"infra"},)",
             R"("servers":["prometheus1.example.com"],"selector":"environment=production",)",
             R"("modified":"2021-02-04T15:13:50.085123456+01:00"})")});
  }
  return records;
}

// Seconds since `start`.
double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Each iteration writes the same kWriters * kPutsPerWriter service documents twice, each time
// into a fresh store: (a) from one thread in txns of kBatchPuts puts, (b) from kWriters threads
// each committing single-put txns. Counters: both rates in puts/s, their ratio
// (concurrent / batched), and how many txns shared one SQLite write transaction in (b).
void BM_EmbeddedGroupCommit(benchmark::State& state) {
  constexpr int kWriters = 64;
  constexpr int kPutsPerWriter = 100;
  constexpr int kBatchPuts = 100;
  constexpr int kRecords = kWriters * kPutsPerWriter;
  const std::vector<Record> records = ServiceRecords(kRecords);
  double batched_seconds = 0;
  double concurrent_seconds = 0;
  int64_t commits = 0;
  int64_t write_transactions = 0;
  for (auto _ : state) {
    {
      TempStore temp("group_batched");
      if (temp.store() == nullptr) {
        state.SkipWithError(temp.error().c_str());
        return;
      }
      const auto start = std::chrono::steady_clock::now();
      for (int first = 0; first < kRecords; first += kBatchPuts) {
        Txn txn;
        txn.ops.reserve(kBatchPuts);
        for (int i = first; i < first + kBatchPuts; ++i) {
          txn.ops.push_back(Op::Put(records[i].key, records[i].value));
        }
        absl::StatusOr<TxnResult> result = temp.store()->Commit(txn);
        if (!result.ok()) {
          state.SkipWithError(result.status().ToString().c_str());
          return;
        }
      }
      batched_seconds += SecondsSince(start);
    }
    {
      TempStore temp("group_concurrent");
      if (temp.store() == nullptr) {
        state.SkipWithError(temp.error().c_str());
        return;
      }
      Store& store = *temp.store();
      std::atomic<bool> failed = false;
      std::latch go(1);
      std::vector<std::jthread> writers;
      writers.reserve(kWriters);
      for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
          go.wait();
          for (int i = w * kPutsPerWriter; i < (w + 1) * kPutsPerWriter; ++i) {
            if (!Put(store, records[i].key, records[i].value).ok()) {
              failed = true;
              return;
            }
          }
        });
      }
      // Threads are started before the clock: the time is the writes only.
      const auto start = std::chrono::steady_clock::now();
      go.count_down();
      writers.clear();  // joins
      concurrent_seconds += SecondsSince(start);
      if (failed) {
        state.SkipWithError("a concurrent put failed");
        return;
      }
      absl::StatusOr<EmbeddedStoreStats> stats = GetEmbeddedStoreStats(store);
      if (!stats.ok()) {
        state.SkipWithError(stats.status().ToString().c_str());
        return;
      }
      commits += stats->commits;
      write_transactions += stats->write_transactions;
    }
  }
  const double puts = static_cast<double>(state.iterations()) * kRecords;
  const double batched_rate = puts / batched_seconds;
  const double concurrent_rate = puts / concurrent_seconds;
  state.counters["batched_puts_per_s"] = batched_rate;
  state.counters["concurrent_puts_per_s"] = concurrent_rate;
  state.counters["concurrent_over_batched"] = concurrent_rate / batched_rate;
  state.counters["txns_per_write_txn"] =
      static_cast<double>(commits) / static_cast<double>(std::max<int64_t>(write_transactions, 1));
}
BENCHMARK(BM_EmbeddedGroupCommit)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace discovery::store
