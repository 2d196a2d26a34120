#include "openapi/docs.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "openapi/assets.h"
#include "openapi/embedded_files.h"

namespace discovery::openapi {
namespace {

constexpr std::string_view kPrefix = "/swagger/";
constexpr std::string_view kIndex = "index.html";
constexpr std::string_view kDocumentName = "openapi.json";

const AssetTable& Assets() {
  static const auto* const assets = new AssetTable(EmbeddedFiles());
  return *assets;
}

}  // namespace

std::string_view Document() { return Assets().Content(kDocumentName); }

bool Handles(std::string_view path) { return path == "/swagger" || path.starts_with(kPrefix); }

std::optional<std::string_view> Route(std::string_view path) {
  if (!Handles(path)) {
    return std::nullopt;
  }
  return path == kDocumentPath ? kDocumentPath : kPrefix;
}

http::Response Serve(const http::Request& request) {
  if (!Handles(request.path)) {
    return PlainText(404, "not found\n");
  }
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response response = PlainText(405, "method not allowed\n");
    response.headers.emplace_back("Allow", "GET, HEAD");
    return response;
  }
  if (request.path == "/swagger") {
    // Relative to nothing the browser could misread: the absolute path, query kept.
    std::string location{kPrefix};
    if (!request.query.empty()) {
      location += "?" + request.query;
    }
    http::Response response = PlainText(301, "");
    response.headers.emplace_back("Location", std::move(location));
    return response;
  }
  std::string_view name{request.path};
  name.remove_prefix(kPrefix.size());
  if (name.empty()) {
    name = kIndex;
  }
  return Assets().Serve(request, name);
}

}  // namespace discovery::openapi
