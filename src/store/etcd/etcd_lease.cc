#include "store/etcd/etcd_lease.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

#include "common/status_macros.h"
#include "hash/fnv1a.h"

namespace discovery::store::etcd_internal {
namespace {

// Set leases: 'S' in the top byte and 56 bits of the set's hash. Deadline-second leases have
// "DT" (0x4454) in their top bytes, and etcd's own ids start with the granting member's id, so
// neither can be taken for a set's. 56 bits keep an accidental clash of two sets (which would
// renew each other's keys) at about 1e-5 among a million sets.
constexpr int64_t kSetLeaseTag = int64_t{0x53} << 56;
constexpr int64_t kSetLeaseMask = (int64_t{1} << 56) - 1;

}  // namespace

int64_t SetLeaseId(std::vector<std::string> keys, int64_t ttl_seconds) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  // Length-prefixed, so no two different sets serialise alike.
  std::string set = absl::StrCat("ttl=", ttl_seconds, ";");
  for (const std::string& key : keys) {
    absl::StrAppend(&set, key.size(), ":", key);
  }
  return kSetLeaseTag |
         static_cast<int64_t>(hash::Fnv1a64(set) & static_cast<uint64_t>(kSetLeaseMask));
}

bool IsSetLease(int64_t lease) { return (lease & ~kSetLeaseMask) == kSetLeaseTag; }

int64_t LeaseSeconds(absl::Duration ttl) {
  return std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1))));
}

absl::StatusOr<bool> KeepLeaseAlive(EtcdClient& client, int64_t lease) {
  pb::LeaseKeepAliveRequest request;
  request.set_id(lease);
  pb::LeaseKeepAliveResponse response;
  // LeaseKeepAlive is a stream; one request and its answer is all a renewal needs. Resetting a
  // lease twice is harmless, so a retry is too.
  DISCOVERY_RETURN_IF_ERROR(client.Unary(
      absl::StrCat("lease keepalive ", lease), EtcdClient::Retry::kAlways,
      [&](Endpoint& e, grpc::ClientContext& c) {
        std::unique_ptr<
            grpc::ClientReaderWriter<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>>
            stream = e.lease->LeaseKeepAlive(&c);
        if (!stream->Write(request) || !stream->WritesDone()) {
          return stream->Finish();
        }
        const bool answered = stream->Read(&response);
        grpc::Status status = stream->Finish();
        if (status.ok() && !answered) {
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "lease keepalive: no answer");
        }
        return status;
      }));
  // etcd answers a lease it does not know with TTL 0.
  return response.ttl() > 0;
}

absl::StatusOr<std::optional<absl::Duration>> LeaseTimeLeft(EtcdClient& client, int64_t lease) {
  pb::LeaseTimeToLiveRequest request;
  request.set_id(lease);
  pb::LeaseTimeToLiveResponse response;
  absl::Status status =
      client.Unary(absl::StrCat("lease time-to-live ", lease), EtcdClient::Retry::kAlways,
                   [&](Endpoint& e, grpc::ClientContext& c) {
                     return e.lease->LeaseTimeToLive(&c, request, &response);
                   });
  if (absl::IsNotFound(status) || absl::StrContains(status.message(), "lease not found")) {
    return std::nullopt;
  }
  DISCOVERY_RETURN_IF_ERROR(status);
  // -1: expired or never granted. etcd rounds the time left down to whole seconds (0: under a
  // second, still alive), so the lease ends within the second after: that second's end it is.
  if (response.ttl() < 0) {
    return std::nullopt;
  }
  return absl::Seconds(response.ttl() + 1);
}

absl::StatusOr<std::vector<int64_t>> LeasesAt(EtcdClient& client, const std::vector<KeyAt>& keys) {
  std::vector<int64_t> leases;
  leases.reserve(keys.size());
  for (size_t first = 0; first < keys.size(); first += kMaxRenewalKeys) {
    const size_t end = std::min(keys.size(), first + kMaxRenewalKeys);
    pb::TxnRequest request;
    for (size_t i = first; i < end; ++i) {
      pb::RangeRequest& range = *request.add_success()->mutable_request_range();
      range.set_key(std::string(keys[i].key));
      range.set_revision(keys[i].revision);
      range.set_keys_only(true);
      range.set_serializable(true);
    }
    pb::TxnResponse response;
    DISCOVERY_RETURN_IF_ERROR(client.Unary(
        "lease of keys", EtcdClient::Retry::kAlways,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Txn(&c, request, &response); }));
    if (static_cast<size_t>(response.responses_size()) != end - first) {
      return absl::InternalError(
          absl::StrCat("lease of keys: ", response.responses_size(), " answers to ", end - first));
    }
    for (const pb::ResponseOp& answer : response.responses()) {
      const pb::RangeResponse& range = answer.response_range();
      leases.push_back(range.kvs_size() == 0 ? 0 : range.kvs(0).lease());
    }
  }
  return leases;
}

}  // namespace discovery::store::etcd_internal
