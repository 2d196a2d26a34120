#include "api/grpc/grpc_server.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "fmt/format.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"

#include "common/format.h"
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"

namespace discovery::grpc_api {
namespace {

namespace pb = ::postfinance::discovery::v1;

std::string_view Authorization(const grpc::ServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  return it == metadata.end() ? std::string_view{}
                              : std::string_view(it->second.data(), it->second.size());
}

// Runs one call through the dispatcher and copies the outcome into gRPC's out-parameters.
template <typename Response, typename Request>
grpc::Status Serve(api::Dispatcher& dispatcher, std::string_view service, std::string_view method,
                   const grpc::ServerContext* context, const Request& request, Response* response,
                   api::Dispatcher::Method<Response, Request> handler) {
  const std::string full_method = fmt::format("{}{}", service, method);
  absl::StatusOr<Response> result =
      dispatcher.Dispatch(full_method, Authorization(context), request, handler);
  if (!result.ok()) {
    return {static_cast<grpc::StatusCode>(result.status().code()),
            std::string{result.status().message()}};
  }
  *response = *std::move(result);
  return grpc::Status::OK;
}

class NamespaceService final : public pb::NamespaceAPI::Service {
 public:
  explicit NamespaceService(api::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  grpc::Status RegisterNamespace(grpc::ServerContext* context,
                                 const pb::RegisterNamespaceRequest* request,
                                 pb::RegisterNamespaceResponse* response) override {
    return Serve(dispatcher_, api::kNamespaceApi, "RegisterNamespace", context, *request, response,
                 &api::Handlers::RegisterNamespace);
  }
  grpc::Status UnregisterNamespace(grpc::ServerContext* context,
                                   const pb::UnregisterNamespaceRequest* request,
                                   pb::UnregisterNamespaceResponse* response) override {
    return Serve(dispatcher_, api::kNamespaceApi, "UnregisterNamespace", context, *request,
                 response, &api::Handlers::UnregisterNamespace);
  }
  grpc::Status ListNamespace(grpc::ServerContext* context, const pb::ListNamespaceRequest* request,
                             pb::ListNamespaceResponse* response) override {
    return Serve(dispatcher_, api::kNamespaceApi, "ListNamespace", context, *request, response,
                 &api::Handlers::ListNamespace);
  }

 private:
  api::Dispatcher& dispatcher_;
};

class ServerService final : public pb::ServerAPI::Service {
 public:
  explicit ServerService(api::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  grpc::Status RegisterServer(grpc::ServerContext* context,
                              const pb::RegisterServerRequest* request,
                              pb::RegisterServerResponse* response) override {
    return Serve(dispatcher_, api::kServerApi, "RegisterServer", context, *request, response,
                 &api::Handlers::RegisterServer);
  }
  grpc::Status UnregisterServer(grpc::ServerContext* context,
                                const pb::UnregisterServerRequest* request,
                                pb::UnregisterServerResponse* response) override {
    return Serve(dispatcher_, api::kServerApi, "UnregisterServer", context, *request, response,
                 &api::Handlers::UnregisterServer);
  }
  grpc::Status ListServer(grpc::ServerContext* context, const pb::ListServerRequest* request,
                          pb::ListServerResponse* response) override {
    return Serve(dispatcher_, api::kServerApi, "ListServer", context, *request, response,
                 &api::Handlers::ListServer);
  }

 private:
  api::Dispatcher& dispatcher_;
};

class ServiceService final : public pb::ServiceAPI::Service {
 public:
  explicit ServiceService(api::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  grpc::Status RegisterService(grpc::ServerContext* context,
                               const pb::RegisterServiceRequest* request,
                               pb::RegisterServiceResponse* response) override {
    return Serve(dispatcher_, api::kServiceApi, "RegisterService", context, *request, response,
                 &api::Handlers::RegisterService);
  }
  grpc::Status UnRegisterService(grpc::ServerContext* context,
                                 const pb::UnRegisterServiceRequest* request,
                                 pb::UnRegisterServiceResponse* response) override {
    return Serve(dispatcher_, api::kServiceApi, "UnRegisterService", context, *request, response,
                 &api::Handlers::UnRegisterService);
  }
  grpc::Status ListService(grpc::ServerContext* context, const pb::ListServiceRequest* request,
                           pb::ListServiceResponse* response) override {
    return Serve(dispatcher_, api::kServiceApi, "ListService", context, *request, response,
                 &api::Handlers::ListService);
  }
  grpc::Status ListTargetGroup(grpc::ServerContext* context,
                               const pb::ListTargetGroupRequest* request,
                               pb::ListTargetGroupResponse* response) override {
    return Serve(dispatcher_, api::kServiceApi, "ListTargetGroup", context, *request, response,
                 &api::Handlers::ListTargetGroup);
  }

 private:
  api::Dispatcher& dispatcher_;
};

class TokenService final : public pb::TokenAPI::Service {
 public:
  explicit TokenService(api::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  grpc::Status Create(grpc::ServerContext* context, const pb::CreateRequest* request,
                      pb::CreateResponse* response) override {
    return Serve(dispatcher_, api::kTokenApi, "Create", context, *request, response,
                 &api::Handlers::Create);
  }
  grpc::Status Info(grpc::ServerContext* context, const pb::InfoRequest* request,
                    pb::InfoResponse* response) override {
    return Serve(dispatcher_, api::kTokenApi, "Info", context, *request, response,
                 &api::Handlers::Info);
  }

 private:
  api::Dispatcher& dispatcher_;
};

absl::StatusOr<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(fmt::format("cannot read the {} file {}", what, path));
  }
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

struct GrpcServer::Services {
  explicit Services(api::Dispatcher& dispatcher)
      : namespaces(dispatcher), servers(dispatcher), services(dispatcher), tokens(dispatcher) {}
  NamespaceService namespaces;
  ServerService servers;
  ServiceService services;
  TokenService tokens;
};

std::string GrpcListenAddress(std::string_view listen) {
  if (!listen.empty() && listen.front() == ':') {
    return fmt::format("[::]{}", listen);
  }
  return std::string{listen};
}

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              api::Dispatcher& dispatcher) {
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (options.tls.has_value()) {
    absl::StatusOr<std::string> cert = ReadFile(options.tls->cert_file, "TLS certificate");
    if (!cert.ok()) {
      return cert.status();
    }
    absl::StatusOr<std::string> key = ReadFile(options.tls->key_file, "TLS key");
    if (!key.ok()) {
      return key.status();
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(ssl);
  }

  // Process-wide switches; both must be set before the builder is created.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<GrpcServer> server(new GrpcServer());
  server->services_ = std::make_unique<Services>(dispatcher);
  grpc::ServerBuilder builder;
  const std::string address = GrpcListenAddress(options.listen);
  builder.AddListeningPort(address, credentials, &server->port_);
  grpc::ResourceQuota quota("discoveryd-grpc");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.RegisterService(&server->services_->namespaces);
  builder.RegisterService(&server->services_->servers);
  builder.RegisterService(&server->services_->services);
  builder.RegisterService(&server->services_->tokens);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(fmt::format("cannot listen for gRPC on {}", options.listen));
  }
  server->SetServing(false);
  return server;
}

GrpcServer::~GrpcServer() { Shutdown(absl::ZeroDuration()); }

void GrpcServer::SetServing(bool serving) {
  if (server_ != nullptr && server_->GetHealthCheckService() != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(serving);
  }
}

void GrpcServer::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) {
    return;
  }
  shut_down_ = true;
  SetServing(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

}  // namespace discovery::grpc_api
