#include "api/grpc/grpc_server.h"

#include <memory>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

#include "auth/authenticator.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"
#include "store/embedded/embedded_store.h"
#include "testing/status_matchers.h"

namespace discovery::grpc_api {
namespace {

namespace pb = ::postfinance::discovery::v1;
using ::discovery::testing::IsOk;
using ::testing::Contains;
using ::testing::HasSubstr;

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::OpenEmbeddedStore({});
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    registry_ =
        std::make_unique<registry::Registry>(*store_, repo::Keys(), registry::RegistryOptions{});
    ASSERT_THAT(registry_->Initialize(absl::Seconds(10)), IsOk());
    handlers_ = std::make_unique<api::Handlers>(*registry_, authorizer_,
                                                api::HandlerOptions{.tokens = tokens_});
    dispatcher_ = std::make_unique<api::Dispatcher>(*handlers_, authenticator_);
    absl::StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start({.listen = "127.0.0.1:0"}, *dispatcher_);
    ASSERT_THAT(server, IsOk());
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(fmt::format("127.0.0.1:{}", server_->port()),
                                   grpc::InsecureChannelCredentials());
    auth::MachineTokenOptions admin = tokens_;
    admin.admin = true;
    absl::StatusOr<std::string> token =
        auth::CreateMachineToken(admin, "root", {}, absl::ZeroDuration(), absl::Now());
    ASSERT_THAT(token, IsOk());
    admin_token_ = *token;
  }

  void Authorize(grpc::ClientContext& context) const {
    context.AddMetadata("authorization", "Bearer " + admin_token_);
  }

  const auth::MachineTokenOptions tokens_{.issuer = "iss", .secret = "secret"};
  auth::Authorizer authorizer_{{}};
  auth::Authenticator authenticator_{{.issuer = "iss", .secret = "secret"}};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<registry::Registry> registry_;
  std::unique_ptr<api::Handlers> handlers_;
  std::unique_ptr<api::Dispatcher> dispatcher_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string admin_token_;
};

TEST_F(GrpcServerTest, ServesTheApiWithBearerTokens) {
  auto stub = pb::ServerAPI::NewStub(channel_);
  pb::RegisterServerRequest request;
  request.set_name("p1");
  (*request.mutable_labels())["env"] = "prod";
  pb::RegisterServerResponse response;
  {
    grpc::ClientContext context;
    grpc::Status status = stub->RegisterServer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(status.error_message(), HasSubstr("failed to get authentication token"));
  }
  {
    grpc::ClientContext context;
    Authorize(context);
    grpc::Status status = stub->RegisterServer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.server().name(), "p1");
    EXPECT_EQ(response.server().state(), 2);
  }
  {
    grpc::ClientContext context;
    Authorize(context);
    request.set_name("../x");
    grpc::Status status = stub->RegisterServer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(GrpcServerTest, ServesHealthWithoutCredentials) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, {}, &response).ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }
  server_->SetServing(true);
  grpc::ClientContext context;
  ASSERT_TRUE(health->Check(&context, {}, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(GrpcServerTest, ServesReflection) {
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = reflection->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, Contains("postfinance.discovery.v1.ServiceAPI"));
  EXPECT_THAT(names, Contains("postfinance.discovery.v1.TokenAPI"));
  EXPECT_THAT(names, Contains("grpc.health.v1.Health"));
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(GrpcListenAddressTest, ColonPortMeansEveryInterface) {
  EXPECT_EQ(GrpcListenAddress(":3001"), "[::]:3001");
  EXPECT_EQ(GrpcListenAddress("localhost:3001"), "localhost:3001");
}

TEST_F(GrpcServerTest, ReportsUnreadableTlsFiles) {
  EXPECT_THAT(GrpcServer::Start({.listen = "127.0.0.1:0",
                                 .tls = TlsFiles{.cert_file = "/nonexistent/cert.pem",
                                                 .key_file = "/nonexistent/key.pem"}},
                                *dispatcher_),
              ::discovery::testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("/nonexistent/cert.pem")));
}

}  // namespace
}  // namespace discovery::grpc_api
