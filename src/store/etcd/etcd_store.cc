#include "store/etcd/etcd_store.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

#include "common/file.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "store/commit_queue.h"

namespace discovery::store {
namespace {

namespace pb = ::etcdserverpb;

// etcd reads the auth token from this metadata key (rpctypes.TokenFieldNameGRPC).
constexpr std::string_view kTokenMetadata = "token";

// Watch reconnect backoff. Capped low enough that a restarted etcd is picked up quickly, with
// jitter so many watchers of one process do not reconnect in lockstep.
constexpr absl::Duration kWatchBackoffMin = absl::Milliseconds(100);
constexpr absl::Duration kWatchBackoffMax = absl::Seconds(5);
// Pause before a retryable call goes again to the endpoint that just failed it (e.g. "no
// leader" during an election), so the retry loop does not spin.
constexpr absl::Duration kRetryPause = absl::Milliseconds(50);
// Longest single wait on one channel while looking for a connected endpoint; bounds how long a
// destroyed watch handle waits and how late a second endpoint is noticed.
constexpr absl::Duration kConnectPollSlice = absl::Milliseconds(50);

// ---------------------------------------------------------------------------------------------
// Options

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

enum class Scheme { kUnspecified, kHttp, kHttps };

struct ParsedEndpoint {
  std::string address;
  Scheme scheme = Scheme::kUnspecified;
};

absl::StatusOr<ParsedEndpoint> ParseEndpoint(std::string_view endpoint) {
  ParsedEndpoint parsed;
  std::string_view rest = endpoint;
  const std::string quoted = absl::StrCat("etcd endpoint \"", std::string{endpoint}, "\"");
  if (rest.starts_with("http://")) {
    parsed.scheme = Scheme::kHttp;
    rest.remove_prefix(std::string_view("http://").size());
  } else if (rest.starts_with("https://")) {
    parsed.scheme = Scheme::kHttps;
    rest.remove_prefix(std::string_view("https://").size());
  } else if (rest.find("://") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(quoted, ": only http:// and https:// are supported"));
  }
  if (rest.ends_with('/')) {
    rest.remove_suffix(1);
  }
  const size_t colon = rest.rfind(':');
  if (rest.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(quoted, ": want host:port or http(s)://host:port"));
  }
  parsed.address = std::string{rest};
  return parsed;
}

// One TLS item given either inline or as a file, never both: silently preferring one would
// hide a configuration mistake.
absl::StatusOr<std::string> TlsMaterial(const std::string& item, const std::string& pem,
                                        const std::string& file) {
  if (!pem.empty() && !file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("got duplicate ", item, ": both ", item, "_pem and ", item, "_file are set"));
  }
  if (file.empty()) {
    return pem;
  }
  absl::StatusOr<std::string> content = ReadFile(file);
  if (!content.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(item, "_file: ", content.status().message()));
  }
  return content;
}

// `tls` tells whether the credentials are TLS ones.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const EtcdOptions& options, const std::vector<ParsedEndpoint>& endpoints, bool& tls) {
  DISCOVERY_ASSIGN_OR_RETURN(std::string ca, TlsMaterial("ca", options.ca_pem, options.ca_file));
  DISCOVERY_ASSIGN_OR_RETURN(std::string cert,
                             TlsMaterial("cert", options.cert_pem, options.cert_file));
  DISCOVERY_ASSIGN_OR_RETURN(std::string key,
                             TlsMaterial("key", options.key_pem, options.key_file));
  if (!cert.empty() && key.empty()) {
    return absl::InvalidArgumentError("etcd client certificate given without its key");
  }
  if (cert.empty() && !key.empty()) {
    return absl::InvalidArgumentError("etcd client key given without its certificate");
  }
  const bool any_https = std::any_of(endpoints.begin(), endpoints.end(),
                                     [](const auto& e) { return e.scheme == Scheme::kHttps; });
  const bool any_http = std::any_of(endpoints.begin(), endpoints.end(),
                                    [](const auto& e) { return e.scheme == Scheme::kHttp; });
  tls = any_https || !ca.empty() || !cert.empty();
  if (tls && any_http) {
    return absl::InvalidArgumentError(
        "etcd endpoints mix http:// with TLS (https:// endpoints or TLS material)");
  }
  if (!tls) {
    return grpc::InsecureChannelCredentials();
  }
  // An empty CA means gRPC's default (system) roots: verification is never turned off, even
  // when only a client certificate was given.
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = std::move(ca);
  ssl.pem_cert_chain = std::move(cert);
  ssl.pem_private_key = std::move(key);
  return grpc::SslCredentials(ssl);
}

grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  // etcd's own client allows ranges up to 2 GiB; gRPC's 4 MiB default would fail large prefixes.
  args.SetMaxReceiveMessageSize(INT_MAX);
  // gRPC's default reconnect backoff grows to 120 s, far too slow to notice a restarted etcd.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Despite its name this is the minimum connect timeout. Shorter than etcd's start-up it would
  // abort every attempt made while etcd is still starting (it accepts but does not yet answer).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  // Watch streams are idle for long stretches; keepalive detects a silently dead peer. etcd
  // rejects pings more often than every 5 s (--grpc-keepalive-min-time).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

EndpointPtr MakeEndpoint(std::string address,
                         const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  auto endpoint = std::make_shared<Endpoint>();
  endpoint->channel = grpc::CreateCustomChannel(address, credentials, ChannelArgs());
  endpoint->address = std::move(address);
  endpoint->kv = pb::KV::NewStub(endpoint->channel);
  endpoint->watch = pb::Watch::NewStub(endpoint->channel);
  endpoint->auth = pb::Auth::NewStub(endpoint->channel);
  endpoint->cluster = pb::Cluster::NewStub(endpoint->channel);
  endpoint->lease = pb::Lease::NewStub(endpoint->channel);
  return endpoint;
}

// ---------------------------------------------------------------------------------------------
// Conversions

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  return {static_cast<absl::StatusCode>(status.error_code()),
          absl::StrCat("etcd: ", what, ": ", status.error_message())};
}

// etcd reports an expired or unknown token this way (rpctypes.ErrGRPCInvalidAuthToken) and a
// missing one as "user name is empty" (e.g. after the token was dropped by a restart).
bool IsAuthTokenError(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         absl::StrContains(status.error_message(), "invalid auth token") ||
         absl::StrContains(status.error_message(), "user name is empty");
}

// [key, range_end) covering every key that starts with `prefix`. "\0" as range_end means "to the
// end of the keyspace", and etcd rejects an empty key, so "" becomes ["\0", "\0").
std::pair<std::string, std::string> PrefixRange(std::string_view prefix) {
  const std::string nul(1, '\0');
  if (prefix.empty()) {
    return {nul, nul};
  }
  std::string end = PrefixEnd(prefix);
  if (end.empty()) {
    return {std::string{prefix}, nul};
  }
  return {std::string{prefix}, std::move(end)};
}

KeyValue FromProto(const mvccpb::KeyValue& kv) {
  return KeyValue{.key = kv.key(),
                  .value = kv.value(),
                  .create_revision = kv.create_revision(),
                  .mod_revision = kv.mod_revision(),
                  .version = kv.version()};
}

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

absl::StatusOr<std::shared_ptr<EtcdClient>> EtcdClient::Connect(const EtcdOptions& options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("no etcd endpoints given");
  }
  if (options.username.empty() && !options.password.empty()) {
    return absl::InvalidArgumentError("etcd password given without a username");
  }
  if (options.dial_timeout <= absl::ZeroDuration() ||
      options.request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("etcd dial_timeout and request_timeout must be positive");
  }
  std::vector<ParsedEndpoint> parsed;
  for (const std::string& endpoint : options.endpoints) {
    DISCOVERY_ASSIGN_OR_RETURN(ParsedEndpoint p, ParseEndpoint(endpoint));
    parsed.push_back(std::move(p));
  }
  bool tls = false;
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                             Credentials(options, parsed, tls));
  // One channel per endpoint rather than one multi-address channel: failover stays explicit and
  // each endpoint may resolve through DNS on its own.
  std::vector<EndpointPtr> endpoints;
  endpoints.reserve(parsed.size());
  for (ParsedEndpoint& p : parsed) {
    endpoints.push_back(MakeEndpoint(std::move(p.address), credentials));
  }
  std::shared_ptr<EtcdClient> client(
      new EtcdClient(std::move(endpoints), options, std::move(credentials), tls));
  if (!client->WaitForReady(absl::Now() + options.dial_timeout)) {
    return absl::UnavailableError(absl::StrCat("cannot reach etcd at ", client->EndpointList(),
                                               ": no endpoint connected within ",
                                               absl::FormatDuration(options.dial_timeout)));
  }
  if (client->UsesAuth()) {
    absl::MutexLock lock(&client->auth_mu_);
    DISCOVERY_RETURN_IF_ERROR(client->Authenticate(*client->CurrentEndpoint()));
  }
  return client;
}

std::string EtcdClient::EndpointList() const {
  absl::MutexLock lock(&mu_);
  return absl::StrJoin(endpoints_, ",",
                       [](std::string* out, const EndpointPtr& e) { out->append(e->address); });
}

EndpointPtr EtcdClient::WaitForReady(absl::Time until, const std::function<bool()>& stop) {
  // Every endpoint dials in parallel; the first one ready wins.
  for (size_t round = 0;; ++round) {
    size_t first = 0;
    const std::vector<EndpointPtr> endpoints = Endpoints(&first);
    const size_t n = endpoints.size();
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (first + k) % n;
      if (endpoints[i]->channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) {
        absl::MutexLock lock(&mu_);
        // Unless a sync replaced the list meanwhile; then the next failure moves on.
        if (i < endpoints_.size() && endpoints_[i] == endpoints[i]) {
          current_ = i;
        }
        return endpoints[i];
      }
    }
    const absl::Time now = absl::Now();
    if (now >= until || (stop && stop())) {
      return nullptr;
    }
    // Returns early when this channel changes state; other channels are looked at next round.
    const EndpointPtr& watched = endpoints[round % n];
    watched->channel->WaitForStateChange(
        watched->channel->GetState(false),
        absl::ToChronoTime(std::min(until, now + kConnectPollSlice)));
  }
}

absl::StatusOr<std::string> EtcdClient::SyncMembers() {
  pb::MemberListRequest request;
  pb::MemberListResponse response;
  if (absl::Status status = Unary("member list", Retry::kAlways,
                                  [&](Endpoint& e, grpc::ClientContext& c) {
                                    return e.cluster->MemberList(&c, request, &response);
                                  });
      !status.ok()) {
    return status;
  }
  std::vector<std::string> addresses;
  for (const pb::Member& member : response.members()) {
    for (const std::string& url : member.clienturls()) {
      absl::StatusOr<ParsedEndpoint> parsed = ParseEndpoint(url);
      // A URL of the other scheme would need other credentials than those configured.
      if (!parsed.ok() || (parsed->scheme == Scheme::kHttps) != tls_) {
        continue;
      }
      if (std::find(addresses.begin(), addresses.end(), parsed->address) == addresses.end()) {
        addresses.push_back(std::move(parsed->address));
      }
    }
  }
  if (addresses.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "etcd: member list: no member has a usable client URL (", tls_ ? "https" : "http", ")"));
  }
  std::sort(addresses.begin(), addresses.end());
  // The configured endpoints stay too: a member may advertise a URL only reachable from its own
  // host (Debian's default is http://localhost:2379), and then the configured one still works.
  std::for_each(configured_.rbegin(), configured_.rend(), [&addresses](const std::string& address) {
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.insert(addresses.begin(), address);
    }
  });
  size_t current = 0;
  const std::vector<EndpointPtr> known = Endpoints(&current);
  std::vector<EndpointPtr> next;
  for (std::string& address : addresses) {
    auto it = std::find_if(known.begin(), known.end(),
                           [&](const EndpointPtr& e) { return e->address == address; });
    next.push_back(it != known.end() ? *it : MakeEndpoint(std::move(address), credentials_));
  }
  absl::MutexLock lock(&mu_);
  const EndpointPtr was_current = endpoints_[current_];
  endpoints_ = std::move(next);
  auto it = std::find(endpoints_.begin(), endpoints_.end(), was_current);
  current_ = it == endpoints_.end() ? 0 : static_cast<size_t>(it - endpoints_.begin());
  return absl::StrJoin(endpoints_, ",",
                       [](std::string* out, const EndpointPtr& e) { out->append(e->address); });
}

absl::Status EtcdClient::Authenticate(Endpoint& endpoint) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + request_timeout_));
  pb::AuthenticateRequest request;
  request.set_name(username_);
  request.set_password(password_);
  pb::AuthenticateResponse response;
  const grpc::Status status = endpoint.auth->Authenticate(&context, request, &response);
  if (!status.ok()) {
    // etcd answers wrong credentials with InvalidArgument (ErrGRPCAuthFailed); callers expect
    // the canonical code for "who you say you are is not accepted".
    if (absl::StrContains(status.error_message(), "authentication failed")) {
      return absl::UnauthenticatedError(
          absl::StrCat("etcd: authenticate as ", username_, ": ", status.error_message()));
    }
    return FromGrpc(status, absl::StrCat("authenticate as ", username_));
  }
  absl::MutexLock lock(&mu_);
  token_ = response.token();
  return absl::OkStatus();
}

absl::Status EtcdClient::Reauthenticate(Endpoint& endpoint, const std::string& stale_token) {
  absl::MutexLock auth_lock(&auth_mu_);
  if (Token() != stale_token) {
    return absl::OkStatus();
  }
  return Authenticate(endpoint);
}

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

// ---------------------------------------------------------------------------------------------
// EtcdWatch: one Watch bidi stream on its own thread, re-opened after failures.

class EtcdWatch final : public WatchHandle {
 public:
  // Starts watching `prefix` from `start_revision` (> 0) right away.
  EtcdWatch(std::shared_ptr<EtcdClient> client, std::string_view prefix, int64_t start_revision,
            WatchCallback callback)
      : client_(std::move(client)),
        range_(PrefixRange(prefix)),
        callback_(std::move(callback)),
        next_revision_(start_revision) {
    thread_ = std::jthread([this] { Run(); });
  }

  ~EtcdWatch() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (context_ != nullptr) {
        context_->TryCancel();
      }
    }
    thread_.join();
  }

  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;
  EtcdWatch(EtcdWatch&&) = delete;
  EtcdWatch& operator=(EtcdWatch&&) = delete;

 private:
  enum class StreamEnd { kFailed, kCompacted, kStopped };

  void Run();
  // Runs one stream until it fails, the watch is compacted away, or the handle is destroyed.
  // `established` is set once etcd confirmed the watch (resets the backoff).
  StreamEnd RunStream(grpc::ClientContext& context, Endpoint& endpoint, bool& established);
  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }
  // Returns false when the handle is being destroyed.
  bool SleepUnlessStopping(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    return !mu_.AwaitWithTimeout(absl::Condition(&stopping_), duration);
  }

  const std::shared_ptr<EtcdClient> client_;
  const std::pair<std::string, std::string> range_;
  const WatchCallback callback_;
  // Only touched by the watch thread: the first revision not yet delivered.
  int64_t next_revision_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The running stream's context, so the destructor can cancel a blocked Read.
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;

  // Last member: started after everything it uses is initialised.
  std::jthread thread_;
};

void EtcdWatch::Run() {
  absl::BitGen random;
  absl::Duration backoff = kWatchBackoffMin;
  // The token the last failed stream used, when it should be replaced before the next one.
  std::optional<std::string> stale_token;
  while (true) {
    const EndpointPtr ready =
        client_->WaitForReady(absl::InfiniteFuture(), [this] { return Stopping(); });
    if (ready == nullptr) {
      return;
    }
    Endpoint& endpoint = *ready;
    if (stale_token) {
      // Failure here only means the next stream fails too and we come back with backoff.
      (void)client_->Reauthenticate(endpoint, *stale_token);
      stale_token.reset();
    }
    grpc::ClientContext context;
    const std::string token = client_->Token();
    if (!token.empty()) {
      context.AddMetadata(std::string{kTokenMetadata}, token);
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        return;
      }
      context_ = &context;
    }
    bool established = false;
    const StreamEnd end = RunStream(context, endpoint, established);
    {
      absl::MutexLock lock(&mu_);
      context_ = nullptr;
      if (stopping_ || end != StreamEnd::kFailed) {
        return;
      }
    }
    if (established) {
      backoff = kWatchBackoffMin;
    }
    if (client_->UsesAuth()) {
      // etcd 3.4 refuses a watch with an unknown token as "permission denied", so any failure
      // may be an expired or forgotten token; a refresh costs one RPC per failed stream.
      stale_token = token;
    }
    client_->EndpointFailed(ready.get());
    if (!SleepUnlessStopping(backoff * absl::Uniform(random, 0.8, 1.2))) {
      return;
    }
    backoff = std::min(backoff * 2, kWatchBackoffMax);
  }
}

EtcdWatch::StreamEnd EtcdWatch::RunStream(grpc::ClientContext& context, Endpoint& endpoint,
                                          bool& established) {
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream =
      endpoint.watch->Watch(&context);
  pb::WatchRequest request;
  pb::WatchCreateRequest& create = *request.mutable_create_request();
  create.set_key(range_.first);
  create.set_range_end(range_.second);
  create.set_start_revision(next_revision_);
  StreamEnd end = StreamEnd::kFailed;
  if (stream->Write(request)) {
    pb::WatchResponse response;
    while (stream->Read(&response)) {
      if (response.compact_revision() != 0) {
        callback_(WatchResponse{.revision = response.header().revision(),
                                .compact_revision = response.compact_revision()});
        end = StreamEnd::kCompacted;
        context.TryCancel();
        break;
      }
      if (response.canceled()) {
        // Not a compaction (e.g. a permission or token problem): the stream is retried.
        break;
      }
      if (response.created()) {
        established = true;
      }
      WatchResponse delivery{.revision = response.header().revision()};
      for (const mvccpb::Event& event : response.events()) {
        // After a reconnect etcd replays from next_revision_; anything older was delivered.
        if (event.kv().mod_revision() < next_revision_) {
          continue;
        }
        delivery.events.push_back(WatchEvent{.type = event.type() == mvccpb::Event::DELETE
                                                         ? WatchEvent::Type::kDelete
                                                         : WatchEvent::Type::kPut,
                                             .kv = FromProto(event.kv())});
      }
      // etcd never splits one revision's events over two messages (it batches whole
      // revisions), so one message is one delivery and a transaction stays together.
      if (!delivery.events.empty()) {
        next_revision_ = delivery.events.back().kv.mod_revision + 1;
        callback_(delivery);
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && end == StreamEnd::kFailed) {
      end = StreamEnd::kStopped;
    }
  }
  context.TryCancel();
  pb::WatchResponse ignored;
  while (stream->Read(&ignored)) {
  }
  (void)stream->Finish();
  return end;
}

// ---------------------------------------------------------------------------------------------
// EtcdStore

class EtcdStore final : public Store {
 public:
  EtcdStore(std::shared_ptr<EtcdClient> client, absl::Duration auto_sync_interval)
      : client_(std::move(client)) {
    if (auto_sync_interval > absl::ZeroDuration()) {
      sync_ = std::jthread([this, auto_sync_interval] { SyncMembers(auto_sync_interval); });
    }
  }

  ~EtcdStore() override {
    absl::MutexLock lock(&sync_mu_);
    stopping_ = true;
  }  // sync_, the last member, is joined first
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;
  EtcdStore(EtcdStore&&) = delete;
  EtcdStore& operator=(EtcdStore&&) = delete;

  absl::StatusOr<KeyValue> Get(std::string_view key) override {
    pb::RangeRequest request;
    request.set_key(std::string{key});
    pb::RangeResponse response;
    DISCOVERY_RETURN_IF_ERROR(client_->Unary(
        absl::StrCat("get ", std::string{key}), EtcdClient::Retry::kAlways,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Range(&c, request, &response); }));
    if (response.kvs_size() == 0) {
      return absl::NotFoundError(absl::StrCat("key not found: ", std::string{key}));
    }
    return FromProto(response.kvs(0));
  }

  absl::StatusOr<RangeResult> Range(std::string_view prefix) override {
    auto [key, range_end] = PrefixRange(prefix);
    pb::RangeRequest request;
    request.set_key(std::move(key));
    request.set_range_end(std::move(range_end));
    pb::RangeResponse response;
    DISCOVERY_RETURN_IF_ERROR(client_->Unary(
        absl::StrCat("range ", std::string{prefix}), EtcdClient::Retry::kAlways,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Range(&c, request, &response); }));
    RangeResult result{.revision = response.header().revision()};
    result.kvs.reserve(response.kvs_size());
    for (const mvccpb::KeyValue& kv : response.kvs()) {
      result.kvs.push_back(FromProto(kv));
    }
    return result;
  }

  // Concurrent commits that cannot interfere share one etcd transaction (group commit): one
  // round trip, one raft entry and one fsync for the lot, instead of one each. Txns join a batch
  // only if their result is what running them one after another would give (see Mergeable); a
  // batch whose compares fail is retried one txn at a time, so each gets its own answer.
  absl::StatusOr<TxnResult> Commit(const Txn& txn) override {
    for (int attempt = 1;; ++attempt) {
      DISCOVERY_RETURN_IF_ERROR(EnsureLeases(txn));
      PendingCommit self{.txn = &txn};
      queue_.Commit(self);
      if (attempt == 1 && LeaseWasLost(self.result)) {
        ForgetLeases(txn);
        continue;
      }
      return std::move(self.result);
    }
  }

  void CommitAsync(Txn txn, CommitCallback done) override {
    SubmitAsync(std::make_unique<AsyncCommit>(std::move(txn), std::move(done)), /*attempt=*/1);
  }

  int64_t LeasesGranted() const { return leases_granted_.load(std::memory_order_relaxed); }

  EtcdStoreStats Stats() const {
    return {.commits = commits_.load(std::memory_order_relaxed),
            .transactions = transactions_.load(std::memory_order_relaxed)};
  }

  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix,
                                                     int64_t start_revision,
                                                     WatchCallback callback) override {
    if (start_revision < 0) {
      return absl::InvalidArgumentError("watch start_revision must not be negative");
    }
    if (start_revision == 0) {
      // "From now on" is pinned here rather than left to etcd, so a write that follows this
      // call is seen even if the stream is set up after it.
      DISCOVERY_ASSIGN_OR_RETURN(int64_t current, CurrentRevision());
      start_revision = current + 1;
    }
    return std::make_unique<EtcdWatch>(client_, prefix, start_revision, std::move(callback));
  }

  absl::StatusOr<int64_t> CurrentRevision() override {
    // Any key will do: the header carries the store revision. A linearizable single-key
    // count_only range is the cheapest read etcd confirms through the leader.
    pb::RangeRequest request;
    request.set_key(std::string(1, '\0'));
    request.set_count_only(true);
    request.set_limit(1);
    pb::RangeResponse response;
    DISCOVERY_RETURN_IF_ERROR(client_->Unary(
        "current revision", EtcdClient::Retry::kAlways,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Range(&c, request, &response); }));
    return response.header().revision();
  }

 private:
  // etcd refuses a transaction of more than --max-txn-ops (128 by default) operations or
  // compares, or of more than --max-request-bytes (1.5 MiB by default).
  static constexpr size_t kMaxBatchOps = 128;
  static constexpr size_t kMaxBatchBytes = 1 << 20;

  // A commit in the queue, on its Commit() caller's stack or in its AsyncCommit. CommitQueue
  // owns `done` and `then`; the committer writes `result` before either.
  struct PendingCommit {
    const Txn* txn = nullptr;
    absl::StatusOr<TxnResult> result = absl::UnknownError("not committed");
    bool done = false;
    absl::AnyInvocable<void() &&> then;
  };

  // A CommitAsync() call: owns its txn until the continuation answers it.
  struct AsyncCommit {
    AsyncCommit(Txn txn_in, CommitCallback done_in)
        : txn(std::move(txn_in)), done(std::move(done_in)) {}
    Txn txn;
    CommitCallback done;
    PendingCommit pending{.txn = &txn};
  };

  // A lease this process granted may be gone all the same (etcd restored from a backup, a lease
  // revoked by hand): the commit grants it again once.
  static bool LeaseWasLost(const absl::StatusOr<TxnResult>& result) {
    return !result.ok() && absl::IsNotFound(result.status()) &&
           absl::StrContains(result.status().message(), "lease");
  }

  void SubmitAsync(std::unique_ptr<AsyncCommit> commit, int attempt) {
    // Granting a lease is a round trip of its own, but only the first commit of a deadline
    // second waits for it.
    if (absl::Status leases = EnsureLeases(commit->txn); !leases.ok()) {
      std::move(commit->done)(std::move(leases));
      return;
    }
    AsyncCommit* raw = commit.release();
    queue_.Submit(raw->pending, [this, raw, attempt] {
      std::unique_ptr<AsyncCommit> owned(raw);
      if (attempt == 1 && LeaseWasLost(owned->pending.result)) {
        ForgetLeases(owned->txn);
        SubmitAsync(std::move(owned), attempt + 1);
        return;
      }
      std::move(owned->done)(std::move(owned->pending.result));
    });
  }

  // What a batch has touched so far.
  struct BatchKeys {
    std::set<std::string_view> written;
    std::map<std::string_view, int64_t> compared;  // key -> the mod_revision required
    size_t ops = 0;
    size_t bytes = 0;
  };

  // Whether `txn` can run in one etcd transaction with the txns behind `keys` and answer as it
  // would alone: only puts and single-key deletes, no key written twice, no key one txn writes
  // and another compares (compares see the state before the whole batch), the same revision
  // wherever a key is compared, and within etcd's limits.
  static bool Mergeable(const Txn& txn, const BatchKeys& keys) {
    if (txn.ops.empty()) {
      return false;
    }
    size_t bytes = 0;
    std::set<std::string_view> written;
    for (const Op& op : txn.ops) {
      if (op.type == Op::Type::kDeletePrefix || !written.insert(op.key).second ||
          keys.written.contains(op.key) || keys.compared.contains(op.key)) {
        return false;
      }
      bytes += op.key.size() + op.value.size();
    }
    size_t new_compares = 0;
    for (const Compare& compare : txn.compares) {
      if (written.contains(compare.key) || keys.written.contains(compare.key)) {
        return false;
      }
      auto it = keys.compared.find(compare.key);
      if (it == keys.compared.end()) {
        ++new_compares;
        bytes += compare.key.size();
      } else if (it->second != compare.mod_revision) {
        return false;
      }
    }
    return keys.ops + txn.ops.size() <= kMaxBatchOps &&
           keys.compared.size() + new_compares <= kMaxBatchOps &&
           keys.bytes + bytes <= kMaxBatchBytes;
  }

  static void Add(const Txn& txn, BatchKeys& keys) {
    for (const Op& op : txn.ops) {
      keys.written.insert(op.key);
      keys.bytes += op.key.size() + op.value.size();
    }
    for (const Compare& compare : txn.compares) {
      if (keys.compared.emplace(compare.key, compare.mod_revision).second) {
        keys.bytes += compare.key.size();
      }
    }
    keys.ops += txn.ops.size();
  }

  // The oldest queued commit and the ones right behind it that merge with it.
  static std::vector<PendingCommit*> TakeBatch(std::deque<PendingCommit*>& queue) {
    std::vector<PendingCommit*> batch = {queue.front()};
    queue.pop_front();
    BatchKeys keys;
    if (!Mergeable(*batch.front()->txn, keys)) {
      return batch;
    }
    Add(*batch.front()->txn, keys);
    while (!queue.empty() && Mergeable(*queue.front()->txn, keys)) {
      Add(*queue.front()->txn, keys);
      batch.push_back(queue.front());
      queue.pop_front();
    }
    return batch;
  }

  void ApplyBatch(const std::vector<PendingCommit*>& batch) {
    if (batch.size() == 1) {
      batch.front()->result = CommitOne(*batch.front()->txn);
      return;
    }
    pb::TxnRequest request;
    std::set<std::string_view> compared;
    for (const PendingCommit* pending : batch) {
      for (const Compare& compare : pending->txn->compares) {
        if (compared.insert(compare.key).second) {
          AddCompare(compare, request);
        }
      }
      for (const Op& op : pending->txn->ops) {
        AddOp(op, request);
      }
    }
    absl::StatusOr<pb::TxnResponse> response = Send(request);
    if (!response.ok()) {
      for (PendingCommit* pending : batch) {
        pending->result = response.status();
      }
      return;
    }
    if (!response->succeeded()) {
      // Some compare failed: which txns it fails is only known one by one.
      for (PendingCommit* pending : batch) {
        pending->result = CommitOne(*pending->txn);
      }
      return;
    }
    int index = 0;
    for (PendingCommit* pending : batch) {
      TxnResult result{.succeeded = true, .revision = response->header().revision()};
      for (size_t i = 0; i < pending->txn->ops.size(); ++i, ++index) {
        const pb::ResponseOp& op = response->responses(index);
        if (op.has_response_delete_range()) {
          result.deleted += op.response_delete_range().deleted();
        }
      }
      pending->result = result;
    }
  }

  static void AddCompare(const Compare& compare, pb::TxnRequest& request) {
    pb::Compare& c = *request.add_compare();
    c.set_result(pb::Compare::EQUAL);
    c.set_target(pb::Compare::MOD);
    c.set_key(compare.key);
    // A missing key compares as mod_revision 0, which is exactly our "does not exist".
    c.set_mod_revision(compare.mod_revision);
  }

  static void AddOp(const Op& op, pb::TxnRequest& request) {
    pb::RequestOp& r = *request.add_success();
    switch (op.type) {
      case Op::Type::kPut:
        r.mutable_request_put()->set_key(op.key);
        r.mutable_request_put()->set_value(op.value);
        if (op.expires != absl::InfiniteFuture()) {
          r.mutable_request_put()->set_lease(LeaseId(DeadlineSecond(op.expires)));
        }
        break;
      case Op::Type::kDelete:
        r.mutable_request_delete_range()->set_key(op.key);
        break;
      case Op::Type::kDeletePrefix: {
        auto [key, range_end] = PrefixRange(op.key);
        r.mutable_request_delete_range()->set_key(std::move(key));
        r.mutable_request_delete_range()->set_range_end(std::move(range_end));
        break;
      }
    }
  }

  absl::StatusOr<pb::TxnResponse> Send(const pb::TxnRequest& request) {
    transactions_.fetch_add(1, std::memory_order_relaxed);
    pb::TxnResponse response;
    DISCOVERY_RETURN_IF_ERROR(client_->Unary(
        "commit", EtcdClient::Retry::kIfNotSent,
        [&](Endpoint& e, grpc::ClientContext& c) { return e.kv->Txn(&c, request, &response); }));
    return response;
  }

  absl::StatusOr<TxnResult> CommitOne(const Txn& txn) {
    pb::TxnRequest request;
    for (const Compare& compare : txn.compares) {
      AddCompare(compare, request);
    }
    for (const Op& op : txn.ops) {
      AddOp(op, request);
    }
    DISCOVERY_ASSIGN_OR_RETURN(pb::TxnResponse response, Send(request));
    TxnResult result{.succeeded = response.succeeded(), .revision = response.header().revision()};
    for (const pb::ResponseOp& r : response.responses()) {
      if (r.has_response_delete_range()) {
        result.deleted += r.response_delete_range().deleted();
      }
    }
    return result;
  }

  // Expiring keys share one lease per second of deadline: the lease of second `s` is granted to
  // end at `s`, and its id is derived from `s`, so every process on the cluster (each replica,
  // each restart) puts its keys of that second on the same lease without coordinating. A key is
  // never kept alive by a lease keepalive (that would keep its lease-mates alive too); putting
  // it again moves it to the lease of its new deadline.
  static int64_t DeadlineSecond(absl::Time expires) {
    return absl::ToInt64Seconds(absl::Ceil(expires - absl::UnixEpoch(), store::kExpiryGranularity));
  }
  // "DT" in the top bytes keeps the ids apart from those etcd picks (and other tools' ids).
  static int64_t LeaseId(int64_t second) {
    return (int64_t{0x4454} << 48) | (second & 0xffffffffffff);
  }

  absl::Status EnsureLeases(const Txn& txn) {
    std::set<int64_t> seconds;
    for (const Op& op : txn.ops) {
      if (op.type == Op::Type::kPut && op.expires != absl::InfiniteFuture()) {
        seconds.insert(DeadlineSecond(op.expires));
      }
    }
    for (const int64_t second : seconds) {
      {
        absl::MutexLock lock(&lease_mu_);
        if (granted_.contains(second)) {
          continue;
        }
      }
      pb::LeaseGrantRequest request;
      request.set_id(LeaseId(second));
      const absl::Duration left = absl::FromUnixSeconds(second) - absl::Now();
      request.set_ttl(
          std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(left, absl::Seconds(1)))));
      pb::LeaseGrantResponse response;
      absl::Status status =
          client_->Unary(absl::StrCat("lease grant ", second), EtcdClient::Retry::kAlways,
                         [&](Endpoint& e, grpc::ClientContext& c) {
                           return e.lease->LeaseGrant(&c, request, &response);
                         });
      // Another process (or this one, before a retry) granted it first: it is the same lease.
      if (!status.ok() && !absl::StrContains(status.message(), "lease already exists")) {
        return status;
      }
      if (status.ok()) {
        leases_granted_.fetch_add(1, std::memory_order_relaxed);
      }
      absl::MutexLock lock(&lease_mu_);
      // Seconds that have passed cannot be asked for again (deadlines are in the future), so
      // the set stays as small as the longest TTL in seconds.
      const int64_t now = absl::ToUnixSeconds(absl::Now());
      granted_.erase(granted_.begin(), granted_.lower_bound(now));
      granted_.insert(second);
    }
    return absl::OkStatus();
  }

  void ForgetLeases(const Txn& txn) {
    absl::MutexLock lock(&lease_mu_);
    for (const Op& op : txn.ops) {
      if (op.type == Op::Type::kPut && op.expires != absl::InfiniteFuture()) {
        granted_.erase(DeadlineSecond(op.expires));
      }
    }
  }

  // Follows the member list, as the original's client did with --etcd-auto-sync-interval.
  void SyncMembers(absl::Duration interval) {
    std::string last;
    bool failing = false;
    while (true) {
      absl::StatusOr<std::string> endpoints = client_->SyncMembers();
      if (endpoints.ok()) {
        if (*endpoints != last) {
          LogInfo("etcd endpoints from the member list", {{"endpoints", *endpoints}});
          last = *endpoints;
        }
        failing = false;
      } else if (!failing) {
        // Once per streak of failures; the endpoints known so far stay in use.
        LogWarn("etcd member list sync failed, keeping the endpoints",
                {{"endpoints", client_->EndpointList()},
                 {"error", std::string{endpoints.status().message()}}});
        failing = true;
      }
      absl::MutexLock lock(&sync_mu_);
      if (sync_mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) {
        return;
      }
    }
  }

  const std::shared_ptr<EtcdClient> client_;

  std::atomic<int64_t> commits_ = 0;
  std::atomic<int64_t> transactions_ = 0;

  absl::Mutex lease_mu_;
  std::set<int64_t> granted_ ABSL_GUARDED_BY(lease_mu_);  // deadline seconds with a lease
  std::atomic<int64_t> leases_granted_ = 0;

  // After what its committer uses (the client, the counters, the leases): destroyed first, and
  // the commits still queued are applied before.
  CommitQueue<PendingCommit> queue_{
      [](std::deque<PendingCommit*>& queue) { return TakeBatch(queue); },
      [this](const std::vector<PendingCommit*>& batch) {
        commits_.fetch_add(std::ssize(batch), std::memory_order_relaxed);
        ApplyBatch(batch);
      }};

  absl::Mutex sync_mu_;
  bool stopping_ ABSL_GUARDED_BY(sync_mu_) = false;
  // Last member: joined before anything it uses is destroyed.
  std::jthread sync_;
};

}  // namespace

absl::StatusOr<EtcdStoreStats> GetEtcdStoreStats(Store& store) {
  auto* etcd = dynamic_cast<EtcdStore*>(&store);
  if (etcd == nullptr) {
    return absl::InvalidArgumentError("stats: not an etcd store");
  }
  EtcdStoreStats stats = etcd->Stats();
  stats.leases_granted = etcd->LeasesGranted();
  return stats;
}

absl::StatusOr<std::unique_ptr<Store>> ConnectEtcdStore(const EtcdOptions& options) {
  DISCOVERY_ASSIGN_OR_RETURN(std::shared_ptr<EtcdClient> client, EtcdClient::Connect(options));
  return std::make_unique<EtcdStore>(std::move(client), options.auto_sync_interval);
}

}  // namespace discovery::store
