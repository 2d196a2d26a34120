#include "store/etcd/etcd_client.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
#include "common/status_macros.h"

namespace discovery::store::etcd_internal {
namespace {

// ---------------------------------------------------------------------------------------------
// Options

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

}  // namespace

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
                  .version = kv.version(),
                  .lease = kv.lease()};
}

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

}  // namespace discovery::store::etcd_internal
