#ifndef DISCOVERY_BENCH_REGISTRATION_LOAD_H_
#define DISCOVERY_BENCH_REGISTRATION_LOAD_H_

// The registration load the benchmarks drive: services as a fleet registers them and a gRPC
// client keeping many RegisterService calls in flight, optionally at a steady rate.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpcpp/grpcpp.h"

#include "model/model.h"

namespace discovery::bench {

// Service `i` of namespace `ns`: a node_exporter endpoint with two labels (4 datacenters, 16
// teams), distinct for every (ns, i).
Service MakeService(std::string_view ns, int i);

struct LoadOptions {
  // Calls outstanding at most.
  int in_flight = 64;
  // Calls started per second (call i at start + i / rate); 0 starts each as soon as a slot is
  // free.
  double rate = 0;
  // Set to end the load early; the calls in flight still complete.
  const std::atomic<bool>* stop = nullptr;
};

struct LoadResult {
  int completed = 0;
  int failed = 0;
  double per_second = 0;  // completed calls per second of the whole run
};

// Registers services [first, first + count) of `ns`, sending call i to channels[i % size], each
// with `authorization` as its metadata.
LoadResult RegisterServices(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                            const std::string& authorization, std::string_view ns, int first,
                            int count, const LoadOptions& options);

// Raw etcd puts, as any etcd client sends them (one KV.Put per key, no transaction, nothing of
// this project in between): `kvs` written from `threads` threads over one channel to the first
// of `endpoints` ("host:port" or "http://host:port"). Puts per second; failed puts add to
// `*failures`.
double RawEtcdPuts(const std::vector<std::string>& endpoints,
                   const std::vector<std::pair<std::string, std::string>>& kvs, int threads,
                   int* failures);

// Raw puts of `kvs` and registrations of as many services of `ns` take turns in `rounds`
// rounds (round r: the r-th slice of `kvs`, then services [r * n, (r + 1) * n) with n =
// kvs.size() / rounds), so that whatever the machine does meanwhile falls on both sides alike.
struct RoundsResult {
  std::vector<double> raw_puts_per_s;
  std::vector<double> registrations_per_s;
  int failed_registrations = 0;
  int failed_puts = 0;

  // The medians of both rates and of the rounds' ratios (the figure), the ratios' range and the
  // failed registrations, named as the benchmarks report them.
  std::map<std::string, double> Counters() const;
};
RoundsResult RawPutsThenRegistrationsInRounds(
    const std::vector<std::string>& etcd_endpoints,
    const std::vector<std::pair<std::string, std::string>>& kvs, int rounds,
    const std::vector<std::shared_ptr<grpc::Channel>>& channels, const std::string& authorization,
    std::string_view ns, int in_flight);

}  // namespace discovery::bench

#endif  // DISCOVERY_BENCH_REGISTRATION_LOAD_H_
