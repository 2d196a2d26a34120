#include "api/grpc/grpc_server.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "fmt/format.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

#include "api/convert.h"
#include "common/file.h"
#include "common/format.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "postfinance/discovery/v1/namespace_api.grpc.pb.h"
#include "postfinance/discovery/v1/server_api.grpc.pb.h"
#include "postfinance/discovery/v1/service_api.grpc.pb.h"
#include "postfinance/discovery/v1/token_api.grpc.pb.h"

namespace discovery::grpc_api {
namespace {

namespace pb = ::postfinance::discovery::v1;

// How long gRPC's own shutdown waits beyond the grace period before it cancels what is left: the
// answers of calls finished at the end of the grace (UNAVAILABLE for those still queued) are
// sent rather than cut off.
constexpr absl::Duration kAnswerFlushTime = absl::Seconds(1);

std::string_view Authorization(const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  return it == metadata.end() ? std::string_view{}
                              : std::string_view(it->second.data(), it->second.size());
}

std::string_view Metadata(const grpc::CallbackServerContext& context, const char* key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(key);
  return it == metadata.end() ? std::string_view{}
                              : std::string_view(it->second.data(), it->second.size());
}

// Who is calling, for the dispatcher; `peer` is the context's, kept alive by the caller.
api::CallerInfo CallerOf(const grpc::CallbackServerContext& context, const std::string& peer) {
  return {.authorization = Authorization(context),
          .peer = peer,
          .forwarded_for = Metadata(context, "x-forwarded-for")};
}

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) {
    return grpc::Status::OK;
  }
  return {static_cast<grpc::StatusCode>(status.code()), std::string{status.message()}};
}

}  // namespace

class CallQueue {
 public:
  CallQueue(api::Dispatcher& dispatcher, int workers, size_t max_queued)
      : dispatcher_(dispatcher), max_queued_(max_queued) {
    workers_.reserve(workers);
    for (int i = 0; i < workers; ++i) {
      workers_.emplace_back([this] {
        NameThisThread("grpc-worker");
        Work();
      });
    }
  }
  ~CallQueue() { Drain(absl::InfinitePast()); }
  CallQueue(const CallQueue&) = delete;
  CallQueue& operator=(const CallQueue&) = delete;
  CallQueue(CallQueue&&) = delete;
  CallQueue& operator=(CallQueue&&) = delete;

  // Queues one call of `handler` and returns the reactor its answer goes to. Runs on gRPC's
  // callback threads, which must not block: the call runs later on a worker.
  template <typename Response, typename Request>
  grpc::ServerUnaryReactor* Serve(std::string_view service, std::string_view method,
                                  grpc::CallbackServerContext* context, const Request* request,
                                  Response* response,
                                  api::Dispatcher::Method<Response, Request> handler) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    // gRPC keeps context, request and response alive until the reactor is finished.
    Queue(
        context, fmt::format("{}{}", service, method),
        [context, request, response, handler](api::Dispatcher& dispatcher,
                                              std::string_view full_method) {
          const std::string peer = context->peer();
          DISCOVERY_ASSIGN_OR_RETURN(
              *response,
              dispatcher.Dispatch(full_method, CallerOf(*context, peer), *request, handler));
          return absl::OkStatus();
        },
        [reactor](const absl::Status& status) { reactor->Finish(ToGrpc(status)); });
    return reactor;
  }

  // Serve for a handler that answers later (a write): the call is started (authentication,
  // validation, handing the write to the store) right here when `from_memory` can do that
  // without blocking, else by a worker; the answer is sent from the thread that completes it,
  // so no thread waits while a write commits and reaches the view.
  template <typename Response, typename Request>
  grpc::ServerUnaryReactor* ServeAsync(
      std::string_view service, std::string_view method, grpc::CallbackServerContext* context,
      const Request* request, Response* response,
      api::Dispatcher::AsyncMethod<Response, Request> handler,
      api::Dispatcher::AsyncFromMemoryMethod<Response, Request> from_memory) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    std::string name = fmt::format("{}{}", service, method);
    if (StartFromMemory(name, context, reactor, request, response, from_memory)) {
      return reactor;
    }
    Enqueue(std::make_unique<Call>(Call{
        .context = context,
        .method = std::move(name),
        .start =
            [context, request, response, handler](api::Dispatcher& dispatcher,
                                                  std::string_view full_method, Answer answer) {
              const std::string peer = context->peer();
              dispatcher.DispatchAsync(full_method, CallerOf(*context, peer), *request, handler,
                                       Into(response, std::move(answer)));
            },
        .finish = [reactor](const absl::Status& status) { reactor->Finish(ToGrpc(status)); }}));
    return reactor;
  }

  // Queues one call: `run` runs on a worker, then `finish` gets its outcome; or `finish` alone
  // gets the refusal when the call is not run. Does not block.
  void Queue(grpc::CallbackServerContext* context, std::string method,
             std::function<absl::Status(api::Dispatcher&, std::string_view full_method)> run,
             std::function<void(const absl::Status&)> finish) {
    Enqueue(std::make_unique<Call>(Call{.context = context,
                                        .method = std::move(method),
                                        .run = std::move(run),
                                        .finish = std::move(finish)}));
  }

  // From now on new calls are answered UNAVAILABLE at once.
  void Close() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  // Closes, lets the workers run what is queued until `deadline`, answers what is still queued
  // then UNAVAILABLE and joins the workers (after their running calls return). Idempotent.
  void Drain(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_) {
    std::deque<std::unique_ptr<Call>> left;
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      mu_.AwaitWithDeadline(absl::Condition(this, &CallQueue::Idle), deadline);
      stopping_ = true;
      left.swap(queue_);
    }
    for (const std::unique_ptr<Call>& call : left) {
      Refuse(*call, absl::UnavailableError("the server is shutting down"));
    }
    workers_.clear();
    // Started calls still answering are writes the store took: each ends once it is committed
    // and the view shows it, or view_wait has passed, so this wait is bounded.
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &CallQueue::NoneAnswering));
  }

 private:
  // Sends a started call's outcome; called once, from any thread.
  using Answer = absl::AnyInvocable<void(const absl::Status&) &&>;

  struct Call {
    grpc::CallbackServerContext* context;
    std::string method;  // the full method name
    // Either `run`, whose outcome goes to `finish` as soon as it returns, or `start`, which
    // passes its outcome to the Answer it is given, later and from any thread.
    std::function<absl::Status(api::Dispatcher&, std::string_view full_method)> run;
    std::function<void(api::Dispatcher&, std::string_view full_method, Answer)> start;
    std::function<void(const absl::Status&)> finish;  // answers the call
  };

  // A handler's answer to a started call: the response message into `response`, then `answer`.
  template <typename Response>
  static api::Handlers::Answer<Response> Into(Response* response, Answer answer) {
    return [response, answer = std::move(answer)](absl::StatusOr<Response> result) mutable {
      const absl::Status status = result.status();
      if (status.ok()) {
        *response = *std::move(result);
      }
      std::move(answer)(status);
    };
  }

  // Starts a call of ServeAsync on this (gRPC's) thread when everything it needs is in memory:
  // one thread hand-off less per write, which is most of a fleet's calls. False when it was not
  // started (a caller not verified before, a namespace the view does not know yet, a TTL, or the
  // queue closing), for the workers to start it.
  template <typename Response, typename Request>
  bool StartFromMemory(std::string_view full_method, grpc::CallbackServerContext* context,
                       grpc::ServerUnaryReactor* reactor, const Request* request,
                       Response* response,
                       api::Dispatcher::AsyncFromMemoryMethod<Response, Request> from_memory)
      ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) {
        return false;  // Enqueue answers it
      }
      ++answering_;
    }
    const std::string peer = context->peer();
    Answer answer = [this, reactor](const absl::Status& status) {
      reactor->Finish(ToGrpc(status));
      absl::MutexLock lock(&mu_);
      --answering_;
    };
    api::Handlers::Answer<Response> back =
        dispatcher_.DispatchAsyncFromMemory(full_method, CallerOf(*context, peer), *request,
                                            from_memory, Into(response, std::move(answer)));
    if (back == nullptr) {
      return true;
    }
    absl::MutexLock lock(&mu_);
    --answering_;
    return false;
  }

  void Enqueue(std::unique_ptr<Call> call) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::Status refusal;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) {
        refusal = absl::UnavailableError("the server is shutting down");
      } else if (queue_.size() >= max_queued_) {
        refusal = absl::UnavailableError(fmt::format(
            "the server is overloaded: {} calls are waiting already; retry later", queue_.size()));
      } else {
        queue_.push_back(std::move(call));
        return;
      }
    }
    Refuse(*call, refusal);
  }

  void Work() ABSL_LOCKS_EXCLUDED(mu_) {
    while (true) {
      std::unique_ptr<Call> call;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &CallQueue::HasWorkOrStopping));
        if (queue_.empty()) {
          return;
        }
        call = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
      }
      Run(*call);
      absl::MutexLock lock(&mu_);
      --running_;
    }
  }

  // A call whose client gave up while it waited is not run: nobody would read the answer, and a
  // client that retries after its deadline would otherwise have its write done twice.
  void Run(Call& call) {
    if (call.context->IsCancelled()) {
      Refuse(call, absl::CancelledError("the client cancelled the call before it ran"));
      return;
    }
    if (call.context->deadline() <= std::chrono::system_clock::now()) {
      Refuse(call, absl::DeadlineExceededError("the call's deadline passed before it ran"));
      return;
    }
    if (call.start) {
      {
        absl::MutexLock lock(&mu_);
        ++answering_;
      }
      call.start(dispatcher_, call.method,
                 [this, finish = std::move(call.finish)](const absl::Status& status) {
                   finish(status);
                   absl::MutexLock lock(&mu_);
                   --answering_;
                 });
      return;
    }
    call.finish(call.run(dispatcher_, call.method));
  }

  void Refuse(Call& call, const absl::Status& status) {
    dispatcher_.Refused(call.method, status, call.context->peer());
    call.finish(status);
  }

  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queue_.empty() && running_ == 0 && answering_ == 0;
  }
  bool NoneAnswering() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return answering_ == 0; }
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || stopping_;
  }

  api::Dispatcher& dispatcher_;
  const size_t max_queued_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Call>> queue_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  size_t answering_ ABSL_GUARDED_BY(mu_) = 0;   // started calls not answered yet
  bool closed_ ABSL_GUARDED_BY(mu_) = false;    // new calls are refused
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // workers return once the queue is empty
  std::vector<std::jthread> workers_;
};

namespace {

// Each service declares only the callback form of its methods; the using-declarations keep the
// synchronous forms of the generated base (which the callback service never calls) visible.
class NamespaceService final : public pb::NamespaceAPI::CallbackService {
 public:
  explicit NamespaceService(CallQueue& calls) : calls_(calls) {}
  using pb::NamespaceAPI::CallbackService::ListNamespace;
  using pb::NamespaceAPI::CallbackService::RegisterNamespace;
  using pb::NamespaceAPI::CallbackService::UnregisterNamespace;
  grpc::ServerUnaryReactor* RegisterNamespace(grpc::CallbackServerContext* context,
                                              const pb::RegisterNamespaceRequest* request,
                                              pb::RegisterNamespaceResponse* response) override {
    return calls_.Serve(api::kNamespaceApi, "RegisterNamespace", context, request, response,
                        &api::Handlers::RegisterNamespace);
  }
  grpc::ServerUnaryReactor* UnregisterNamespace(
      grpc::CallbackServerContext* context, const pb::UnregisterNamespaceRequest* request,
      pb::UnregisterNamespaceResponse* response) override {
    return calls_.Serve(api::kNamespaceApi, "UnregisterNamespace", context, request, response,
                        &api::Handlers::UnregisterNamespace);
  }
  grpc::ServerUnaryReactor* ListNamespace(grpc::CallbackServerContext* context,
                                          const pb::ListNamespaceRequest* request,
                                          pb::ListNamespaceResponse* response) override {
    return calls_.Serve(api::kNamespaceApi, "ListNamespace", context, request, response,
                        &api::Handlers::ListNamespace);
  }

 private:
  CallQueue& calls_;
};

class ServerService final : public pb::ServerAPI::CallbackService {
 public:
  explicit ServerService(CallQueue& calls) : calls_(calls) {}
  using pb::ServerAPI::CallbackService::ListServer;
  using pb::ServerAPI::CallbackService::RegisterServer;
  using pb::ServerAPI::CallbackService::UnregisterServer;
  grpc::ServerUnaryReactor* RegisterServer(grpc::CallbackServerContext* context,
                                           const pb::RegisterServerRequest* request,
                                           pb::RegisterServerResponse* response) override {
    return calls_.Serve(api::kServerApi, "RegisterServer", context, request, response,
                        &api::Handlers::RegisterServer);
  }
  grpc::ServerUnaryReactor* UnregisterServer(grpc::CallbackServerContext* context,
                                             const pb::UnregisterServerRequest* request,
                                             pb::UnregisterServerResponse* response) override {
    return calls_.Serve(api::kServerApi, "UnregisterServer", context, request, response,
                        &api::Handlers::UnregisterServer);
  }
  grpc::ServerUnaryReactor* ListServer(grpc::CallbackServerContext* context,
                                       const pb::ListServerRequest* request,
                                       pb::ListServerResponse* response) override {
    return calls_.Serve(api::kServerApi, "ListServer", context, request, response,
                        &api::Handlers::ListServer);
  }

 private:
  CallQueue& calls_;
};

// ServiceAPI/ListServiceStream: the rows are listed (by reference into one snapshot) and ordered
// on a worker like any call's answer, then written a message at a time as the client reads, each
// message's services copied and converted to proto only when its turn comes, so the answer is
// never held whole, neither as copies nor as one message of any size.
class ServiceListWriter final : public grpc::ServerWriteReactor<pb::ListServiceStreamResponse> {
 public:
  // Rows per message: a few hundred KiB of typical services, far below the 4 MiB every gRPC
  // client accepts by default.
  static constexpr size_t kRowsPerMessage = 1000;

  ServiceListWriter(CallQueue& calls, grpc::CallbackServerContext* context,
                    const pb::ListServiceStreamRequest* request) {
    // gRPC keeps context and request alive until the reactor is finished.
    calls.Queue(
        context, fmt::format("{}ListServiceStream", api::kServiceApi),
        [this, context, request](api::Dispatcher& dispatcher, std::string_view full_method) {
          const std::string peer = context->peer();
          DISCOVERY_ASSIGN_OR_RETURN(
              listing_, dispatcher.Dispatch(full_method, CallerOf(*context, peer), *request,
                                            &api::Handlers::ListServiceStream));
          listing_->OrderAll();
          return absl::OkStatus();
        },
        [this](const absl::Status& status) {
          if (!status.ok()) {
            Finish(ToGrpc(status));
            return;
          }
          WriteNext();
        });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {  // the client cancelled or went away
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
      return;
    }
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  // Writes the next message, the first one (with the total) even for an empty list.
  void WriteNext() {
    if (next_ == listing_->size() && started_) {
      Finish(grpc::Status::OK);
      return;
    }
    message_.Clear();
    if (!started_) {
      message_.set_total(listing_->size());
      started_ = true;
    }
    std::vector<api::ListedService> rows = listing_->Rows(next_, next_ + kRowsPerMessage);
    next_ += rows.size();
    message_.mutable_services()->Reserve(static_cast<int>(rows.size()));
    for (api::ListedService& listed : rows) {
      pb::ListedService* row = message_.add_services();
      *row->mutable_service() = api::ToProto(listed.service);
      row->set_invalid_reason(std::move(listed.invalid_reason));
    }
    StartWrite(&message_);
  }

  // Set on the worker before the first write; a row is copied when its message is written.
  std::optional<api::ServiceListing> listing_;
  size_t next_ = 0;                        // the first row not yet written
  bool started_ = false;                   // the first message (with the total) is written
  pb::ListServiceStreamResponse message_;  // being written; alive until OnWriteDone
};

class ServiceService final : public pb::ServiceAPI::CallbackService {
 public:
  explicit ServiceService(CallQueue& calls) : calls_(calls) {}
  using pb::ServiceAPI::CallbackService::KeepAlive;
  using pb::ServiceAPI::CallbackService::ListService;
  using pb::ServiceAPI::CallbackService::ListServiceStream;
  using pb::ServiceAPI::CallbackService::ListTargetGroup;
  using pb::ServiceAPI::CallbackService::RegisterService;
  using pb::ServiceAPI::CallbackService::UnRegisterService;
  grpc::ServerUnaryReactor* RegisterService(grpc::CallbackServerContext* context,
                                            const pb::RegisterServiceRequest* request,
                                            pb::RegisterServiceResponse* response) override {
    return calls_.ServeAsync(api::kServiceApi, "RegisterService", context, request, response,
                             &api::Handlers::RegisterServiceAsync,
                             &api::Handlers::RegisterServiceFromMemory);
  }
  grpc::ServerUnaryReactor* UnRegisterService(grpc::CallbackServerContext* context,
                                              const pb::UnRegisterServiceRequest* request,
                                              pb::UnRegisterServiceResponse* response) override {
    return calls_.Serve(api::kServiceApi, "UnRegisterService", context, request, response,
                        &api::Handlers::UnRegisterService);
  }
  grpc::ServerUnaryReactor* KeepAlive(grpc::CallbackServerContext* context,
                                      const pb::KeepAliveRequest* request,
                                      pb::KeepAliveResponse* response) override {
    return calls_.Serve(api::kServiceApi, "KeepAlive", context, request, response,
                        &api::Handlers::KeepAlive);
  }
  grpc::ServerUnaryReactor* ListService(grpc::CallbackServerContext* context,
                                        const pb::ListServiceRequest* request,
                                        pb::ListServiceResponse* response) override {
    return calls_.Serve(api::kServiceApi, "ListService", context, request, response,
                        &api::Handlers::ListService);
  }
  grpc::ServerUnaryReactor* ListTargetGroup(grpc::CallbackServerContext* context,
                                            const pb::ListTargetGroupRequest* request,
                                            pb::ListTargetGroupResponse* response) override {
    return calls_.Serve(api::kServiceApi, "ListTargetGroup", context, request, response,
                        &api::Handlers::ListTargetGroup);
  }
  grpc::ServerWriteReactor<pb::ListServiceStreamResponse>* ListServiceStream(
      grpc::CallbackServerContext* context, const pb::ListServiceStreamRequest* request) override {
    return new ServiceListWriter(calls_, context, request);
  }

 private:
  CallQueue& calls_;
};

class TokenService final : public pb::TokenAPI::CallbackService {
 public:
  explicit TokenService(CallQueue& calls) : calls_(calls) {}
  using pb::TokenAPI::CallbackService::Create;
  using pb::TokenAPI::CallbackService::Info;
  using pb::TokenAPI::CallbackService::ListRevoked;
  using pb::TokenAPI::CallbackService::Revoke;
  using pb::TokenAPI::CallbackService::WhoAmI;
  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* context,
                                   const pb::CreateRequest* request,
                                   pb::CreateResponse* response) override {
    return calls_.Serve(api::kTokenApi, "Create", context, request, response,
                        &api::Handlers::Create);
  }
  grpc::ServerUnaryReactor* Info(grpc::CallbackServerContext* context,
                                 const pb::InfoRequest* request,
                                 pb::InfoResponse* response) override {
    return calls_.Serve(api::kTokenApi, "Info", context, request, response, &api::Handlers::Info);
  }
  grpc::ServerUnaryReactor* Revoke(grpc::CallbackServerContext* context,
                                   const pb::RevokeRequest* request,
                                   pb::RevokeResponse* response) override {
    return calls_.Serve(api::kTokenApi, "Revoke", context, request, response,
                        &api::Handlers::Revoke);
  }
  grpc::ServerUnaryReactor* ListRevoked(grpc::CallbackServerContext* context,
                                        const pb::ListRevokedRequest* request,
                                        pb::ListRevokedResponse* response) override {
    return calls_.Serve(api::kTokenApi, "ListRevoked", context, request, response,
                        &api::Handlers::ListRevoked);
  }
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* context,
                                   const pb::WhoAmIRequest* request,
                                   pb::WhoAmIResponse* response) override {
    return calls_.Serve(api::kTokenApi, "WhoAmI", context, request, response,
                        &api::Handlers::WhoAmI);
  }

 private:
  CallQueue& calls_;
};

absl::StatusOr<std::string> ReadTlsFile(const std::string& path, std::string_view what) {
  absl::StatusOr<std::string> content = ReadFile(path, {.what = what});
  if (!content.ok()) {
    return absl::InvalidArgumentError(content.status().message());
  }
  return content;
}

}  // namespace

struct GrpcServer::Services {
  explicit Services(CallQueue& calls)
      : namespaces(calls), servers(calls), services(calls), tokens(calls) {}
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

GrpcServer::GrpcServer() = default;

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(const GrpcServerOptions& options,
                                                              api::Dispatcher& dispatcher) {
  if (options.workers < 1) {
    return absl::InvalidArgumentError(
        fmt::format("the gRPC server needs at least one worker, not {}", options.workers));
  }
  if (options.max_queued_calls < 1) {
    return absl::InvalidArgumentError("the gRPC server must queue at least one call");
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (options.tls.has_value()) {
    DISCOVERY_ASSIGN_OR_RETURN(std::string cert,
                               ReadTlsFile(options.tls->cert_file, "the TLS certificate file"));
    DISCOVERY_ASSIGN_OR_RETURN(std::string key,
                               ReadTlsFile(options.tls->key_file, "the TLS key file"));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    credentials = grpc::SslServerCredentials(ssl);
  }

  // Process-wide switches; both must be set before the builder is created.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<GrpcServer> server(new GrpcServer());
  server->calls_ =
      std::make_unique<CallQueue>(dispatcher, options.workers, options.max_queued_calls);
  server->services_ = std::make_unique<Services>(*server->calls_);
  grpc::ServerBuilder builder;
  const std::string address = GrpcListenAddress(options.listen);
  // gRPC sets SO_REUSEPORT by default: a second discoveryd on the same address would start and
  // take half of the calls, as an HTTP listener on a taken port does not.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(address, credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.RegisterService(&server->services_->namespaces);
  builder.RegisterService(&server->services_->servers);
  builder.RegisterService(&server->services_->services);
  builder.RegisterService(&server->services_->tokens);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(fmt::format(
        "cannot listen for gRPC on {}: the address is in use by another process, or not one of "
        "this host",
        options.listen));
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
  const absl::Time deadline = absl::Now() + grace;
  calls_->Close();
  {
    // gRPC's Shutdown stops taking calls at once but returns only when every call it handed out
    // is finished, and the queued ones are finished by Drain: the two run side by side.
    std::jthread stopper(
        [this, deadline] { server_->Shutdown(absl::ToChronoTime(deadline + kAnswerFlushTime)); });
    calls_->Drain(deadline);
  }
  server_->Wait();
}

}  // namespace discovery::grpc_api
