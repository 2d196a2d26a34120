#include "cli/api_client.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli/call_errors.h"
#include "cli/retry.h"
#include "fmt/format.h"
#include "grpcpp/grpcpp.h"

#include "api/convert.h"
#include "common/file.h"
#include "common/format.h"
#include "common/go_duration.h"
#include "common/status_macros.h"
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"

namespace discovery::cli {
namespace {

namespace pb = ::postfinance::discovery::v1;
using api::FromProto;

// Debian's bundle of the system's trusted CAs (ca-certificates).
constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) {
    return absl::OkStatus();
  }
  return {static_cast<absl::StatusCode>(status.error_code()), status.error_message()};
}

// The limit of a call starting now: --timeout, or less when the command's deadline is nearer.
CallLimit LimitOf(const ConnectionOptions& options) {
  const absl::Duration left = options.deadline - absl::Now();
  if (left < options.timeout) {
    return {.duration = std::max(left, absl::ZeroDuration()), .overall = true};
  }
  return {.duration = options.timeout};
}

// A context for one call: its deadline and the bearer token the server authorizes.
std::unique_ptr<grpc::ClientContext> NewContext(const ConnectionOptions& options,
                                                const CallLimit& limit) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        absl::ToChronoMilliseconds(limit.duration));
  context->AddMetadata("authorization", "bearer " + options.token);
  return context;
}

RevokedTokenDetails FromProto(const pb::RevokedToken& revoked) {
  return {.id = revoked.id(),
          .revoked_at = api::TimestampFromProto(revoked.revoked_at()),
          .revoked_by = revoked.revoked_by()};
}

// The domain values of a list of wire messages.
template <typename Proto>
auto FromProtos(const google::protobuf::RepeatedPtrField<Proto>& messages) {
  std::vector<decltype(FromProto(std::declval<const Proto&>()))> values;
  values.reserve(static_cast<size_t>(messages.size()));
  for (const Proto& message : messages) {
    values.push_back(FromProto(message));
  }
  return values;
}

pb::RegisterServiceRequest RegisterRequest(const ServiceRegistration& registration) {
  pb::RegisterServiceRequest request;
  request.set_name(registration.name);
  request.set_namespace_(registration.namespace_name);
  request.set_endpoint(registration.endpoint);
  request.set_selector(registration.selector);
  request.set_description(registration.description);
  if (registration.ttl > absl::ZeroDuration()) {
    *request.mutable_ttl() = api::DurationToProto(registration.ttl);
  }
  api::LabelsToProto(registration.labels, request.mutable_labels());
  return request;
}

}  // namespace

// The channel of one command. A call that failed as unreachable or slow drops it, so that a retry
// dials afresh instead of failing at once while gRPC backs off from the old connection's failure.
class ApiClient::Channels {
 public:
  Channels(std::string address, std::shared_ptr<grpc::ChannelCredentials> credentials)
      : address_(std::move(address)), credentials_(std::move(credentials)) {}

  std::shared_ptr<grpc::Channel> Get() {
    if (channel_ == nullptr) {
      grpc::ChannelArguments arguments;
      // Unary lists of every server, namespace or (from older servers) service come in one
      // message of any size; gRPC's default would refuse those beyond 4 MiB.
      arguments.SetMaxReceiveMessageSize(-1);
      channel_ = grpc::CreateCustomChannel(address_, credentials_, arguments);
    }
    return channel_;
  }
  void Drop() {
    service_stub_.reset();
    channel_.reset();
  }

  // One ServiceAPI stub for the calls of a bulk command: a stub registers its methods with the
  // channel when it is made, which is worth doing once rather than per call.
  pb::ServiceAPI::Stub& ServiceStub() {
    if (service_stub_ == nullptr) {
      service_stub_ = std::make_unique<pb::ServiceAPI::Stub>(Get());
    }
    return *service_stub_;
  }

 private:
  std::string address_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::ServiceAPI::Stub> service_stub_;
};

namespace {

// Calls `method` of a stub of type `Api` and returns its response or the failure.
template <typename Api, typename Request, typename Response>
absl::StatusOr<Response> Call(ApiClient::Channels& channels, const ConnectionOptions& options,
                              grpc::Status (Api::Stub::*method)(grpc::ClientContext*,
                                                                const Request&, Response*),
                              const Request& request) {
  typename Api::Stub stub(channels.Get());
  const CallLimit limit = LimitOf(options);
  const std::unique_ptr<grpc::ClientContext> context = NewContext(options, limit);
  Response response;
  if (absl::Status status = FromGrpc((stub.*method)(context.get(), request, &response));
      !status.ok()) {
    // ResourceExhausted came over a working connection: the server was only busy.
    if (IsTransient(status) && !absl::IsResourceExhausted(status)) {
      channels.Drop();
    }
    return DescribeCallError(status, options.address, limit);
  }
  return response;
}

}  // namespace

ApiClient::ApiClient(std::shared_ptr<Channels> channels, ConnectionOptions options)
    : channels_(std::move(channels)), options_(std::move(options)) {}

absl::StatusOr<ApiClient> ApiClient::Connect(const ConnectionOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.insecure) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_cert_file.empty()) {
      absl::StatusOr<std::string> ca = ReadFile(options.ca_cert_file);
      if (!ca.ok()) {
        return absl::InvalidArgumentError(fmt::format("--ca-cert: {}", ca.status().message()));
      }
      // Setting roots replaces gRPC's default trust store, so keep the system's CAs as well.
      ssl.pem_root_certs = ReadFile(kSystemCaBundle).value_or("") + "\n" + *ca;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  return ApiClient(std::make_shared<Channels>(options.address, std::move(credentials)), options);
}

absl::StatusOr<std::vector<Server>> ApiClient::ListServers() const {
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::ListServerResponse response,
      Call<pb::ServerAPI>(*channels_, options_, &pb::ServerAPI::Stub::ListServer,
                          pb::ListServerRequest{}));
  return FromProtos(response.servers());
}

absl::StatusOr<Server> ApiClient::RegisterServer(const std::string& name,
                                                 const Labels& labels) const {
  pb::RegisterServerRequest request;
  request.set_name(name);
  api::LabelsToProto(labels, request.mutable_labels());
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::RegisterServerResponse response,
      Call<pb::ServerAPI>(*channels_, options_, &pb::ServerAPI::Stub::RegisterServer, request));
  return FromProto(response.server());
}

absl::Status ApiClient::UnregisterServer(const std::string& name) const {
  pb::UnregisterServerRequest request;
  request.set_name(name);
  return Call<pb::ServerAPI>(*channels_, options_, &pb::ServerAPI::Stub::UnregisterServer, request)
      .status();
}

absl::StatusOr<std::vector<Namespace>> ApiClient::ListNamespaces() const {
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::ListNamespaceResponse response,
      Call<pb::NamespaceAPI>(*channels_, options_, &pb::NamespaceAPI::Stub::ListNamespace,
                             pb::ListNamespaceRequest{}));
  return FromProtos(response.namespaces());
}

absl::StatusOr<Namespace> ApiClient::RegisterNamespace(const std::string& name,
                                                       ExportConfig export_config) const {
  pb::RegisterNamespaceRequest request;
  request.set_name(name);
  request.set_export_(static_cast<int32_t>(export_config));
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::RegisterNamespaceResponse response,
      Call<pb::NamespaceAPI>(*channels_, options_, &pb::NamespaceAPI::Stub::RegisterNamespace,
                             request));
  return FromProto(response.namespace_());
}

absl::Status ApiClient::UnregisterNamespace(const std::string& name) const {
  pb::UnregisterNamespaceRequest request;
  request.set_name(name);
  return Call<pb::NamespaceAPI>(*channels_, options_, &pb::NamespaceAPI::Stub::UnregisterNamespace,
                                request)
      .status();
}

absl::StatusOr<std::vector<Service>> ApiClient::ListServices(
    const std::string& namespace_name, std::vector<InvalidService>* invalid) const {
  pb::ListServiceRequest request;
  request.set_namespace_(namespace_name);
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::ListServiceResponse response,
      Call<pb::ServiceAPI>(*channels_, options_, &pb::ServiceAPI::Stub::ListService, request));
  if (invalid != nullptr) {
    for (const pb::InvalidService& record : response.invalid_services()) {
      invalid->push_back(FromProto(record));
    }
  }
  return FromProtos(response.services());
}

absl::StatusOr<Service> ApiClient::RegisterService(const ServiceRegistration& registration) const {
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::RegisterServiceResponse response,
      Call<pb::ServiceAPI>(*channels_, options_, &pb::ServiceAPI::Stub::RegisterService,
                           RegisterRequest(registration)));
  return FromProto(response.service());
}

absl::StatusOr<KeepAliveAnswer> ApiClient::KeepAlive(const std::string& namespace_name,
                                                     const std::vector<std::string>& ids) const {
  pb::KeepAliveRequest request;
  request.set_namespace_(namespace_name);
  for (const std::string& id : ids) {
    request.add_ids(id);
  }
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::KeepAliveResponse response,
      Call<pb::ServiceAPI>(*channels_, options_, &pb::ServiceAPI::Stub::KeepAlive, request));
  KeepAliveAnswer answer{.renewed = FromProtos(response.services())};
  answer.not_found.assign(response.not_found().begin(), response.not_found().end());
  return answer;
}

absl::Status ApiClient::StreamServices(
    const ServiceQuery& query, const std::function<void(size_t total)>& total,
    const std::function<void(client_format::ListedService)>& row) const {
  pb::ListServiceStreamRequest request;
  request.set_namespace_(query.namespace_name);
  request.set_filter_name(query.filter_name);
  request.set_filter_endpoint(query.filter_endpoint);
  request.set_filter_server(query.filter_server);
  request.set_filter_selector(query.filter_selector);
  request.set_sort_by(query.sort_by);
  request.set_served_only(query.served_only);
  pb::ServiceAPI::Stub stub(channels_->Get());
  grpc::ClientContext context;
  context.AddMetadata("authorization", "bearer " + options_.token);

  // A list of a million rows takes longer than any one call's timeout to print, so the timeout
  // applies to each wait for the server: a watchdog cancels the call when a wait takes longer.
  absl::Mutex mu;
  absl::Time last_message = absl::Now();
  bool finished = false;
  bool timed_out = false;
  std::jthread watchdog([&] {
    absl::MutexLock lock(&mu);
    while (!finished) {
      if (mu.AwaitWithDeadline(absl::Condition(&finished), last_message + options_.timeout)) {
        return;
      }
      if (absl::Now() >= last_message + options_.timeout) {
        timed_out = true;
        context.TryCancel();
        return;
      }
    }
  });
  const auto seen = [&] {
    absl::MutexLock lock(&mu);
    last_message = absl::Now();
  };

  std::unique_ptr<grpc::ClientReader<pb::ListServiceStreamResponse>> reader =
      stub.ListServiceStream(&context, request);
  pb::ListServiceStreamResponse message;
  bool first = true;
  while (reader->Read(&message)) {
    if (first && total) {
      total(message.total());
    }
    first = false;
    for (pb::ListedService& listed : *message.mutable_services()) {
      row({.service = FromProto(listed.service()),
           .invalid = std::move(*listed.mutable_invalid_reason())});
    }
    seen();
  }
  absl::Status status = FromGrpc(reader->Finish());
  {
    absl::MutexLock lock(&mu);
    finished = true;
    if (timed_out) {
      status = absl::DeadlineExceededError(
          fmt::format("the server sent nothing for {}", FormatGoDuration(options_.timeout)));
    }
  }
  if (IsTransient(status) && !absl::IsResourceExhausted(status)) {
    channels_->Drop();
  }
  return status;
}

namespace {

// One call of RegisterServiceAsync or UnregisterServiceAsync: what gRPC needs alive until the
// answer, freed when it comes.
template <typename Request, typename Response>
struct AsyncCall {
  std::unique_ptr<grpc::ClientContext> context;
  Request request;
  Response response;
};

template <typename Request, typename Response>
void StartAsync(pb::ServiceAPI::Stub& stub, const ConnectionOptions& options, Request request,
                void (pb::ServiceAPI::Stub::async_interface::*method)(
                    grpc::ClientContext*, const Request*, Response*,
                    std::function<void(grpc::Status)>),
                std::function<void(const absl::Status&)> done) {
  auto* call = new AsyncCall<Request, Response>{
      .context = NewContext(options, CallLimit{.duration = options.timeout}),
      .request = std::move(request)};
  (stub.async()->*method)(call->context.get(), &call->request, &call->response,
                          [call, done = std::move(done)](const grpc::Status& status) {
                            const absl::Status result = FromGrpc(status);
                            // Freed before `done`, after which the caller may drop the channel:
                            // nothing of the call may be left to free on a gRPC thread then (a
                            // channel's last reference going there freed its queue twice).
                            delete call;
                            done(result);
                          });
}

}  // namespace

void ApiClient::RegisterServiceAsync(const ServiceRegistration& registration,
                                     std::function<void(const absl::Status&)> done) const {
  StartAsync(channels_->ServiceStub(), options_, RegisterRequest(registration),
             &pb::ServiceAPI::Stub::async_interface::RegisterService, std::move(done));
}

void ApiClient::UnregisterServiceAsync(const std::string& namespace_name,
                                       const std::string& id_or_endpoint,
                                       std::function<void(const absl::Status&)> done) const {
  pb::UnRegisterServiceRequest request;
  request.set_namespace_(namespace_name);
  request.set_id(id_or_endpoint);
  StartAsync(channels_->ServiceStub(), options_, std::move(request),
             &pb::ServiceAPI::Stub::async_interface::UnRegisterService, std::move(done));
}

absl::Status ApiClient::UnregisterService(const std::string& namespace_name,
                                          const std::string& id_or_endpoint) const {
  pb::UnRegisterServiceRequest request;
  request.set_namespace_(namespace_name);
  request.set_id(id_or_endpoint);
  return Call<pb::ServiceAPI>(*channels_, options_, &pb::ServiceAPI::Stub::UnRegisterService,
                              request)
      .status();
}

absl::StatusOr<std::string> ApiClient::CreateToken(const std::string& id,
                                                   const std::vector<std::string>& namespaces,
                                                   const std::string& expires) const {
  pb::CreateRequest request;
  request.set_id(id);
  for (const std::string& ns : namespaces) {
    request.add_namespaces(ns);
  }
  request.set_expires(expires);
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::CreateResponse response,
      Call<pb::TokenAPI>(*channels_, options_, &pb::TokenAPI::Stub::Create, request));
  return response.token();
}

absl::StatusOr<RevokedTokenDetails> ApiClient::RevokeToken(const std::string& id) const {
  pb::RevokeRequest request;
  request.set_id(id);
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::RevokeResponse response,
      Call<pb::TokenAPI>(*channels_, options_, &pb::TokenAPI::Stub::Revoke, request));
  return FromProto(response.revoked());
}

absl::StatusOr<std::vector<RevokedTokenDetails>> ApiClient::ListRevokedTokens() const {
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::ListRevokedResponse response,
      Call<pb::TokenAPI>(*channels_, options_, &pb::TokenAPI::Stub::ListRevoked,
                         pb::ListRevokedRequest{}));
  return FromProtos(response.revoked());
}

absl::StatusOr<TokenDetails> ApiClient::TokenInfo(const std::string& token) const {
  pb::InfoRequest request;
  request.set_token(token);
  DISCOVERY_ASSIGN_OR_RETURN(
      pb::InfoResponse response,
      Call<pb::TokenAPI>(*channels_, options_, &pb::TokenAPI::Stub::Info, request));
  const pb::TokenInfo& info = response.tokeninfo();
  TokenDetails details{.id = info.id(),
                       .namespaces = {info.namespaces().begin(), info.namespaces().end()}};
  const absl::Time expires = api::TimestampFromProto(info.expires_at());
  if (expires != api::GoZeroTime()) {
    details.expires = expires;
  }
  return details;
}

}  // namespace discovery::cli
