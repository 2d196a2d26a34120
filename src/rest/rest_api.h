// The REST/JSON face of the four APIs and the Prometheus http_sd endpoint, shaped like the
// grpc-gateway v2 mux of the Go original (docs/decisions.md D29, D30): a
// request is routed, decoded into its proto request, run through the same Dispatcher as a gRPC
// call (authentication, handler, metrics, log) and answered as proto3 JSON.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "api/dispatcher.h"
#include "http/server.h"

namespace discovery::rest {

// Routes (every path parameter is one non-empty segment):
//   POST /v1/namespaces                   NamespaceAPI/RegisterNamespace, body = request
//   GET  /v1/namespaces                   NamespaceAPI/ListNamespace
//   DELETE /v1/namespaces/{name}          NamespaceAPI/UnregisterNamespace
//   POST /v1/servers                      ServerAPI/RegisterServer, body = request
//   GET  /v1/servers                      ServerAPI/ListServer
//   DELETE /v1/servers/{name}             ServerAPI/UnregisterServer
//   POST /v1/services                     ServiceAPI/RegisterService, body = request
//   GET  /v1/services?namespace=          ServiceAPI/ListService; with any of offset, limit,
//                                         filterName, filterEndpoint, filterServer,
//                                         filterSelector, sortBy: a page of ListServiceStream's
//                                         rows as ListServiceResponse, X-Total-Count the rows
//                                         that matched
//   DELETE /v1/services/{namespace}?id=   ServiceAPI/UnRegisterService (id or endpoint)
//   POST /v1/tokens                       TokenAPI/Create, body = request
//   GET  /v1/tokens/{token}               TokenAPI/Info
//   GET  /v1/whoami                       TokenAPI/WhoAmI
//   GET  /v1/sd/{server}/{namespace}?config=standard|blackbox   http_sd (alias `export-config`)
//
// Paths are split on '/' before percent-decoding, so an encoded "%2F" stays inside its path
// parameter: "/v1/servers/a%2Fb" names server "a/b" (rejected by validation) instead of being
// an unknown route, so a value is never silently cut (grpc-gateway's legacy mode split on it).
// Query parameters set the request field of the same proto or lowerCamelCase name; unknown
// names and names of path parameters are ignored; a repeated one is 400
// `too many values for field "<name>": <v1>, <v2>`. The 200 of every GET but http_sd (which has
// its own, strong tags) carries a weak ETag of its JSON, and a request whose If-None-Match
// holds it gets 304 without a body. Errors are grpc-gateway's
// {"code","message","details":[]} with its HTTP status mapping (rest/json.h).
class RestApi {
 public:
  // `dispatcher` must outlive this object.
  explicit RestApi(api::Dispatcher& dispatcher);

  // Answers `request`. Throws nothing but std::bad_alloc and never answers 5xx for a client
  // mistake (5xx means the registry or store failed).
  //   Unknown path: 404 {"code":5,"message":"Not Found"}.
  //   Known path, other method: 405 with `Allow` and {"code":12,"message":"Method Not Allowed"}
  //   (grpc-gateway answers 501; 405 is what HTTP prescribes and what clients expect).
  //   Malformed path, query or body: 400 with code 3.
  // The `Authorization` header is handed to the dispatcher unchanged ("" when absent).
  // Thread-safe.
  http::Response Handle(const http::Request& request) const;

  // Handle's answer when it can be given from memory without blocking, for the HTTP server's
  // I/O thread (http::QuickHandler): only GET /v1/sd/{server}/{namespace} with a bearer token
  // that was verified before and a body already rendered (and compressed, for gzip). nullopt
  // for everything else, which Handle must answer. Thread-safe.
  std::optional<http::Response> HandleFromMemory(const http::Request& request) const;

  // The route pattern that `path` (percent-encoded, as http::Request::path) matches, e.g.
  // "/v1/sd/{server}/{namespace}", whatever the method; nullopt when Handle would answer 404 or
  // 400 for the path. Meant as a bounded metric label. Thread-safe.
  static std::optional<std::string_view> Route(std::string_view path);

  // One (route, method) that Handle serves.
  struct Operation {
    // As in the table above, e.g. "/v1/servers/{name}".
    std::string_view pattern;
    // "GET", "POST" or "DELETE".
    std::string_view method;
    // The gRPC method it runs, e.g. "/postfinance.discovery.v1.ServerAPI/UnregisterServer";
    // http_sd runs ServiceAPI/ListTargetGroup.
    std::string_view rpc;
  };
  // Every operation Handle serves, in table order: the source the OpenAPI document is checked
  // against (src/openapi). The views point into a static table. Thread-safe.
  static std::vector<Operation> Operations();

 private:
  api::Dispatcher& dispatcher_;
};

// True when an If-None-Match header of `request` lists `etag` (compared weakly, as
// RFC 9110 §13.1.2 says) or is "*": the response may be 304. Thread-safe.
bool NoneMatchHits(const http::Request& request, std::string_view etag);

}  // namespace discovery::rest
