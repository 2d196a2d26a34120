#include "api/handlers.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

#include "fmt/format.h"

#include "api/convert.h"
#include "common/format.h"
#include "common/go_duration.h"
#include "common/status_macros.h"
#include "selector/regex_filter.h"
#include "selector/selector.h"

namespace discovery::api {

using selector::RegexFilter;

Handlers::Handlers(registry::Registry& registry, const auth::Authorizer& authorizer,
                   HandlerOptions options)
    : registry_(registry), authorizer_(authorizer), options_(std::move(options)) {}

absl::StatusOr<pb::RegisterNamespaceResponse> Handlers::RegisterNamespace(
    const auth::Principal& principal, const pb::RegisterNamespaceRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRegisterNamespace(principal));
  DISCOVERY_ASSIGN_OR_RETURN(
      Namespace ns,
      registry_.RegisterNamespace(request.name(), static_cast<ExportConfig>(request.export_())));
  pb::RegisterNamespaceResponse response;
  *response.mutable_namespace_() = ToProto(ns);
  return response;
}

absl::StatusOr<pb::UnregisterNamespaceResponse> Handlers::UnregisterNamespace(
    const auth::Principal& principal, const pb::UnregisterNamespaceRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanUnregisterNamespace(principal));
  DISCOVERY_RETURN_IF_ERROR(registry_.UnregisterNamespace(request.name()));
  return pb::UnregisterNamespaceResponse{};
}

absl::StatusOr<pb::ListNamespaceResponse> Handlers::ListNamespace(
    const auth::Principal& principal, const pb::ListNamespaceRequest& /*request*/) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  DISCOVERY_ASSIGN_OR_RETURN(std::vector<Namespace> namespaces, registry_.ListNamespaces());
  pb::ListNamespaceResponse response;
  for (const Namespace& ns : namespaces) {
    *response.add_namespaces() = ToProto(ns);
  }
  return response;
}

absl::StatusOr<pb::RegisterServerResponse> Handlers::RegisterServer(
    const auth::Principal& principal, const pb::RegisterServerRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRegisterServer(principal));
  DISCOVERY_ASSIGN_OR_RETURN(
      Server server, registry_.RegisterServer(request.name(), LabelsFromProto(request.labels())));
  pb::RegisterServerResponse response;
  *response.mutable_server() = ToProto(server);
  return response;
}

absl::StatusOr<pb::UnregisterServerResponse> Handlers::UnregisterServer(
    const auth::Principal& principal, const pb::UnregisterServerRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanUnregisterServer(principal));
  DISCOVERY_RETURN_IF_ERROR(registry_.UnregisterServer(request.name()));
  return pb::UnregisterServerResponse{};
}

absl::StatusOr<pb::ListServerResponse> Handlers::ListServer(
    const auth::Principal& principal, const pb::ListServerRequest& /*request*/) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  DISCOVERY_ASSIGN_OR_RETURN(std::vector<Server> servers, registry_.ListServers());
  pb::ListServerResponse response;
  for (const Server& server : servers) {
    *response.add_servers() = ToProto(server);
  }
  return response;
}

namespace {

registry::ServiceRegistration RegistrationOf(const pb::RegisterServiceRequest& request) {
  return {.name = request.name(),
          .endpoint = request.endpoint(),
          .namespace_name = request.namespace_(),
          .selector = request.selector(),
          .labels = LabelsFromProto(request.labels()),
          .description = request.description(),
          .ttl = DurationFromProto(request.ttl())};
}

pb::RegisterServiceResponse RegisterServiceResponseOf(const Service& service) {
  pb::RegisterServiceResponse response;
  *response.mutable_service() = ToProto(service);
  return response;
}

// A row as ListServiceStream and ListService answer it: the service copied with its servers and
// the deadline in force.
ListedService Listed(const registry::ServiceRef& ref) {
  return {.service = ref.Copy(),
          .invalid_reason = ref.invalid_reason != nullptr ? *ref.invalid_reason : ""};
}

}  // namespace

absl::StatusOr<pb::RegisterServiceResponse> Handlers::RegisterService(
    const auth::Principal& principal, const pb::RegisterServiceRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanChangeService(principal, request.namespace_()));
  DISCOVERY_ASSIGN_OR_RETURN(Service service, registry_.RegisterService(RegistrationOf(request)));
  return RegisterServiceResponseOf(service);
}

void Handlers::RegisterServiceAsync(const auth::Principal& principal,
                                    const pb::RegisterServiceRequest& request,
                                    Answer<pb::RegisterServiceResponse> done) {
  if (absl::Status allowed = authorizer_.CanChangeService(principal, request.namespace_());
      !allowed.ok()) {
    std::move(done)(std::move(allowed));
    return;
  }
  registry_.RegisterServiceAsync(RegistrationOf(request),
                                 [done = std::move(done)](absl::StatusOr<Service> service) mutable {
                                   if (!service.ok()) {
                                     std::move(done)(service.status());
                                     return;
                                   }
                                   std::move(done)(RegisterServiceResponseOf(*service));
                                 });
}

Handlers::Answer<pb::RegisterServiceResponse> Handlers::RegisterServiceFromMemory(
    const auth::Principal& principal, const pb::RegisterServiceRequest& request,
    Answer<pb::RegisterServiceResponse> done) {
  if (absl::Status allowed = authorizer_.CanChangeService(principal, request.namespace_());
      !allowed.ok()) {
    std::move(done)(std::move(allowed));
    return nullptr;
  }
  // Shared with the registry's callback so that `done` can come back when the call is not taken.
  auto answer = std::make_shared<Answer<pb::RegisterServiceResponse>>(std::move(done));
  registry::Registry::RegisterCallback back = registry_.RegisterServiceFromMemory(
      RegistrationOf(request), [answer](absl::StatusOr<Service> service) {
        if (!service.ok()) {
          std::move (*answer)(service.status());
          return;
        }
        std::move (*answer)(RegisterServiceResponseOf(*service));
      });
  return back == nullptr ? nullptr : std::move(*answer);
}

absl::StatusOr<pb::UnRegisterServiceResponse> Handlers::UnRegisterService(
    const auth::Principal& principal, const pb::UnRegisterServiceRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanChangeService(principal, request.namespace_()));
  DISCOVERY_RETURN_IF_ERROR(registry_.UnregisterService(request.id(), request.namespace_()));
  return pb::UnRegisterServiceResponse{};
}

absl::StatusOr<pb::KeepAliveResponse> Handlers::KeepAlive(const auth::Principal& principal,
                                                          const pb::KeepAliveRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanChangeService(principal, request.namespace_()));
  DISCOVERY_ASSIGN_OR_RETURN(
      registry::KeepAliveResult result,
      registry_.KeepAlive(std::vector<std::string>(request.ids().begin(), request.ids().end()),
                          request.namespace_()));
  pb::KeepAliveResponse response;
  for (const Service& service : result.renewed) {
    *response.add_services() = ToProto(service);
  }
  for (std::string& id : result.not_found) {
    response.add_not_found(std::move(id));
  }
  return response;
}

absl::StatusOr<pb::ListServiceResponse> Handlers::ListService(
    const auth::Principal& principal, const pb::ListServiceRequest& request) {
  DISCOVERY_ASSIGN_OR_RETURN(ServiceListing listing, ListServiceRows(principal, request));
  pb::ListServiceResponse response;
  listing.VisitRows(0, listing.size(),
                    [&response](ListedService row) { AddTo(response, std::move(row)); });
  return response;
}

absl::StatusOr<ServiceListing> Handlers::ListServiceRows(const auth::Principal& principal,
                                                         const pb::ListServiceRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  DISCOVERY_ASSIGN_OR_RETURN(
      registry::ServiceRefs listed,
      registry_.ListServiceRefs(request.namespace_(), registry::Registry::Listed::kBoth));
  return ServiceListing(std::move(listed), ServiceListing::Order::kListed);
}

void AddTo(pb::ListServiceResponse& response, ListedService row) {
  if (row.invalid_reason.empty()) {
    *response.add_services() = ToProto(row.service);
  } else {
    *response.add_invalid_services() = ToProto(
        InvalidService{.service = std::move(row.service), .reason = std::move(row.invalid_reason)});
  }
}

ServiceListing::ServiceListing(registry::ServiceRefs rows, Order order)
    : rows_(std::move(rows)),
      order_(order),
      order_of_rows_(rows_.refs.size()),
      ordered_(order == Order::kListed) {
  std::iota(order_of_rows_.begin(), order_of_rows_.end(), uint32_t{0});
}

bool ServiceListing::Before(uint32_t a, uint32_t b) const {
  if (order_ == Order::kListed) {
    return a < b;
  }
  const Service& first = *rows_.refs[a].service;
  const Service& second = *rows_.refs[b].service;
  // The CLI's orders, which it applied itself to the whole list of ListService.
  if (order_ == Order::kNewestFirst) {
    if (first.modified != second.modified) {
      return first.modified > second.modified;
    }
  } else if (const int by_endpoint = first.endpoint.compare(second.endpoint); by_endpoint != 0) {
    return by_endpoint < 0;
  } else if (first.namespace_name != second.namespace_name) {
    return first.namespace_name < second.namespace_name;
  }
  return a < b;
}

void ServiceListing::OrderAll() {
  if (!ordered_) {
    std::sort(order_of_rows_.begin(), order_of_rows_.end(),
              [this](uint32_t a, uint32_t b) { return Before(a, b); });
    ordered_ = true;
  }
}

std::vector<ListedService> ServiceListing::Rows(size_t begin, size_t end) {
  std::vector<ListedService> rows;
  if (begin < end && begin < size()) {
    rows.reserve(std::min(end, size()) - begin);
  }
  VisitRows(begin, end, [&rows](ListedService row) { rows.push_back(std::move(row)); });
  return rows;
}

void ServiceListing::VisitRows(size_t begin, size_t end,
                               absl::FunctionRef<void(ListedService)> visit) {
  end = std::min(end, size());
  if (begin >= end) {
    return;
  }
  const auto before = [this](uint32_t a, uint32_t b) { return Before(a, b); };
  const auto first = order_of_rows_.begin() + static_cast<std::ptrdiff_t>(begin);
  const auto last = order_of_rows_.begin() + static_cast<std::ptrdiff_t>(end);
  if (!ordered_) {
    // The rows before `begin` come before every one of the range, those after `end` after it;
    // only the range itself is sorted.
    std::nth_element(order_of_rows_.begin(), first, order_of_rows_.end(), before);
    std::nth_element(first, last - 1, order_of_rows_.end(), before);
    std::sort(first, last, before);
  }
  for (auto it = first; it != last; ++it) {
    visit(Listed(rows_.refs[*it]));
  }
}

absl::StatusOr<ServiceListing> Handlers::ListServiceStream(
    const auth::Principal& principal, const pb::ListServiceStreamRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  if (!request.sort_by().empty() && request.sort_by() != "endpoint" &&
      request.sort_by() != "date") {
    return absl::InvalidArgumentError(
        fmt::format("invalid sort_by \"{}\": use endpoint or date", request.sort_by()));
  }
  DISCOVERY_ASSIGN_OR_RETURN(const RegexFilter name,
                             RegexFilter::Compile("filter_name", request.filter_name()));
  DISCOVERY_ASSIGN_OR_RETURN(const RegexFilter endpoint,
                             RegexFilter::Compile("filter_endpoint", request.filter_endpoint()));
  DISCOVERY_ASSIGN_OR_RETURN(const RegexFilter server,
                             RegexFilter::Compile("filter_server", request.filter_server()));
  std::optional<selector::Selector> labels;
  if (!request.filter_selector().empty()) {
    absl::StatusOr<selector::Selector> parsed =
        selector::Selector::Parse(request.filter_selector());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(fmt::format("invalid filter_selector \"{}\": {}",
                                                    request.filter_selector(),
                                                    parsed.status().message()));
    }
    labels = *std::move(parsed);
  }
  const auto keep = [&](const registry::ServiceRef& ref) {
    const Service& service = *ref.service;
    return name.Matches(service.name) && endpoint.Matches(service.endpoint) &&
           server.MatchesAny(*ref.servers) && (!labels || labels->Matches(service.labels));
  };
  DISCOVERY_ASSIGN_OR_RETURN(
      registry::ServiceRefs listed,
      registry_.ListServiceRefs(request.namespace_(), request.served_only()
                                                          ? registry::Registry::Listed::kServed
                                                          : registry::Registry::Listed::kBoth));
  std::erase_if(listed.refs, [&keep](const registry::ServiceRef& ref) { return !keep(ref); });
  return ServiceListing(std::move(listed), request.sort_by() == "date"
                                               ? ServiceListing::Order::kNewestFirst
                                               : ServiceListing::Order::kEndpoint);
}

absl::StatusOr<pb::ListTargetGroupResponse> Handlers::ListTargetGroup(
    const auth::Principal& principal, const pb::ListTargetGroupRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  DISCOVERY_ASSIGN_OR_RETURN(
      std::vector<targetgroup::TargetGroup> groups,
      registry_.TargetGroups(request.server(), request.namespace_(), request.config()));
  pb::ListTargetGroupResponse response;
  for (const targetgroup::TargetGroup& group : groups) {
    *response.add_targetgroups() = ToProto(group);
  }
  return response;
}

absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> Handlers::HttpSd(
    const auth::Principal& principal, const pb::ListTargetGroupRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  return registry_.HttpSd(request.server(), request.namespace_(), request.config());
}

absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> Handlers::CachedHttpSd(
    const auth::Principal& principal, const pb::ListTargetGroupRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  return registry_.CachedHttpSd(request.server(), request.namespace_(), request.config());
}

absl::StatusOr<pb::CreateResponse> Handlers::Create(const auth::Principal& principal,
                                                    const pb::CreateRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanCreateToken(principal));
  if (request.id().empty()) {
    return absl::InvalidArgumentError("token id cannot be empty");
  }
  absl::Duration expires = absl::ZeroDuration();
  if (!request.expires().empty()) {
    absl::StatusOr<absl::Duration> parsed = ParseGoDuration(request.expires());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(fmt::format("invalid expiry duration {}: {}",
                                                    request.expires(), parsed.status().message()));
    }
    expires = *parsed;
  }
  std::vector<std::string> namespaces(request.namespaces().begin(), request.namespaces().end());
  for (const std::string& ns : namespaces) {
    if (absl::Status valid = ValidateNamespaceName(ns); !valid.ok()) {
      return absl::InvalidArgumentError(
          fmt::format("invalid namespace '{}': {}", ns, valid.message()));
    }
  }
  auth::MachineTokenOptions token_options = options_.tokens;
  token_options.admin = false;  // admin tokens are made offline only (discoveryd token create)
  absl::StatusOr<std::string> token =
      auth::CreateMachineToken(token_options, request.id(), namespaces, expires, options_.clock());
  if (!token.ok()) {
    return absl::InternalError(fmt::format("failed to create token: {}", token.status().message()));
  }
  pb::CreateResponse response;
  response.set_token(*std::move(token));
  return response;
}

namespace {

pb::RevokedToken ToProto(const repo::TokenRevocation& revocation) {
  pb::RevokedToken revoked;
  revoked.set_id(revocation.id);
  *revoked.mutable_revoked_at() = TimestampToProto(revocation.revoked_at);
  revoked.set_revoked_by(revocation.revoked_by);
  return revoked;
}

}  // namespace

absl::StatusOr<pb::RevokeResponse> Handlers::Revoke(const auth::Principal& principal,
                                                    const pb::RevokeRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanCreateToken(principal));
  DISCOVERY_ASSIGN_OR_RETURN(
      repo::TokenRevocation revocation,
      registry_.RevokeToken(request.id(),
                            fmt::format("{}:{}", auth::KindName(principal.kind), principal.name)));
  pb::RevokeResponse response;
  *response.mutable_revoked() = ToProto(revocation);
  return response;
}

absl::StatusOr<pb::ListRevokedResponse> Handlers::ListRevoked(
    const auth::Principal& principal, const pb::ListRevokedRequest& /*request*/) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanCreateToken(principal));
  DISCOVERY_ASSIGN_OR_RETURN(std::vector<repo::TokenRevocation> revoked,
                             registry_.ListRevokedTokens());
  pb::ListRevokedResponse response;
  for (const repo::TokenRevocation& revocation : revoked) {
    *response.add_revoked() = ToProto(revocation);
  }
  return response;
}

absl::StatusOr<pb::InfoResponse> Handlers::Info(const auth::Principal& principal,
                                                const pb::InfoRequest& request) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  absl::StatusOr<auth::MachineClaims> claims =
      auth::VerifyMachineToken(request.token(), options_.tokens.issuer, options_.tokens.secret,
                               options_.tokens.previous_secrets, options_.clock());
  if (!claims.ok()) {
    // The token itself is left out: error texts end up in logs.
    return absl::InvalidArgumentError(
        fmt::format("token is not valid: {}", claims.status().message()));
  }
  pb::InfoResponse response;
  *response.mutable_tokeninfo() = TokenInfoToProto(claims->id, claims->namespaces, claims->expires);
  return response;
}

absl::StatusOr<pb::WhoAmIResponse> Handlers::WhoAmI(const auth::Principal& principal,
                                                    const pb::WhoAmIRequest& /*request*/) {
  DISCOVERY_RETURN_IF_ERROR(authorizer_.CanRead(principal));
  pb::WhoAmIResponse response;
  response.set_kind(auth::KindName(principal.kind));
  response.set_name(principal.name);
  response.set_admin(authorizer_.IsAdmin(principal));
  // Asked of the authorizer rather than restated, so the answer follows its rules: a name no
  // namespace can have (names are validated) stands for "any namespace".
  response.set_all_namespaces(
      authorizer_.CanChangeService(principal, "\x01 any namespace \x01").ok());
  if (!response.all_namespaces()) {
    for (const std::string& ns : principal.namespaces) {
      if (authorizer_.CanChangeService(principal, ns).ok()) {
        response.add_namespaces(ns);
      }
    }
  }
  for (const std::string& role : principal.roles) {
    response.add_roles(role);
  }
  return response;
}

}  // namespace discovery::api
