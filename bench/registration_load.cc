#include "registration_load.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "percentile.h"

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"

namespace discovery::bench {

namespace pb = ::postfinance::discovery::v1;

Service MakeService(std::string_view ns, int i) {
  Service service;
  service.endpoint = fmt::format("http://{}-host{}.example.com:9100/metrics", ns, i);
  service.id = ServiceId(service.endpoint);
  service.name = "node";
  service.namespace_name = std::string(ns);
  service.labels = {{"datacenter", fmt::format("dc{}", i % 4)},
                    {"team", fmt::format("t{}", i % 16)}};
  service.modified = absl::Now();
  return service;
}

LoadResult RegisterServices(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                            const std::string& authorization, std::string_view ns, int first,
                            int count, const LoadOptions& options) {
  std::vector<std::unique_ptr<pb::ServiceAPI::Stub>> stubs;
  stubs.reserve(channels.size());
  for (const std::shared_ptr<grpc::Channel>& channel : channels) {
    stubs.push_back(pb::ServiceAPI::NewStub(channel));
  }
  grpc::CompletionQueue queue;
  struct Call {
    grpc::ClientContext context;
    pb::RegisterServiceResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<pb::RegisterServiceResponse>> reader;
  };
  LoadResult result;
  int started = 0;
  int in_flight = 0;
  const auto complete = [&](void* tag) {
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    if (!call->status.ok()) {
      ++result.failed;
    }
    ++result.completed;
    --in_flight;
  };
  // Waits for completions until `deadline`, then takes whatever else is ready without waiting.
  const auto reap = [&](absl::Time deadline) {
    void* tag = nullptr;
    bool ok = false;
    while (queue.AsyncNext(&tag, &ok, absl::ToChronoTime(deadline)) ==
           grpc::CompletionQueue::GOT_EVENT) {
      complete(tag);
      // Not InfinitePast: gRPC takes a deadline before the epoch for "never".
      deadline = absl::Now();
    }
  };
  const absl::Time start = absl::Now();
  while (started < count && (options.stop == nullptr || !*options.stop)) {
    const absl::Time due =
        options.rate > 0 ? start + absl::Seconds(started / options.rate) : absl::InfinitePast();
    if (in_flight >= options.in_flight) {
      reap(absl::InfiniteFuture());
      continue;
    }
    if (absl::Now() < due) {
      reap(due);
      continue;
    }
    auto call = std::make_unique<Call>();
    call->context.AddMetadata("authorization", authorization);
    const Service service = MakeService(ns, first + started);
    pb::RegisterServiceRequest request;
    request.set_name(service.name);
    request.set_endpoint(service.endpoint);
    request.set_namespace_(service.namespace_name);
    for (const auto& [key, value] : service.labels) {
      (*request.mutable_labels())[key] = value;
    }
    call->reader = stubs[static_cast<size_t>(started) % stubs.size()]->AsyncRegisterService(
        &call->context, request, &queue);
    Call* tag = call.release();
    tag->reader->Finish(&tag->response, &tag->status, tag);
    ++started;
    ++in_flight;
  }
  while (in_flight > 0) {
    reap(absl::InfiniteFuture());
  }
  result.per_second = result.completed / absl::ToDoubleSeconds(absl::Now() - start);
  queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
  }
  return result;
}

double RawEtcdPuts(const std::vector<std::string>& endpoints,
                   const std::vector<std::pair<std::string, std::string>>& kvs, int threads,
                   int* failures) {
  std::string target = endpoints.front();
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.starts_with(scheme)) {
      target = target.substr(scheme.size());
    }
  }
  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto stub = etcdserverpb::KV::NewStub(channel);
  std::atomic<size_t> next{0};
  std::atomic<int> failed{0};
  const absl::Time start = absl::Now();
  {
    std::vector<std::jthread> writers;
    writers.reserve(threads);
    for (int t = 0; t < threads; ++t) {
      writers.emplace_back([&] {
        for (size_t i = next++; i < kvs.size(); i = next++) {
          etcdserverpb::PutRequest request;
          request.set_key(kvs[i].first);
          request.set_value(kvs[i].second);
          etcdserverpb::PutResponse response;
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          if (!stub->Put(&context, request, &response).ok()) {
            ++failed;
          }
        }
      });
    }
  }
  *failures += failed;
  return static_cast<double>(kvs.size()) / absl::ToDoubleSeconds(absl::Now() - start);
}

std::map<std::string, double> RoundsResult::Counters() const {
  std::map<std::string, double> counters = RoundRatios(registrations_per_s, raw_puts_per_s);
  counters["raw_puts_per_s"] = Percentile(raw_puts_per_s, 0.5);
  counters["registrations_per_s"] = Percentile(registrations_per_s, 0.5);
  counters["failures"] = failed_registrations;
  return counters;
}

RoundsResult RawPutsThenRegistrationsInRounds(
    const std::vector<std::string>& etcd_endpoints,
    const std::vector<std::pair<std::string, std::string>>& kvs, int rounds,
    const std::vector<std::shared_ptr<grpc::Channel>>& channels, const std::string& authorization,
    std::string_view ns, int in_flight) {
  RoundsResult result;
  const auto per_round = static_cast<std::ptrdiff_t>(kvs.size()) / rounds;
  for (int round = 0; round < rounds && result.failed_puts == 0; ++round) {
    const auto begin = kvs.begin() + round * per_round;
    const std::vector<std::pair<std::string, std::string>> round_kvs(begin, begin + per_round);
    result.raw_puts_per_s.push_back(
        RawEtcdPuts(etcd_endpoints, round_kvs, in_flight, &result.failed_puts));
    const LoadResult registrations =
        RegisterServices(channels, authorization, ns, static_cast<int>(round * per_round),
                         static_cast<int>(per_round), {.in_flight = in_flight});
    result.failed_registrations += registrations.failed;
    result.registrations_per_s.push_back(registrations.per_second);
  }
  return result;
}

}  // namespace discovery::bench
