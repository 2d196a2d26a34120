// The etcd backend's client: the channels to every endpoint, failover between them, the auth
// token, and the conversions the store and its watches share. Internal to src/store/etcd.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

#include "common/status_macros.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "store/etcd/etcd_store.h"
#include "store/store.h"

namespace discovery::store::etcd_internal {

namespace pb = ::etcdserverpb;

// etcd reads the auth token from this metadata key (rpctypes.TokenFieldNameGRPC).
constexpr std::string_view kTokenMetadata = "token";

// Pause before a retryable call goes again to the endpoint that just failed it (e.g. "no
// leader" during an election), so the retry loop does not spin.
constexpr absl::Duration kRetryPause = absl::Milliseconds(50);
// Longest single wait on one channel while looking for a connected endpoint; bounds how long a
// destroyed watch handle waits and how late a second endpoint is noticed.
constexpr absl::Duration kConnectPollSlice = absl::Milliseconds(50);

struct Endpoint {
  std::string address;  // host:port, as dialled
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Auth::Stub> auth;
  std::unique_ptr<pb::Cluster::Stub> cluster;
  std::unique_ptr<pb::Lease::Stub> lease;
};

using EndpointPtr = std::shared_ptr<Endpoint>;

// ---------------------------------------------------------------------------------------------
// Conversions

absl::Status FromGrpc(const grpc::Status& status, const std::string& what);

// etcd reports an expired or unknown token this way (rpctypes.ErrGRPCInvalidAuthToken) and a
// missing one as "user name is empty" (e.g. after the token was dropped by a restart).
bool IsAuthTokenError(const grpc::Status& status);

// [key, range_end) covering every key that starts with `prefix`. "\0" as range_end means "to the
// end of the keyspace", and etcd rejects an empty key, so "" becomes ["\0", "\0").
std::pair<std::string, std::string> PrefixRange(std::string_view prefix);

KeyValue FromProto(const mvccpb::KeyValue& kv);

// ---------------------------------------------------------------------------------------------
// EtcdClient: the channels to all endpoints, endpoint failover and the auth token. Shared by the
// store and its watches (a watch may outlive the store object).

class EtcdClient {
 public:
  // Whether a call that failed with Unavailable may be sent again (to another endpoint).
  enum class Retry {
    kAlways,  // reads: repeating them is harmless
    // writes: only when the failing channel was not connected, i.e. the request cannot have
    // reached etcd; otherwise the write may have been applied and the caller must decide
    kIfNotSent,
  };

  static absl::StatusOr<std::shared_ptr<EtcdClient>> Connect(const EtcdOptions& options);

  // Runs `call(endpoint, context)` with the per-request deadline and the auth token, failing
  // over between endpoints on Unavailable and re-authenticating once on a token error.
  // Thread-safe.
  template <typename Call>
  absl::Status Unary(const std::string& what, Retry retry, Call&& call);

  // Waits until some endpoint is connected and returns it (preferring the current one), or
  // nullptr at `until` or as soon as `stop` returns true. Waiting on a channel's state is
  // also what drives its reconnection: a synchronous client's channel only makes progress
  // while some thread polls it (otherwise only gRPC's backup poller, every 5 s, moves it on).
  EndpointPtr WaitForReady(absl::Time until, const std::function<bool()>& stop = {});

  // The endpoint calls go to first: the last one that worked.
  EndpointPtr CurrentEndpoint() const {
    absl::MutexLock lock(&mu_);
    return endpoints_[current_];
  }
  // Moves on to the next endpoint after `failed` failed (unless another caller already did).
  void EndpointFailed(const Endpoint* failed) {
    absl::MutexLock lock(&mu_);
    if (endpoints_[current_].get() == failed) {
      current_ = (current_ + 1) % endpoints_.size();
    }
  }
  // Replaces the endpoints with the client URLs of the cluster's members (Cluster.MemberList)
  // plus the configured ones, keeping the channels of addresses already known. Returns the new
  // endpoint list; an error (and the old list kept) when the call fails or no member URL is usable.
  absl::StatusOr<std::string> SyncMembers();
  std::string EndpointList() const;
  std::string Token() const {
    absl::MutexLock lock(&mu_);
    return token_;
  }
  bool UsesAuth() const { return !username_.empty(); }
  // Fetches a new token unless another thread already replaced `stale_token`.
  absl::Status Reauthenticate(Endpoint& endpoint, const std::string& stale_token);

 private:
  EtcdClient(std::vector<EndpointPtr> endpoints, const EtcdOptions& options,
             std::shared_ptr<grpc::ChannelCredentials> credentials, bool tls)
      : username_(options.username),
        password_(options.password),
        request_timeout_(options.request_timeout),
        credentials_(std::move(credentials)),
        tls_(tls),
        endpoints_(std::move(endpoints)) {
    for (const EndpointPtr& endpoint : endpoints_) {
      configured_.push_back(endpoint->address);
    }
  }

  absl::Status Authenticate(Endpoint& endpoint) ABSL_EXCLUSIVE_LOCKS_REQUIRED(auth_mu_);
  std::vector<EndpointPtr> Endpoints(size_t* current) const {
    absl::MutexLock lock(&mu_);
    *current = current_;
    return endpoints_;
  }

  const std::string username_;
  const std::string password_;
  const absl::Duration request_timeout_;
  // For the channels of members learned later.
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  const bool tls_;
  std::vector<std::string> configured_;  // addresses given at connect; immutable after

  // Serialises re-authentication so concurrent token errors cause one Authenticate call.
  absl::Mutex auth_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  // Never empty; replaced as a whole by SyncMembers. Stubs and channels are thread-safe, and a
  // caller holding an EndpointPtr keeps its channel alive after a sync dropped it.
  std::vector<EndpointPtr> endpoints_ ABSL_GUARDED_BY(mu_);
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  std::string token_ ABSL_GUARDED_BY(mu_);
};

template <typename Call>
absl::Status EtcdClient::Unary(const std::string& what, Retry retry, Call&& call) {
  const absl::Time deadline = absl::Now() + request_timeout_;
  bool reauthenticated = false;
  grpc::Status status;
  EndpointPtr endpoint = CurrentEndpoint();
  while (true) {
    const grpc_connectivity_state before = endpoint->channel->GetState(/*try_to_connect=*/true);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    const std::string token = Token();
    if (!token.empty()) {
      context.AddMetadata(std::string{kTokenMetadata}, token);
    }
    status = call(*endpoint, context);
    if (status.ok()) {
      return absl::OkStatus();
    }
    if (UsesAuth() && !reauthenticated && IsAuthTokenError(status)) {
      reauthenticated = true;
      DISCOVERY_RETURN_IF_ERROR(Reauthenticate(*endpoint, token));
      continue;
    }
    const bool may_retry = retry == Retry::kAlways || before != GRPC_CHANNEL_READY;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || !may_retry) {
      break;
    }
    EndpointFailed(endpoint.get());
    EndpointPtr ready = WaitForReady(deadline);
    if (ready == nullptr) {
      break;
    }
    if (ready == endpoint) {
      if (deadline - absl::Now() <= kRetryPause) {
        break;
      }
      absl::SleepFor(kRetryPause);
    }
    endpoint = std::move(ready);
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat("etcd: ", what, ": cannot reach etcd at ",
                                               EndpointList(), ": ", status.error_message()));
  }
  return FromGrpc(status, what);
}

}  // namespace discovery::store::etcd_internal
