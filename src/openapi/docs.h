// The OpenAPI 3.0 document of discoveryd's HTTP API and the Swagger UI that renders it
// (docs/decisions.md D47), served from memory: both are compiled into the binary, the UI's assets
// from the npm package swagger-ui-dist (cmake/SwaggerUiDist.cmake). The document (openapi.json next
// to this file) is kept in step with rest::RestApi's route table by openapi_test.cc.
//
//   GET /swagger               301 to /swagger/
//   GET /swagger/              Swagger UI (index.html), showing /swagger/openapi.json
//   GET /swagger/openapi.json  the OpenAPI document
//   GET /swagger/<asset>       swagger-ui.css, swagger-ui-bundle.js, ... of swagger-ui-dist
#pragma once

#include <optional>
#include <string_view>

#include "http/server.h"

namespace discovery::openapi {

inline constexpr std::string_view kDocumentPath = "/swagger/openapi.json";

// The OpenAPI document (JSON) exactly as served at kDocumentPath. Thread-safe.
std::string_view Document();

// True for the paths Serve answers: "/swagger" and everything under "/swagger/".
bool Handles(std::string_view path);

// Answers a request for a path Handles accepts (anything else is a 404):
//   an embedded file: 200 with its Content-Type, an ETag (a hash of the content) and
//   `Cache-Control: no-cache`, or 304 when If-None-Match lists the ETag;
//   "/swagger": 301 to "/swagger/" (the query kept);
//   an unknown file: 404 text/plain; a method other than GET and HEAD: 405 with `Allow`.
// Thread-safe.
http::Response Serve(const http::Request& request);

// The metric label of a path Handles accepts: "/swagger/" or "/swagger/openapi.json"; nullopt
// for other paths. Bounded, so unknown files do not grow the label set.
std::optional<std::string_view> Route(std::string_view path);

}  // namespace discovery::openapi
