// A service's id (model::ServiceId, a UUIDv5: the SHA-1 of a namespace UUID and the canonical
// endpoint), computed for every registration, against the SHA-1 of the same 16 + endpoint bytes
// through OpenSSL's EVP interface with the digest fetched once, in the same run:
//   BM_ServiceId             ns per id;
//   BM_Sha1OfTheSameBytes    ns per digest of the same bytes.
// Run: build/bench/bench/discovery_bench --benchmark_filter='ServiceId|Sha1'
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <array>
#include <string>
#include <string_view>

#include "model/model.h"

namespace discovery {
namespace {

constexpr std::string_view kEndpoint = "http://host-0042.example.com:9100/metrics";

void BM_ServiceId(benchmark::State& state) {
  for (auto _ : state) {
    std::string id = ServiceId(kEndpoint);
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_ServiceId);

void BM_Sha1OfTheSameBytes(benchmark::State& state) {
  EVP_MD* sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  const std::array<unsigned char, 16> uuid_namespace{};
  for (auto _ : state) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    EVP_DigestInit_ex2(context, sha1, nullptr);
    EVP_DigestUpdate(context, uuid_namespace.data(), uuid_namespace.size());
    EVP_DigestUpdate(context, kEndpoint.data(), kEndpoint.size());
    EVP_DigestFinal_ex(context, digest.data(), &size);
    benchmark::DoNotOptimize(digest);
  }
  EVP_MD_CTX_free(context);
  EVP_MD_free(sha1);
}
BENCHMARK(BM_Sha1OfTheSameBytes);

}  // namespace
}  // namespace discovery
