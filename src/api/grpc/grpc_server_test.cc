#include "api/grpc/grpc_server.h"

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "fmt/format.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

#include "auth/authenticator.h"
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"
#include "store/embedded/embedded_store.h"
#include "testing/status_matchers.h"

namespace discovery::grpc_api {
namespace {

namespace pb = ::postfinance::discovery::v1;
using ::discovery::testing::IsOk;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::OpenEmbeddedStore({});
    ASSERT_THAT(store, IsOk());
    store_ = WrapStore(*std::move(store));
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

  // Lets a fixture put a store of its own between the registry and the real one.
  virtual std::unique_ptr<store::Store> WrapStore(std::unique_ptr<store::Store> store) {
    return store;
  }

  void Authorize(grpc::ClientContext& context) const {
    context.AddMetadata("authorization", "Bearer " + admin_token_);
  }

  // Registers the Prometheus server `name` through server_, with the admin token.
  void AddServer(const std::string& name) const {
    grpc::ClientContext context;
    Authorize(context);
    pb::RegisterServerRequest request;
    request.set_name(name);
    pb::RegisterServerResponse response;
    const grpc::Status status =
        pb::ServerAPI::NewStub(channel_)->RegisterServer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
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

// Holds every call of one method in the dispatcher (so on its worker) until Open(); records the
// calls that reached the dispatcher and how each ended.
class Gate {
 public:
  explicit Gate(std::string_view blocked_method) : blocked_method_(blocked_method) {}

  api::CallObserver Observer() {
    return {.started = [this](std::string_view method) { Enter(method); },
            .handled =
                [this](std::string_view method, absl::StatusCode code, absl::Duration) {
                  absl::MutexLock lock(&mu_);
                  handled_.emplace_back(std::string{method}, code);
                }};
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  // Waits until `n` calls of the blocked method are held, then returns how many are.
  int AwaitHeld(int n) {
    absl::MutexLock lock(&mu_);
    const auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_ >= n; };
    mu_.Await(absl::Condition(&enough));
    return held_;
  }
  std::vector<std::pair<std::string, absl::StatusCode>> handled() {
    absl::MutexLock lock(&mu_);
    return handled_;
  }

 private:
  void Enter(std::string_view method) {
    if (!method.ends_with(blocked_method_)) {
      return;
    }
    absl::MutexLock lock(&mu_);
    ++held_;
    mu_.Await(absl::Condition(&open_));
    --held_;
  }

  const std::string blocked_method_;
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<std::string, absl::StatusCode>> handled_ ABSL_GUARDED_BY(mu_);
};

// Unary calls in flight at once through the callback stub API, with their outcomes in the order
// they completed.
class Flight {
 public:
  explicit Flight(std::string token) : token_(std::move(token)) {}
  ~Flight() { AwaitCompleted(started_); }
  Flight(const Flight&) = delete;
  Flight& operator=(const Flight&) = delete;
  Flight(Flight&&) = delete;
  Flight& operator=(Flight&&) = delete;

  struct Outcome {
    std::string label;
    grpc::Status status;
  };

  // Starts one call: `start(context, request, response, done)` hands it to a stub's async().
  // `label` names it among the outcomes. Returns its context, e.g. to cancel it.
  template <typename Response, typename Request, typename Start>
  grpc::ClientContext& Call(std::string label, Request request, Start start) {
    auto call = std::make_shared<Typed<Request, Response>>();
    call->request = std::move(request);
    call->context.AddMetadata("authorization", "Bearer " + token_);
    {
      absl::MutexLock lock(&mu_);
      ++started_;
      calls_.push_back(call);
    }
    start(&call->context, &call->request, &call->response,
          [this, label = std::move(label)](grpc::Status status) {
            absl::MutexLock lock(&mu_);
            outcomes_.push_back({label, std::move(status)});
          });
    return call->context;
  }

  // Waits until `n` calls have completed; false when they have not after `bound`, which only
  // bounds a failing test.
  bool AwaitCompletedWithin(int n, absl::Duration bound) {
    absl::MutexLock lock(&mu_);
    const auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return static_cast<int>(outcomes_.size()) >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), bound);
  }
  // Waits until `n` calls have completed and returns their outcomes.
  std::vector<Outcome> AwaitCompleted(int n) {
    absl::MutexLock lock(&mu_);
    const auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return static_cast<int>(outcomes_.size()) >= n;
    };
    mu_.Await(absl::Condition(&enough));
    return outcomes_;
  }

 private:
  template <typename Request, typename Response>
  struct Typed {
    grpc::ClientContext context;
    Request request;
    Response response;
  };

  const std::string token_;
  absl::Mutex mu_;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<void>> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<Outcome> outcomes_ ABSL_GUARDED_BY(mu_);
};

// Servers with a few workers whose calls of one method block in a Gate until it opens.
class GrpcQueueTest : public GrpcServerTest {
 protected:
  void StartGated(std::string_view blocked_method, GrpcServerOptions options) {
    gate_ = std::make_unique<Gate>(blocked_method);
    gated_dispatcher_ =
        std::make_unique<api::Dispatcher>(*handlers_, authenticator_, gate_->Observer());
    options.listen = "127.0.0.1:0";
    ASSERT_OK_AND_ASSIGN(gated_, GrpcServer::Start(options, *gated_dispatcher_));
    gated_channel_ = grpc::CreateChannel(fmt::format("127.0.0.1:{}", gated_->port()),
                                         grpc::InsecureChannelCredentials());
    namespaces_ = pb::NamespaceAPI::NewStub(gated_channel_);
    servers_ = pb::ServerAPI::NewStub(gated_channel_);
    services_ = pb::ServiceAPI::NewStub(gated_channel_);
    blocked_ = std::make_unique<Flight>(admin_token_);
    flight_ = std::make_unique<Flight>(admin_token_);
  }

  // Before the flights wait for their calls, even when a test failed with the gate closed.
  void TearDown() override {
    if (gate_ != nullptr) {
      gate_->Open();
    }
  }

  grpc::ClientContext& ListNamespace(Flight& flight, std::string label) {
    return flight.Call<pb::ListNamespaceResponse>(
        std::move(label), pb::ListNamespaceRequest{},
        [this](auto* context, auto* request, auto* response, auto done) {
          namespaces_->async()->ListNamespace(context, request, response, std::move(done));
        });
  }
  grpc::ClientContext& RegisterServer(Flight& flight, const std::string& name) {
    pb::RegisterServerRequest request;
    request.set_name(name);
    return flight.Call<pb::RegisterServerResponse>(
        name, std::move(request), [this](auto* context, auto* message, auto* response, auto done) {
          servers_->async()->RegisterServer(context, message, response, std::move(done));
        });
  }
  grpc::ClientContext& RegisterService(Flight& flight, const std::string& endpoint,
                                       const std::string& namespace_name) {
    pb::RegisterServiceRequest request;
    request.set_name("node");
    request.set_endpoint(endpoint);
    request.set_namespace_(namespace_name);
    return flight.Call<pb::RegisterServiceResponse>(
        endpoint, std::move(request),
        [this](auto* context, auto* message, auto* response, auto done) {
          services_->async()->RegisterService(context, message, response, std::move(done));
        });
  }
  // A health check on the gated channel, which gRPC's own health service answers without a
  // worker: the server has read what the client sent before it (calls, or their cancellation)
  // by the time the answer is back.
  void RoundTrip() {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status =
        grpc::health::v1::Health::NewStub(gated_channel_)->Check(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  // Through the ungated server, as the gated one may be shut down.
  std::vector<std::string> ServerNames() {
    grpc::ClientContext context;
    Authorize(context);
    pb::ListServerResponse response;
    const grpc::Status status =
        pb::ServerAPI::NewStub(channel_)->ListServer(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> names;
    for (const pb::Server& server : response.servers()) {
      names.push_back(server.name());
    }
    return names;
  }

  std::unique_ptr<Gate> gate_;
  std::unique_ptr<api::Dispatcher> gated_dispatcher_;
  std::unique_ptr<GrpcServer> gated_;
  std::shared_ptr<grpc::Channel> gated_channel_;
  std::unique_ptr<pb::NamespaceAPI::Stub> namespaces_;
  std::unique_ptr<pb::ServerAPI::Stub> servers_;
  std::unique_ptr<pb::ServiceAPI::Stub> services_;
  // Calls of the gated method that hold the workers, and the others.
  std::unique_ptr<Flight> blocked_;
  std::unique_ptr<Flight> flight_;
};

// Far more calls than workers, each blocking its worker at first: they wait in the queue, none is
// refused, and all are answered once the workers are free.
TEST_F(GrpcQueueTest, QueuesCallsBeyondTheWorkersInsteadOfRefusingThem) {
  constexpr int kWorkers = 4;
  constexpr int kCalls = 500;
  StartGated("ListNamespace", {.workers = kWorkers});
  for (int i = 0; i < kCalls; ++i) {
    ListNamespace(*blocked_, fmt::format("list{}", i));
  }
  EXPECT_EQ(gate_->AwaitHeld(kWorkers), kWorkers);
  gate_->Open();
  const std::vector<Flight::Outcome> outcomes = blocked_->AwaitCompleted(kCalls);
  ASSERT_EQ(outcomes.size(), kCalls);
  int ok = 0;
  for (const Flight::Outcome& outcome : outcomes) {
    EXPECT_TRUE(outcome.status.ok()) << outcome.label << ": " << outcome.status.error_code() << " "
                                     << outcome.status.error_message();
    ok += outcome.status.ok() ? 1 : 0;
  }
  EXPECT_EQ(ok, kCalls);
  EXPECT_EQ(gate_->handled().size(), kCalls);
}

// Beyond max_queued_calls waiting calls the server answers UNAVAILABLE, which clients retry, and
// keeps serving what it queued.
TEST_F(GrpcQueueTest, AnswersUnavailableBeyondTheQueueBound) {
  StartGated("ListNamespace", {.workers = 1, .max_queued_calls = 3});
  ListNamespace(*blocked_, "blocked");
  ASSERT_EQ(gate_->AwaitHeld(1), 1);

  for (int i = 0; i < 10; ++i) {
    RegisterServer(*flight_, fmt::format("p{}", i));
  }
  // The worker is held, so three calls wait in the queue and the other seven are refused.
  const std::vector<Flight::Outcome> refused = flight_->AwaitCompleted(7);
  ASSERT_EQ(refused.size(), 7U);
  for (const Flight::Outcome& outcome : refused) {
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::UNAVAILABLE) << outcome.label;
    EXPECT_THAT(outcome.status.error_message(), HasSubstr("overloaded")) << outcome.label;
  }
  gate_->Open();
  EXPECT_TRUE(blocked_->AwaitCompleted(1).at(0).status.ok());
  const std::vector<Flight::Outcome> all = flight_->AwaitCompleted(10);
  std::vector<std::string> registered;
  for (size_t i = 7; i < all.size(); ++i) {
    EXPECT_TRUE(all[i].status.ok()) << all[i].label << ": " << all[i].status.error_message();
    registered.push_back(all[i].label);
  }
  EXPECT_THAT(ServerNames(), ::testing::UnorderedElementsAreArray(registered));
  EXPECT_EQ(registered.size(), 3U);
}

// A call whose client cancelled it while it waited for a worker is answered without running.
TEST_F(GrpcQueueTest, DoesNotRunQueuedCallsTheirClientCancelled) {
  StartGated("ListNamespace", {.workers = 1});
  ListNamespace(*blocked_, "blocked");
  ASSERT_EQ(gate_->AwaitHeld(1), 1);

  grpc::ClientContext& gone = RegisterServer(*flight_, "gone");
  RoundTrip();
  gone.TryCancel();
  EXPECT_EQ(flight_->AwaitCompleted(1).at(0).status.error_code(), grpc::StatusCode::CANCELLED);
  RoundTrip();
  RegisterServer(*flight_, "kept");
  gate_->Open();
  EXPECT_TRUE(blocked_->AwaitCompleted(1).at(0).status.ok());
  const std::vector<Flight::Outcome> outcomes = flight_->AwaitCompleted(2);
  EXPECT_TRUE(outcomes.at(1).status.ok()) << outcomes.at(1).status.error_message();
  EXPECT_THAT(ServerNames(), ElementsAre("kept"));
  EXPECT_THAT(gate_->handled(),
              Contains(Pair(HasSubstr("RegisterServer"), absl::StatusCode::kCancelled)));
}

// A registration needing nothing but memory (a caller verified before, a namespace the view
// knows) is started on gRPC's thread: answered while the only worker is held. One that has to
// ask the store (an unknown namespace) waits for the worker, and is answered once it is free.
TEST_F(GrpcQueueTest, StartsRegistrationsNeedingOnlyMemoryWithoutAWorker) {
  StartGated("ListNamespace", {.workers = 1});
  // Through the ungated server, which verifies the token for both (one authenticator).
  ASSERT_NO_FATAL_FAILURE(AddServer("p1"));
  ListNamespace(*blocked_, "blocked");
  ASSERT_EQ(gate_->AwaitHeld(1), 1);

  RegisterService(*flight_, "http://host1.example.com:9100/metrics", "default");
  ASSERT_TRUE(flight_->AwaitCompletedWithin(1, absl::Seconds(30)))
      << "the registration waited for the held worker";
  std::vector<Flight::Outcome> outcomes = flight_->AwaitCompleted(1);
  ASSERT_EQ(outcomes.size(), 1U);
  EXPECT_TRUE(outcomes[0].status.ok()) << outcomes[0].status.error_message();
  EXPECT_EQ(gate_->AwaitHeld(1), 1) << "the worker was freed before the registration was answered";

  RegisterService(*flight_, "http://host2.example.com:9100/metrics", "nowhere");
  RoundTrip();
  gate_->Open();
  EXPECT_TRUE(blocked_->AwaitCompleted(1).at(0).status.ok());
  outcomes = flight_->AwaitCompleted(2);
  ASSERT_EQ(outcomes.size(), 2U);
  EXPECT_EQ(outcomes[1].status.error_code(), grpc::StatusCode::NOT_FOUND)
      << outcomes[1].status.error_message();
  EXPECT_THAT(outcomes[1].status.error_message(), HasSubstr("namespace nowhere not found"));
  ASSERT_OK_AND_ASSIGN(std::vector<Service> listed, registry_->ListServices("default"));
  ASSERT_EQ(listed.size(), 1U);
  EXPECT_EQ(listed[0].endpoint, "http://host1.example.com:9100/metrics");
}

// Shutdown lets queued calls wait for the grace period only: then they are answered UNAVAILABLE,
// and it returns once the running call is done.
TEST_F(GrpcQueueTest, ShutdownAnswersCallsStillQueuedAfterTheGraceUnavailable) {
  StartGated("ListNamespace", {.workers = 1});
  ListNamespace(*blocked_, "blocked");
  ASSERT_EQ(gate_->AwaitHeld(1), 1);
  for (int i = 0; i < 3; ++i) {
    RegisterServer(*flight_, fmt::format("p{}", i));
  }
  // The three calls are queued before the shutdown refuses new ones.
  RoundTrip();

  std::jthread shutdown([this] { gated_->Shutdown(absl::Milliseconds(100)); });
  const std::vector<Flight::Outcome> outcomes = flight_->AwaitCompleted(3);
  for (const Flight::Outcome& outcome : outcomes) {
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::UNAVAILABLE) << outcome.label;
    EXPECT_THAT(outcome.status.error_message(), HasSubstr("shutting down")) << outcome.label;
  }
  gate_->Open();
  shutdown.join();
  EXPECT_THAT(blocked_->AwaitCompleted(1), Not(IsEmpty()));
  EXPECT_THAT(ServerNames(), IsEmpty());
}

// A store whose commits, while held, wait until they are released; Commit waits as
// CommitAsync does, so a caller that commits synchronously is held as well.
class HeldCommitStore final : public store::Store {
 public:
  explicit HeldCommitStore(std::unique_ptr<store::Store> inner) : inner_(std::move(inner)) {}

  absl::StatusOr<store::KeyValue> Get(std::string_view key) override { return inner_->Get(key); }
  absl::StatusOr<store::RangeResult> Range(std::string_view prefix) override {
    return inner_->Range(prefix);
  }
  absl::StatusOr<store::TxnResult> Commit(const store::Txn& txn) override {
    absl::Notification answered;
    absl::StatusOr<store::TxnResult> answer;
    CommitAsync(txn, [&](absl::StatusOr<store::TxnResult> result) {
      answer = std::move(result);
      answered.Notify();
    });
    answered.WaitForNotification();
    return answer;
  }
  void CommitAsync(store::Txn txn, CommitCallback done) override {
    {
      absl::MutexLock lock(&mu_);
      if (held_) {
        waiting_.emplace_back(std::move(txn), std::move(done));
        return;
      }
    }
    inner_->CommitAsync(std::move(txn), std::move(done));
  }
  absl::StatusOr<std::unique_ptr<store::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, store::WatchCallback callback) override {
    return inner_->Watch(prefix, start_revision, std::move(callback));
  }
  absl::StatusOr<int64_t> CurrentRevision() override { return inner_->CurrentRevision(); }

  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  // Waits until `n` commits are held; the timeout only bounds a failing test.
  bool AwaitHeld(size_t n) {
    absl::MutexLock lock(&mu_);
    const auto enough = [this, n]()
                            ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiting_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
  }
  void Release() {
    std::vector<std::pair<store::Txn, CommitCallback>> waiting;
    {
      absl::MutexLock lock(&mu_);
      held_ = false;
      waiting.swap(waiting_);
    }
    for (auto& [txn, done] : waiting) {
      inner_->CommitAsync(std::move(txn), std::move(done));
    }
  }

 private:
  const std::unique_ptr<store::Store> inner_;
  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<store::Txn, CommitCallback>> waiting_ ABSL_GUARDED_BY(mu_);
};

class GrpcAsyncWriteTest : public GrpcServerTest {
 protected:
  std::unique_ptr<store::Store> WrapStore(std::unique_ptr<store::Store> store) override {
    auto held = std::make_unique<HeldCommitStore>(std::move(store));
    held_ = held.get();
    return held;
  }
  // Released before the registry goes, so that no commit is left waiting.
  void TearDown() override { held_->Release(); }

  HeldCommitStore* held_ = nullptr;
};

// A registration does not keep its worker while its write commits: one worker starts every
// registration in flight and still answers other calls, and all are answered once the store
// commits.
TEST_F(GrpcAsyncWriteTest, ARegistrationWaitingForItsCommitHoldsNoWorker) {
  ASSERT_NO_FATAL_FAILURE(AddServer("p1"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GrpcServer> one_worker,
                       GrpcServer::Start({.listen = "127.0.0.1:0", .workers = 1}, *dispatcher_));
  const std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
      fmt::format("127.0.0.1:{}", one_worker->port()), grpc::InsecureChannelCredentials());
  const std::unique_ptr<pb::ServiceAPI::Stub> services = pb::ServiceAPI::NewStub(channel);
  constexpr int kRegistrations = 20;
  held_->Hold();
  Flight flight(admin_token_);
  for (int i = 0; i < kRegistrations; ++i) {
    std::string endpoint = fmt::format("http://host{}.example.com:9100/metrics", i);
    pb::RegisterServiceRequest request;
    request.set_name("node");
    request.set_endpoint(endpoint);
    flight.Call<pb::RegisterServiceResponse>(
        std::move(endpoint), std::move(request),
        [&services](auto* context, auto* message, auto* response, auto done) {
          services->async()->RegisterService(context, message, response, std::move(done));
        });
  }
  ASSERT_TRUE(held_->AwaitHeld(kRegistrations))
      << "the single worker did not start every registration while the first one's commit "
         "was held";
  {
    grpc::ClientContext context;
    Authorize(context);
    pb::ListNamespaceResponse response;
    const grpc::Status status =
        pb::NamespaceAPI::NewStub(channel)->ListNamespace(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }

  held_->Release();
  const std::vector<Flight::Outcome> outcomes = flight.AwaitCompleted(kRegistrations);
  ASSERT_EQ(outcomes.size(), static_cast<size_t>(kRegistrations));
  for (const Flight::Outcome& outcome : outcomes) {
    EXPECT_TRUE(outcome.status.ok()) << outcome.label << ": " << outcome.status.error_message();
  }
  // Answered once the view shows them.
  ASSERT_OK_AND_ASSIGN(std::vector<Service> listed, registry_->ListServices("default"));
  EXPECT_EQ(listed.size(), static_cast<size_t>(kRegistrations));
}

TEST_F(GrpcServerTest, RefusesNoWorkersAndNoQueue) {
  EXPECT_THAT(GrpcServer::Start({.listen = "127.0.0.1:0", .workers = 0}, *dispatcher_),
              ::discovery::testing::StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GrpcServer::Start({.listen = "127.0.0.1:0", .max_queued_calls = 0}, *dispatcher_),
              ::discovery::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace discovery::grpc_api

namespace discovery::grpc_api {
namespace {

// ListServiceStream: the whole list in messages of at most 1,000 rows, filtered and sorted by
// the server.
TEST_F(GrpcServerTest, StreamsServiceListsInMessagesFilteredAndSorted) {
  ASSERT_THAT(registry_->RegisterServer("prom", {}), IsOk());
  constexpr int kServices = 2100;
  for (int i = 0; i < kServices; ++i) {
    ASSERT_THAT(registry_->RegisterService(
                    {.name = i % 2 == 0 ? "even" : "odd",
                     .endpoint = fmt::format("http://host-{:04}:9100/metrics", kServices - 1 - i),
                     .namespace_name = "default",
                     .labels = {{"team", fmt::format("t{}", i % 3)}}}),
                IsOk());
  }
  auto stub = pb::ServiceAPI::NewStub(channel_);
  const auto list = [&](const pb::ListServiceStreamRequest& request,
                        std::vector<pb::ListServiceStreamResponse>* messages) {
    grpc::ClientContext context;
    Authorize(context);
    std::unique_ptr<grpc::ClientReader<pb::ListServiceStreamResponse>> reader =
        stub->ListServiceStream(&context, request);
    pb::ListServiceStreamResponse message;
    while (reader->Read(&message)) {
      messages->push_back(message);
    }
    return reader->Finish();
  };

  std::vector<pb::ListServiceStreamResponse> messages;
  ASSERT_TRUE(list({}, &messages).ok());
  ASSERT_EQ(messages.size(), 3U);
  EXPECT_EQ(messages[0].total(), static_cast<uint64_t>(kServices));
  EXPECT_EQ(messages[0].services_size(), 1000);
  EXPECT_EQ(messages[2].services_size(), 100);
  EXPECT_EQ(messages[0].services(0).service().endpoint(), "http://host-0000:9100/metrics");
  EXPECT_EQ(messages[2].services(99).service().endpoint(), "http://host-2099:9100/metrics");
  EXPECT_EQ(messages[1].services(0).service().servers(0), "prom");
  EXPECT_EQ(messages[1].services(0).invalid_reason(), "");

  pb::ListServiceStreamRequest filtered;
  filtered.set_filter_name("^even$");
  filtered.set_filter_selector("team=t0");
  filtered.set_filter_endpoint("host-0");
  filtered.set_sort_by("date");
  messages.clear();
  ASSERT_TRUE(list(filtered, &messages).ok());
  ASSERT_EQ(messages.size(), 1U);
  // i even and a multiple of 3, endpoint host-0xxx: 2099 - i < 1000, so i in [1104, 2094] by 6.
  EXPECT_EQ(messages[0].total(), 166U);
  ASSERT_EQ(messages[0].services_size(), 166);
  // Newest first: the last registered (i = 2094, host-0005) leads.
  EXPECT_EQ(messages[0].services(0).service().endpoint(), "http://host-0005:9100/metrics");

  pb::ListServiceStreamRequest bad;
  bad.set_filter_name("(");
  messages.clear();
  const grpc::Status refused = list(bad, &messages);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("invalid filter_name"));
  EXPECT_TRUE(messages.empty());

  grpc::ClientContext anonymous;
  auto reader = stub->ListServiceStream(&anonymous, {});
  pb::ListServiceStreamResponse message;
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(GrpcServerTest, StreamsAnEmptyListAsOneMessage) {
  auto stub = pb::ServiceAPI::NewStub(channel_);
  grpc::ClientContext context;
  Authorize(context);
  auto reader = stub->ListServiceStream(&context, {});
  pb::ListServiceStreamResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_EQ(message.total(), 0U);
  EXPECT_EQ(message.services_size(), 0);
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_TRUE(reader->Finish().ok());
}

}  // namespace
}  // namespace discovery::grpc_api
