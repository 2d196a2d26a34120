#include "rest/rest_api.h"

#include <algorithm>
#include <array>
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
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

#include "api/convert.h"
#include "api/handlers.h"
#include "common/format.h"
#include "common/status_macros.h"
#include "compress/gzip.h"
#include "hash/fnv1a.h"
#include "readmodel/placed.h"
#include "rest/json.h"
#include "rest/url.h"

namespace discovery::rest {
namespace {

namespace pb = ::postfinance::discovery::v1;
using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

// A matched request as an endpoint sees it.
struct Call {
  api::Dispatcher& dispatcher;
  const http::Request& request;
  std::string_view authorization;
  // The transport's peer and the X-Forwarded-For header, for the audit trail.
  std::string_view peer;
  std::string_view forwarded_for;
  // The route's parameter names (= request field names) and their decoded values.
  const std::vector<std::string_view>& param_names;
  const std::vector<std::string>& param_values;
  const QueryParams& query;
};

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

std::string FullMethod(std::string_view service, std::string_view method) {
  return fmt::format("{}{}", service, method);
}

// The values of query parameter `name`, in order.
std::vector<std::string_view> QueryValues(const QueryParams& query, std::string_view name) {
  std::vector<std::string_view> values;
  for (const auto& [key, value] : query) {
    if (key == name) {
      values.push_back(value);
    }
  }
  return values;
}

absl::Status TooManyValues(std::string_view field, const std::vector<std::string_view>& values) {
  std::string joined;
  for (const std::string_view value : values) {
    joined += joined.empty() ? "" : ", ";
    joined += value;
  }
  return absl::InvalidArgumentError(
      fmt::format("too many values for field \"{}\": {}", field, joined));
}

// Sets the path parameters on the request fields of the same name, then every other field
// from the query parameter of its proto or lowerCamelCase name, as grpc-gateway's
// PopulateQueryParameters does (path parameters win over the query).
absl::Status FillFromUrl(const Call& call, Message* message) {
  const Descriptor* descriptor = message->GetDescriptor();
  const Reflection* reflection = message->GetReflection();
  for (size_t i = 0; i < call.param_names.size(); ++i) {
    const FieldDescriptor* field = descriptor->FindFieldByName(std::string{call.param_names[i]});
    if (field == nullptr || field->is_repeated() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      // The route table names string fields only; the tests exercise every route.
      return absl::InternalError(fmt::format("route parameter {} is not a string field of {}",
                                             call.param_names[i], descriptor->full_name()));
    }
    reflection->SetString(message, field, call.param_values[i]);
  }
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    // The GET and DELETE requests of the API have string fields only, so nothing else needs
    // converting from query text.
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      continue;
    }
    bool is_path_param = false;
    for (const std::string_view name : call.param_names) {
      is_path_param = is_path_param || name == field->name();
    }
    if (is_path_param) {
      continue;
    }
    std::vector<std::string_view> values;
    for (const auto& [key, value] : call.query) {
      if (key == field->name() || key == field->json_name()) {
        values.push_back(value);
      }
    }
    if (field->is_repeated()) {
      for (const std::string_view value : values) {
        reflection->AddString(message, field, std::string{value});
      }
    } else if (values.size() > 1) {
      return TooManyValues(field->name(), values);
    } else if (values.size() == 1) {
      reflection->SetString(message, field, std::string{values.front()});
    }
  }
  return absl::OkStatus();
}

api::CallerInfo Caller(const Call& call) {
  return {
      .authorization = call.authorization, .peer = call.peer, .forwarded_for = call.forwarded_for};
}

template <typename Response, typename Request>
http::Response Run(const Call& call, const std::string& full_method, const Request& request,
                   api::Dispatcher::Method<Response, Request> handler) {
  absl::StatusOr<Response> response =
      call.dispatcher.Dispatch(full_method, Caller(call), request, handler);
  if (!response.ok()) {
    return ErrorResponse(response.status());
  }
  absl::StatusOr<std::string> json = MessageToJson(*response);
  if (!json.ok()) {
    return ErrorResponse(json.status());
  }
  return JsonResponse(*std::move(json));
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

http::Response WithListETag(const Call& call, http::Response response);

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

// Skips the optional weakness indicator: If-None-Match compares weakly (RFC 9110 §13.1.2).
std::string_view Opaque(std::string_view tag) {
  return tag.starts_with("W/") ? tag.substr(2) : tag;
}

}  // namespace

// Every If-None-Match header counts (a list may be split over several); entity tags are quoted
// strings, which may themselves hold commas.
bool NoneMatchHits(const http::Request& request, std::string_view etag) {
  const std::string_view wanted = Opaque(etag);
  for (const auto& [name, value] : request.headers) {
    if (!absl::EqualsIgnoreCase(ToAbsl(name), "If-None-Match")) {
      continue;
    }
    std::string_view rest = value;
    while (!rest.empty()) {
      const size_t start = rest.find_first_not_of(" \t,");
      if (start == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(start);
      // A quoted tag ends at its closing quote; anything else (e.g. "*") at the next comma.
      const size_t open =
          rest.starts_with("W/\"") ? 2 : (rest.front() == '"' ? 0 : std::string_view::npos);
      size_t end = std::min(rest.find(','), rest.size());
      if (open != std::string_view::npos) {
        const size_t closing = rest.find('"', open + 1);
        end = closing == std::string_view::npos ? rest.size() : closing + 1;
      }
      std::string_view tag = rest.substr(0, end);
      rest.remove_prefix(end);
      while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) {
        tag.remove_suffix(1);
      }
      if (tag == "*" || Opaque(tag) == wanted) {
        return true;
      }
    }
  }
  return false;
}

namespace {

// A 200 answer of a GET gets a weak ETag of its JSON, and a client that holds it a 304 without
// a body: a poller (the web UI) pays one request and no transfer while nothing changes. Weak,
// because the daemon may gzip the body on the way out (the JSON, not its bytes, is what the tag
// names), so compression stays its business.
http::Response WithListETag(const Call& call, http::Response response) {
  if (response.status != 200) {
    return response;
  }
  const std::string etag = fmt::format("W/\"{:016x}\"", hash::Fnv1a64(response.body));
  if (NoneMatchHits(call.request, etag)) {
    response.status = 304;
    response.body.clear();
    response.headers = {};
  }
  response.headers.emplace_back("ETag", etag);
  response.headers.emplace_back("Cache-Control", "no-cache");
  return response;
}

// The query parameters that make GET /v1/services a filtered page (ListServices).
constexpr std::array<std::string_view, 12> kPageParams = {
    "offset",         "limit",           "filterName",   "filter_name",
    "filterEndpoint", "filter_endpoint", "filterServer", "filter_server",
    "filterSelector", "filter_selector", "sortBy",       "sort_by"};
// A page holds at most this many rows, so one request stays cheap whatever the registry holds.
constexpr int64_t kMaxPageLimit = 10000;

// A non-negative integer query parameter; `fallback` when absent.
absl::StatusOr<int64_t> CountParam(const Call& call, std::string_view name, int64_t fallback) {
  const std::vector<std::string_view> values = QueryValues(call.query, name);
  if (values.size() > 1) {
    return TooManyValues(name, values);
  }
  if (values.empty()) {
    return fallback;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(ToAbsl(values.front()), &value) || value < 0) {
    return absl::InvalidArgumentError(fmt::format("invalid {} \"{}\": want a non-negative integer",
                                                  name, values.front().substr(0, 64)));
  }
  return value;
}

// GET /v1/services. Without any of kPageParams it is ServiceAPI/ListService, unchanged for the
// original's clients. With them it is a page of ListServiceStream's rows: filtered (filterName,
// filterEndpoint, filterServer as RE2, filterSelector as a label selector), sorted (sortBy),
// then `offset` rows skipped and at most `limit` (1..10000, default 1000) answered, served
// services in `services` and records that cannot be served in `invalidServices`, and the number
// of rows that matched in the header X-Total-Count.
http::Response ListServices(const Call& call) {
  static const std::string list_method = FullMethod(api::kServiceApi, "ListService");
  static const std::string stream_method = FullMethod(api::kServiceApi, "ListServiceStream");
  const bool paged = std::any_of(call.query.begin(), call.query.end(), [](const auto& param) {
    return std::find(std::begin(kPageParams), std::end(kPageParams), param.first) !=
           std::end(kPageParams);
  });
  if (!paged) {
    pb::ListServiceRequest request;
    if (absl::Status status = FillFromUrl(call, &request); !status.ok()) {
      return ErrorResponse(status);
    }
    return WithListETag(call, Run(call, list_method, request, &api::Handlers::ListService));
  }
  pb::ListServiceStreamRequest request;
  if (absl::Status status = FillFromUrl(call, &request); !status.ok()) {
    return ErrorResponse(status);
  }
  const absl::StatusOr<int64_t> offset = CountParam(call, "offset", 0);
  if (!offset.ok()) {
    return ErrorResponse(offset.status());
  }
  const absl::StatusOr<int64_t> limit = CountParam(call, "limit", 1000);
  if (!limit.ok()) {
    return ErrorResponse(limit.status());
  }
  if (*limit < 1 || *limit > kMaxPageLimit) {
    return ErrorResponse(absl::InvalidArgumentError(
        fmt::format("invalid limit {}: want 1 to {}", *limit, kMaxPageLimit)));
  }
  absl::StatusOr<std::vector<api::ListedService>> rows = call.dispatcher.Dispatch(
      stream_method, Caller(call), request, &api::Handlers::ListServiceStream);
  if (!rows.ok()) {
    return ErrorResponse(rows.status());
  }
  pb::ListServiceResponse page;
  const size_t first = std::min(static_cast<size_t>(*offset), rows->size());
  const size_t last = std::min(first + static_cast<size_t>(*limit), rows->size());
  for (size_t i = first; i < last; ++i) {
    api::ListedService& row = (*rows)[i];
    if (row.invalid_reason.empty()) {
      *page.add_services() = api::ToProto(row.service);
    } else {
      *page.add_invalid_services() = api::ToProto(InvalidService{
          .service = std::move(row.service), .reason = std::move(row.invalid_reason)});
    }
  }
  absl::StatusOr<std::string> json = MessageToJson(page);
  if (!json.ok()) {
    return ErrorResponse(json.status());
  }
  http::Response response = JsonResponse(*std::move(json));
  response.headers.emplace_back("X-Total-Count", std::to_string(rows->size()));
  return WithListETag(call, std::move(response));
}

// The RPC request of GET /v1/sd/{server}/{namespace}.
absl::StatusOr<pb::ListTargetGroupRequest> HttpSdRequest(const Call& call) {
  pb::ListTargetGroupRequest request;
  DISCOVERY_RETURN_IF_ERROR(FillFromUrl(call, &request));
  // The README's Prometheus example passes `export-config`, which the original silently
  // ignored; it is honoured as an alias, and `config` wins when both are given.
  if (QueryValues(call.query, "config").empty()) {
    const std::vector<std::string_view> alias = QueryValues(call.query, "export-config");
    if (alias.size() > 1) {
      return TooManyValues("export-config", alias);
    }
    if (alias.size() == 1) {
      request.set_config(std::string{alias.front()});
    }
  }
  return request;
}

// A client holding either tag gets its 304, whichever encoding it asks for now.
bool IsNotModified(const Call& call, const readmodel::HttpSdBody& sd) {
  return NoneMatchHits(call.request, sd.etag()) || NoneMatchHits(call.request, sd.gzip_etag());
}

// The answer with `sd`; `gzipped` is its compressed body, needed only when the client takes
// gzip and has no current tag.
http::Response HttpSdAnswer(const Call& call, const readmodel::HttpSdBody& sd, bool gzip,
                            std::shared_ptr<const std::string> gzipped) {
  http::Response response;
  // Prometheus must revalidate every time; the ETag makes that a 304 without a body. Each
  // encoding has its own tag.
  response.headers = {{"ETag", gzip ? sd.gzip_etag() : sd.etag()},
                      {"Cache-Control", "no-cache"},
                      {"Vary", "Accept-Encoding"}};
  if (IsNotModified(call, sd)) {
    response.status = 304;
    return response;
  }
  response.headers.emplace_back("Content-Type", "application/json");
  if (gzip) {
    response.headers.emplace_back("Content-Encoding", "gzip");
    response.shared_body = std::move(gzipped);
  } else {
    response.shared_body = sd.json_buffer();
  }
  return response;
}

bool TakesGzip(const Call& call) {
  const std::optional<std::string_view> accept = call.request.Header("Accept-Encoding");
  return accept.has_value() && compress::AcceptsGzip(*accept);
}

// GET /v1/sd/{server}/{namespace}: the pre-rendered http_sd body of the registry, served with
// its ETag so that Prometheus' conditional requests cost nothing.
http::Response HttpSd(const Call& call) {
  static const std::string full_method = FullMethod(api::kServiceApi, "ListTargetGroup");
  absl::StatusOr<pb::ListTargetGroupRequest> request = HttpSdRequest(call);
  if (!request.ok()) {
    return ErrorResponse(request.status());
  }
  absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> body =
      call.dispatcher.Dispatch(full_method, Caller(call), *request, &api::Handlers::HttpSd);
  if (!body.ok()) {
    return ErrorResponse(body.status());
  }
  if (*body == nullptr) {
    return ErrorResponse(absl::InternalError("the registry returned no http_sd body"));
  }
  const readmodel::HttpSdBody& sd = **body;
  // Prometheus always accepts gzip; the compressed body is made once per body version.
  const bool gzip = TakesGzip(call);
  return HttpSdAnswer(call, sd, gzip, gzip && !IsNotModified(call, sd) ? sd.Gzipped() : nullptr);
}

// HttpSd when everything it needs is in memory: the caller's token verified before, the body
// rendered and, for gzip, compressed. Anything else (including a malformed request, whose
// error HttpSd renders) is left to HttpSd.
std::optional<http::Response> HttpSdFromMemory(const Call& call) {
  static const std::string full_method = FullMethod(api::kServiceApi, "ListTargetGroup");
  absl::StatusOr<pb::ListTargetGroupRequest> request = HttpSdRequest(call);
  if (!request.ok()) {
    return std::nullopt;
  }
  const bool gzip = TakesGzip(call);
  std::shared_ptr<const std::string> gzipped;
  std::optional<absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>>> body =
      call.dispatcher.DispatchFromMemory(
          full_method, call.authorization, *request,
          [&](api::Handlers& handlers, const auth::Principal& principal,
              const pb::ListTargetGroupRequest& sd_request)
              -> absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> {
            absl::StatusOr<std::shared_ptr<const readmodel::HttpSdBody>> sd =
                handlers.CachedHttpSd(principal, sd_request);
            if (sd.ok() && *sd != nullptr && gzip && !IsNotModified(call, **sd)) {
              gzipped = (*sd)->GzippedIfReady();
              if (gzipped == nullptr) {
                return nullptr;  // not compressed yet: HttpSd compresses it
              }
            }
            return sd;
          });
  if (!body.has_value()) {
    return std::nullopt;
  }
  if (!body->ok()) {
    return ErrorResponse(body->status());
  }
  return HttpSdAnswer(call, ***body, gzip, std::move(gzipped));
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
