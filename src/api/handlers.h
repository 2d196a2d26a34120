// The four APIs of postfinance.discovery.v1 as transport-neutral handlers: a Principal plus a
// request message in, a response message or a status out. Authorization (docs/decisions.md D32 and
// D14) and proto <-> model conversion happen here, so gRPC and REST, which both delegate
// to these handlers, behave identically by construction.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "auth/authorizer.h"
#include "auth/machine_token.h"
#include "auth/principal.h"
#include "postfinance/discovery/v1/namespace_api.pb.h"
#include "postfinance/discovery/v1/server_api.pb.h"
#include "postfinance/discovery/v1/service_api.pb.h"
#include "postfinance/discovery/v1/token_api.pb.h"
#include "registry/registry.h"

namespace discovery::api {

namespace pb = ::postfinance::discovery::v1;

struct HandlerOptions {
  // Issuer and secret of machine tokens created by TokenAPI/Create and checked by Info.
  auth::MachineTokenOptions tokens;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// A row of ServiceAPI/ListServiceStream's answer: a service, or a stored record that cannot be
// served and why.
struct ListedService {
  Service service;
  std::string invalid_reason;  // "" for a served service
};

// Appends `row` to a ListService answer: to its services, or to its invalid services with the
// reason.
void AddTo(pb::ListServiceResponse& response, ListedService row);

// The rows of ServiceAPI/ListServiceStream's answer, filtered, by reference into the snapshot
// they were listed from: a row is copied only when asked for, and only the rows asked for are
// put in order, so that a page of a list of a million costs O(n) instead of O(n log n) and a
// copy of every service.
class ServiceListing {
 public:
  // kListed: as ListService answers, served services by namespace and id, then invalid records.
  enum class Order { kEndpoint, kNewestFirst, kListed };

  ServiceListing(registry::ServiceRefs rows, Order order);

  size_t size() const { return rows_.refs.size(); }
  // Puts every row in order, for an answer of all of them.
  void OrderAll();
  // The rows [begin, end) of the ordered list (end clamped to size()), copied. Only as many rows
  // as that needs are put in order; the answer is the same as after OrderAll.
  std::vector<ListedService> Rows(size_t begin, size_t end);
  // The same rows, each copied only for the call of `visit` it is passed to, so that an answer
  // of all rows never holds a copy of every one.
  void VisitRows(size_t begin, size_t end, absl::FunctionRef<void(ListedService)> visit);

 private:
  // A strict total order: the requested one, then the order listed (served by namespace and id,
  // then invalid records), so that any range of it is the same however it was computed.
  bool Before(uint32_t a, uint32_t b) const;

  registry::ServiceRefs rows_;
  Order order_;
  std::vector<uint32_t> order_of_rows_;  // indexes into rows_.refs
  bool ordered_ = false;
};

// Every method is thread-safe. `registry` and `authorizer` must outlive the handlers.
class Handlers {
 public:
  Handlers(registry::Registry& registry, const auth::Authorizer& authorizer,
           HandlerOptions options);

  absl::StatusOr<pb::RegisterNamespaceResponse> RegisterNamespace(
      const auth::Principal& principal, const pb::RegisterNamespaceRequest& request);
  absl::StatusOr<pb::UnregisterNamespaceResponse> UnregisterNamespace(
      const auth::Principal& principal, const pb::UnregisterNamespaceRequest& request);
  absl::StatusOr<pb::ListNamespaceResponse> ListNamespace(const auth::Principal& principal,
                                                          const pb::ListNamespaceRequest& request);

  absl::StatusOr<pb::RegisterServerResponse> RegisterServer(
      const auth::Principal& principal, const pb::RegisterServerRequest& request);
  absl::StatusOr<pb::UnregisterServerResponse> UnregisterServer(
      const auth::Principal& principal, const pb::UnregisterServerRequest& request);
  absl::StatusOr<pb::ListServerResponse> ListServer(const auth::Principal& principal,
                                                    const pb::ListServerRequest& request);

  absl::StatusOr<pb::RegisterServiceResponse> RegisterService(
      const auth::Principal& principal, const pb::RegisterServiceRequest& request);
  // RegisterService answering `done` later rather than holding the caller's thread (see
  // Registry::RegisterServiceAsync for the thread `done` runs on).
  template <typename Response>
  using Answer = absl::AnyInvocable<void(absl::StatusOr<Response>) &&>;
  void RegisterServiceAsync(const auth::Principal& principal,
                            const pb::RegisterServiceRequest& request,
                            Answer<pb::RegisterServiceResponse> done);
  // RegisterServiceAsync without blocking (Registry::RegisterServiceFromMemory): an empty
  // Answer when the call was taken, else `done` back, untouched.
  Answer<pb::RegisterServiceResponse> RegisterServiceFromMemory(
      const auth::Principal& principal, const pb::RegisterServiceRequest& request,
      Answer<pb::RegisterServiceResponse> done);
  absl::StatusOr<pb::UnRegisterServiceResponse> UnRegisterService(
      const auth::Principal& principal, const pb::UnRegisterServiceRequest& request);
  // Renews services registered with a TTL (the same permission as registering them).
  absl::StatusOr<pb::KeepAliveResponse> KeepAlive(const auth::Principal& principal,
                                                  const pb::KeepAliveRequest& request);
  absl::StatusOr<pb::ListServiceResponse> ListService(const auth::Principal& principal,
                                                      const pb::ListServiceRequest& request);
  // ListService's answer as rows by reference, in its order (ServiceListing::Order::kListed):
  // REST prints them a part at a time instead of building the whole message.
  absl::StatusOr<ServiceListing> ListServiceRows(const auth::Principal& principal,
                                                 const pb::ListServiceRequest& request);
  // The rows of ListServiceStream, filtered, to be ordered as requested; the gRPC adapter cuts
  // them into messages as the client reads, REST answers a page. InvalidArgument for a filter
  // that does not compile.
  absl::StatusOr<ServiceListing> ListServiceStream(const auth::Principal& principal,
                                                   const pb::ListServiceStreamRequest& request);
  absl::StatusOr<pb::ListTargetGroupResponse> ListTargetGroup(
      const auth::Principal& principal, const pb::ListTargetGroupRequest& request);
  // http_sd: the same selection as ListTargetGroup, already rendered, with its ETag.
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> HttpSd(
      const auth::Principal& principal, const pb::ListTargetGroupRequest& request);
  // HttpSd without rendering: OK(nullptr) when the body is not rendered yet
  // (registry::Registry::CachedHttpSd). Never blocks.
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> CachedHttpSd(
      const auth::Principal& principal, const pb::ListTargetGroupRequest& request);

  absl::StatusOr<pb::CreateResponse> Create(const auth::Principal& principal,
                                            const pb::CreateRequest& request);
  absl::StatusOr<pb::InfoResponse> Info(const auth::Principal& principal,
                                        const pb::InfoRequest& request);
  // Admin only (as Create). The revocation lives in the store: every replica refuses the token
  // once its view has it.
  absl::StatusOr<pb::RevokeResponse> Revoke(const auth::Principal& principal,
                                            const pb::RevokeRequest& request);
  absl::StatusOr<pb::ListRevokedResponse> ListRevoked(const auth::Principal& principal,
                                                      const pb::ListRevokedRequest& request);
  // Every authenticated principal may ask who it is and what it may change.
  absl::StatusOr<pb::WhoAmIResponse> WhoAmI(const auth::Principal& principal,
                                            const pb::WhoAmIRequest& request);

 private:
  registry::Registry& registry_;
  const auth::Authorizer& authorizer_;
  const HandlerOptions options_;
};

}  // namespace discovery::api
