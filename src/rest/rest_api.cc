#include "rest/rest_api.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fmt/format.h"

#include "api/handlers.h"
#include "common/status_macros.h"
#include "rest/call.h"
#include "rest/json.h"
#include "rest/url.h"

namespace discovery::rest {
namespace {

using Endpoint = std::function<http::Response(const Call&)>;
// The same answer from memory without blocking, or nullopt (see RestApi::HandleFromMemory).
using MemoryEndpoint = std::function<std::optional<http::Response>(const Call&)>;

struct MethodEndpoint {
  std::string_view method;
  // The RPC it runs, e.g. "/postfinance.discovery.v1.ServerAPI/ListServer".
  std::string full_method;
  Endpoint endpoint;
  // Empty for calls that are never answered from memory.
  MemoryEndpoint from_memory;
};

struct RouteSpec {
  std::string_view pattern;
  // `pattern` split on '/'; "{x}" is a parameter.
  std::vector<std::string_view> segments;
  std::vector<std::string_view> param_names;
  std::vector<MethodEndpoint> methods;
};

bool IsParam(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

RouteSpec MakeRoute(std::string_view pattern, std::vector<MethodEndpoint> methods) {
  RouteSpec route{.pattern = pattern, .methods = std::move(methods)};
  std::string_view rest = pattern.substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    route.segments.push_back(segment);
    if (IsParam(segment)) {
      route.param_names.push_back(segment.substr(1, segment.size() - 2));
    }
    if (slash == std::string_view::npos) {
      break;
    }
    rest = rest.substr(slash + 1);
  }
  return route;
}

// POST: the body is the whole request (`body: "*"` in the HTTP annotations); the query is not
// read, as in grpc-gateway.
template <typename Response, typename Request>
MethodEndpoint FromBody(std::string_view service, std::string_view method,
                        api::Dispatcher::Method<Response, Request> handler) {
  std::string full_method = FullMethod(service, method);
  return {"POST", full_method, [full_method, handler](const Call& call) {
            Request request;
            if (absl::Status status = JsonToMessage(call.request.body, &request); !status.ok()) {
              return ErrorResponse(status);
            }
            return Run(call, full_method, request, handler);
          }};
}

// GET and DELETE: the request comes from the path and the query; a body is ignored. A GET
// answer carries a weak ETag (WithListETag).
template <typename Response, typename Request>
MethodEndpoint FromUrl(std::string_view http_method, std::string_view service,
                       std::string_view method,
                       api::Dispatcher::Method<Response, Request> handler) {
  std::string full_method = FullMethod(service, method);
  return {http_method, full_method, [full_method, handler](const Call& call) {
            Request request;
            if (absl::Status status = FillFromUrl(call, &request); !status.ok()) {
              return ErrorResponse(status);
            }
            http::Response response = Run(call, full_method, request, handler);
            return call.request.method == "GET" ? WithListETag(call, std::move(response))
                                                : response;
          }};
}

const std::vector<RouteSpec>& Routes() {
  using api::Handlers;
  using api::kNamespaceApi;
  using api::kServerApi;
  using api::kServiceApi;
  using api::kTokenApi;
  static const auto* const routes = new std::vector<RouteSpec>{
      MakeRoute("/v1/namespaces",
                {FromBody(kNamespaceApi, "RegisterNamespace", &Handlers::RegisterNamespace),
                 FromUrl("GET", kNamespaceApi, "ListNamespace", &Handlers::ListNamespace)}),
      MakeRoute("/v1/namespaces/{name}", {FromUrl("DELETE", kNamespaceApi, "UnregisterNamespace",
                                                  &Handlers::UnregisterNamespace)}),
      MakeRoute("/v1/servers", {FromBody(kServerApi, "RegisterServer", &Handlers::RegisterServer),
                                FromUrl("GET", kServerApi, "ListServer", &Handlers::ListServer)}),
      MakeRoute("/v1/servers/{name}",
                {FromUrl("DELETE", kServerApi, "UnregisterServer", &Handlers::UnregisterServer)}),
      MakeRoute("/v1/services",
                {FromBody(kServiceApi, "RegisterService", &Handlers::RegisterService),
                 {"GET", FullMethod(kServiceApi, "ListService"), ListServices, {}}}),
      MakeRoute("/v1/services/{namespace}", {FromUrl("DELETE", kServiceApi, "UnRegisterService",
                                                     &Handlers::UnRegisterService)}),
      // Not under /v1/services/: that level names a namespace.
      MakeRoute("/v1/keepalive", {FromBody(kServiceApi, "KeepAlive", &Handlers::KeepAlive)}),
      MakeRoute("/v1/tokens", {FromBody(kTokenApi, "Create", &Handlers::Create)}),
      MakeRoute("/v1/tokens/{token}", {FromUrl("GET", kTokenApi, "Info", &Handlers::Info)}),
      MakeRoute("/v1/whoami", {FromUrl("GET", kTokenApi, "WhoAmI", &Handlers::WhoAmI)}),
      MakeRoute("/v1/revoked-tokens",
                {FromBody(kTokenApi, "Revoke", &Handlers::Revoke),
                 FromUrl("GET", kTokenApi, "ListRevoked", &Handlers::ListRevoked)}),
      MakeRoute("/v1/sd/{server}/{namespace}",
                {{"GET", FullMethod(kServiceApi, "ListTargetGroup"), HttpSd, HttpSdFromMemory}}),
  };
  return *routes;
}

// The route `segments` match, with the values of its parameters; nullptr when none does.
// A parameter never matches an empty segment ("/v1/servers/" is not a server named "").
const RouteSpec* FindRoute(const std::vector<std::string>& segments,
                           std::vector<std::string>* params) {
  for (const RouteSpec& route : Routes()) {
    if (route.segments.size() != segments.size()) {
      continue;
    }
    params->clear();
    bool matches = true;
    for (size_t i = 0; i < segments.size() && matches; ++i) {
      if (IsParam(route.segments[i])) {
        matches = !segments[i].empty();
        params->push_back(segments[i]);
      } else {
        matches = route.segments[i] == segments[i];
      }
    }
    if (matches) {
      return &route;
    }
  }
  return nullptr;
}

// The route of a request's path, with the values of its parameters.
struct RouteMatch {
  const RouteSpec* route = nullptr;  // nullptr when no route matches
  std::vector<std::string> params;
};

// The route of `path`; the error of PathSegments when the path cannot be read.
absl::StatusOr<RouteMatch> MatchRoute(std::string_view path) {
  DISCOVERY_ASSIGN_OR_RETURN(const std::vector<std::string> segments, PathSegments(path));
  RouteMatch match;
  match.route = FindRoute(segments, &match.params);
  return match;
}

// The call of `request` on `route`, whose parameters FindRoute read from the path as `params`.
Call CallOf(api::Dispatcher& dispatcher, const http::Request& request, const RouteSpec& route,
            const std::vector<std::string>& params, const QueryParams& query) {
  return Call{.dispatcher = dispatcher,
              .request = request,
              .authorization = request.Header("Authorization").value_or(""),
              .peer = request.remote_address,
              .forwarded_for = request.Header("X-Forwarded-For").value_or(""),
              .param_names = route.param_names,
              .param_values = params,
              .query = query};
}

http::Response Serve(api::Dispatcher& dispatcher, const http::Request& request) {
  const absl::StatusOr<RouteMatch> match = MatchRoute(request.path);
  if (!match.ok()) {
    return ErrorResponse(match.status());
  }
  const RouteSpec* route = match->route;
  if (route == nullptr) {
    return ErrorResponse(absl::NotFoundError("Not Found"));
  }
  const MethodEndpoint* endpoint = nullptr;
  for (const MethodEndpoint& candidate : route->methods) {
    if (candidate.method == request.method) {
      endpoint = &candidate;
    }
  }
  if (endpoint == nullptr) {
    // grpc-gateway answers 501 here; 405 with Allow is what HTTP prescribes.
    http::Response response =
        ErrorResponse(absl::Status(absl::StatusCode::kUnimplemented, "Method Not Allowed"));
    response.status = 405;
    std::string allow;
    for (const MethodEndpoint& candidate : route->methods) {
      allow += allow.empty() ? "" : ", ";
      allow += candidate.method;
    }
    response.headers.emplace_back("Allow", std::move(allow));
    return response;
  }
  absl::StatusOr<QueryParams> query = ParseQuery(request.query);
  if (!query.ok()) {
    return ErrorResponse(query.status());
  }
  return endpoint->endpoint(CallOf(dispatcher, request, *route, match->params, *query));
}

}  // namespace

RestApi::RestApi(api::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

http::Response RestApi::Handle(const http::Request& request) const {
  try {
    return Serve(dispatcher_, request);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    // Nothing below is expected to throw; this keeps a surprise from reaching the transport.
    return ErrorResponse(absl::InternalError(fmt::format("unexpected error: {}", e.what())));
  }
}

std::optional<http::Response> RestApi::HandleFromMemory(const http::Request& request) const {
  try {
    const absl::StatusOr<RouteMatch> match = MatchRoute(request.path);
    if (!match.ok() || match->route == nullptr) {
      return std::nullopt;
    }
    for (const MethodEndpoint& endpoint : match->route->methods) {
      if (endpoint.method != request.method || !endpoint.from_memory) {
        continue;
      }
      absl::StatusOr<QueryParams> query = ParseQuery(request.query);
      if (!query.ok()) {
        return std::nullopt;
      }
      return endpoint.from_memory(
          CallOf(dispatcher_, request, *match->route, match->params, *query));
    }
    return std::nullopt;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception&) {
    return std::nullopt;  // Handle answers it, and reports what went wrong
  }
}

std::optional<std::string_view> RestApi::Route(std::string_view path) {
  const absl::StatusOr<RouteMatch> match = MatchRoute(path);
  if (!match.ok() || match->route == nullptr) {
    return std::nullopt;
  }
  return match->route->pattern;
}

std::vector<RestApi::Operation> RestApi::Operations() {
  std::vector<Operation> operations;
  for (const RouteSpec& route : Routes()) {
    for (const MethodEndpoint& endpoint : route.methods) {
      operations.push_back(
          {.pattern = route.pattern, .method = endpoint.method, .rpc = endpoint.full_method});
    }
  }
  return operations;
}

}  // namespace discovery::rest