// What grpc++'s server costs per unary call, apart from anything discovery does with the call:
//   BM_CallbackVsAsyncServer  RegisterService calls answered at once (an empty response, no
//                             store, no view) by a server of the callback API, as discoveryd's
//                             gRPC server is written, and by one of the completion-queue (async)
//                             API with a thread per queue on each core; the same client keeps 64
//                             calls in flight to one and then the other, in alternating rounds.
// Reported: calls per second and the process's CPU per call (client and server, both in this
// process; the client's share is the same on both sides, so the difference is the server's),
// the CPU per call of the async server's polling threads (the server's share that runs on
// threads it owns), the medians of the rounds, and the median of the rounds' rate ratios
// async / callback.
// A ratio well above 1 says a rewrite of the server on the async API would pay; near 1, that
// the cost per call is gRPC's transport and not the API style.
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"
#include "percentile.h"
#include "registration_load.h"

#include "postfinance/discovery/v1/service_api.grpc.pb.h"

namespace discovery {
namespace {

namespace pb = ::postfinance::discovery::v1;

constexpr int kInFlight = 64;
constexpr int kRounds = 5;
constexpr int kCallsPerRound = 20'000;

// Answers every RegisterService at once on gRPC's callback threads.
class CallbackService final : public pb::ServiceAPI::CallbackService {
 public:
  using pb::ServiceAPI::CallbackService::RegisterService;
  grpc::ServerUnaryReactor* RegisterService(grpc::CallbackServerContext* context,
                                            const pb::RegisterServiceRequest* /*request*/,
                                            pb::RegisterServiceResponse* /*response*/) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Answers every RegisterService at once from threads of its own, one per completion queue.
class AsyncServer {
 public:
  explicit AsyncServer(int threads) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    for (int i = 0; i < threads; ++i) {
      queues_.push_back(builder.AddCompletionQueue());
    }
    server_ = builder.BuildAndStart();
    for (const std::unique_ptr<grpc::ServerCompletionQueue>& queue : queues_) {
      threads_.emplace_back([this, queue = queue.get()] { Poll(queue); });
    }
  }
  ~AsyncServer() {
    server_->Shutdown();
    for (const std::unique_ptr<grpc::ServerCompletionQueue>& queue : queues_) {
      queue->Shutdown();
    }
    threads_.clear();  // each returns once its queue is drained
  }
  AsyncServer(const AsyncServer&) = delete;
  AsyncServer& operator=(const AsyncServer&) = delete;
  AsyncServer(AsyncServer&&) = delete;
  AsyncServer& operator=(AsyncServer&&) = delete;

  int port() const { return port_; }

  // CPU time its polling threads have used: the part of the server's work per call that runs on
  // threads the server owns (gRPC's own executor threads may do more of it).
  double PollingCpuSeconds() {
    double seconds = 0;
    for (std::jthread& thread : threads_) {
      clockid_t clock{};
      timespec used{};
      if (pthread_getcpuclockid(thread.native_handle(), &clock) == 0 &&
          clock_gettime(clock, &used) == 0) {
        seconds += static_cast<double>(used.tv_sec) + static_cast<double>(used.tv_nsec) / 1e9;
      }
    }
    return seconds;
  }

 private:
  struct Call {
    grpc::ServerContext context;
    pb::RegisterServiceRequest request;
    pb::RegisterServiceResponse response;
    grpc::ServerAsyncResponseWriter<pb::RegisterServiceResponse> responder{&context};
    bool answered = false;
  };

  void Await(grpc::ServerCompletionQueue* queue) {
    auto* call = new Call;
    service_.RequestRegisterService(&call->context, &call->request, &call->responder, queue, queue,
                                    call);
  }

  void Poll(grpc::ServerCompletionQueue* queue) {
    Await(queue);
    void* tag = nullptr;
    bool ok = false;
    while (queue->Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      if (!ok || call->answered) {  // shut down before a call came, or answered
        delete call;
        continue;
      }
      Await(queue);
      call->answered = true;
      call->responder.Finish(call->response, grpc::Status::OK, call);
    }
  }

  pb::ServiceAPI::AsyncService service_;
  int port_ = 0;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::jthread> threads_;
};

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

struct Round {
  double calls_per_s = 0;
  double cpu_us_per_call = 0;
  int failed = 0;
};

Round Drive(const std::shared_ptr<grpc::Channel>& channel, int first) {
  const double cpu = CpuSeconds();
  const bench::LoadResult load = bench::RegisterServices({channel}, "", "bench", first,
                                                         kCallsPerRound, {.in_flight = kInFlight});
  return {.calls_per_s = load.per_second,
          .cpu_us_per_call = (CpuSeconds() - cpu) * 1e6 / kCallsPerRound,
          .failed = load.failed};
}

void BM_CallbackVsAsyncServer(benchmark::State& state) {
  for (auto _ : state) {
    CallbackService callback_service;
    int callback_port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &callback_port);
    builder.RegisterService(&callback_service);
    std::unique_ptr<grpc::Server> callback_server = builder.BuildAndStart();
    AsyncServer async_server(static_cast<int>(std::max(1U, std::thread::hardware_concurrency())));
    const auto channel = [](int port) {
      return grpc::CreateChannel(fmt::format("127.0.0.1:{}", port),
                                 grpc::InsecureChannelCredentials());
    };
    const std::shared_ptr<grpc::Channel> to_callback = channel(callback_port);
    const std::shared_ptr<grpc::Channel> to_async = channel(async_server.port());

    std::vector<double> callback_rates;
    std::vector<double> async_rates;
    std::vector<double> callback_cpu;
    std::vector<double> async_cpu;
    std::vector<double> async_polling_cpu;
    int failed = 0;
    Drive(to_callback, 0);  // both connections up and warm before the first round
    Drive(to_async, 0);
    for (int round = 0; round < kRounds; ++round) {
      const Round by_callback = Drive(to_callback, (2 * round + 1) * kCallsPerRound);
      const double polling = async_server.PollingCpuSeconds();
      const Round by_async = Drive(to_async, (2 * round + 2) * kCallsPerRound);
      async_polling_cpu.push_back((async_server.PollingCpuSeconds() - polling) * 1e6 /
                                  kCallsPerRound);
      callback_rates.push_back(by_callback.calls_per_s);
      async_rates.push_back(by_async.calls_per_s);
      callback_cpu.push_back(by_callback.cpu_us_per_call);
      async_cpu.push_back(by_async.cpu_us_per_call);
      failed += by_callback.failed + by_async.failed;
    }
    callback_server->Shutdown();
    state.counters["callback_calls_per_s"] = bench::Percentile(callback_rates, 0.5);
    state.counters["async_calls_per_s"] = bench::Percentile(async_rates, 0.5);
    state.counters["callback_cpu_us_per_call"] = bench::Percentile(callback_cpu, 0.5);
    state.counters["async_cpu_us_per_call"] = bench::Percentile(async_cpu, 0.5);
    state.counters["async_polling_cpu_us_per_call"] = bench::Percentile(async_polling_cpu, 0.5);
    for (const auto& [name, value] : bench::RoundRatios(async_rates, callback_rates)) {
      state.counters[name] = value;
    }
    state.counters["failed_calls"] = failed;
  }
}
BENCHMARK(BM_CallbackVsAsyncServer)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
}  // namespace discovery
