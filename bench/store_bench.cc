// Write throughput of the embedded store on a real file. Every Commit is one fsynced SQLite
// transaction (WAL, synchronous=FULL), so single-put commits measure the durable-commit latency
// and 100-put commits show how much batching amortizes it. items_per_second counts puts.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

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

}  // namespace
}  // namespace discovery::store
