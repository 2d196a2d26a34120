// What the REST endpoints share: a matched request as an endpoint sees it (Call), and the
// steps of answering one, from filling the RPC request out of the URL to the JSON answer with
// its ETag. Internal to the rest module.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fmt/format.h"
#include "google/protobuf/message.h"

#include "api/dispatcher.h"
#include "http/server.h"
#include "rest/json.h"
#include "rest/url.h"

namespace discovery::rest {

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

// "<service><method>", e.g. "/postfinance.discovery.v1.ServerAPI/ListServer".
inline std::string FullMethod(std::string_view service, std::string_view method) {
  return fmt::format("{}{}", service, method);
}

// The values of query parameter `name`, in order.
std::vector<std::string_view> QueryValues(const QueryParams& query, std::string_view name);

// InvalidArgument naming `field` and the `values` given for it where one was expected.
absl::Status TooManyValues(std::string_view field, const std::vector<std::string_view>& values);

// Sets the path parameters on the request fields of the same name, then every other field
// from the query parameter of its proto or lowerCamelCase name, as grpc-gateway's
// PopulateQueryParameters does (path parameters win over the query).
absl::Status FillFromUrl(const Call& call, ::google::protobuf::Message* message);

// Who calls, for the dispatcher: the credentials and the addresses of the audit trail.
api::CallerInfo Caller(const Call& call);

// Dispatches `request` to `handler` and answers its response as JSON, or the error.
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

// A 200 answer of a GET gets a weak ETag of its JSON, and a client that holds it a 304 without
// a body (see call.cc).
http::Response WithListETag(const Call& call, http::Response response);

// The endpoints that are more than one RPC over JSON (read_endpoints.cc).
// GET /v1/services: ServiceAPI/ListService, or a filtered page of ListServiceStream's rows.
http::Response ListServices(const Call& call);
// GET /v1/sd/{server}/{namespace}: the pre-rendered http_sd body with its ETag.
http::Response HttpSd(const Call& call);
// HttpSd when everything it needs is in memory; nullopt leaves the request to HttpSd.
std::optional<http::Response> HttpSdFromMemory(const Call& call);

}  // namespace discovery::rest
