#include "openapi/docs.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "fmt/format.h"

#include "compress/gzip.h"
#include "openapi/embedded_files.h"
#include "rest/rest_api.h"

namespace discovery::openapi {
namespace {

constexpr std::string_view kPrefix = "/swagger/";
constexpr std::string_view kIndex = "index.html";
constexpr std::string_view kDocumentName = "openapi.json";

struct Asset {
  std::string_view content;
  std::string_view content_type;
  std::string etag;
};

std::string_view ContentType(std::string_view name) {
  if (name.ends_with(".html")) {
    return "text/html; charset=utf-8";
  }
  if (name.ends_with(".css")) {
    return "text/css; charset=utf-8";
  }
  if (name.ends_with(".js")) {
    return "text/javascript; charset=utf-8";
  }
  if (name.ends_with(".json")) {
    return "application/json";
  }
  if (name.ends_with(".png")) {
    return "image/png";
  }
  if (name.find('.') == std::string_view::npos) {
    return "text/plain; charset=utf-8";  // LICENSE
  }
  return "application/octet-stream";
}

// FNV-1a: the content changes only with a new build, so any stable hash makes a good ETag.
std::string ETag(std::string_view content) {
  uint64_t hash = 14695981039346656037ULL;
  for (const char c : content) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return fmt::format("\"{:016x}\"", hash);
}

const absl::flat_hash_map<std::string_view, Asset>& Assets() {
  static const auto* const assets = [] {
    auto* map = new absl::flat_hash_map<std::string_view, Asset>();
    for (const EmbeddedFile& file : EmbeddedFiles()) {
      map->emplace(file.name, Asset{.content = file.content,
                                    .content_type = ContentType(file.name),
                                    .etag = ETag(file.content)});
    }
    return map;
  }();
  return *assets;
}

// Text worth compressing; images are compressed already.
bool Compressible(const Asset& asset) {
  return asset.content.size() >= 1024 &&
         (asset.content_type.starts_with("text/") || asset.content_type == "application/json");
}

// An asset gzipped, compressed on its first request and kept for the life of the process.
// `name` must be the asset table's own (static) key.
std::shared_ptr<const std::string> Gzipped(std::string_view name, const Asset& asset) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* const cache =
      new absl::flat_hash_map<std::string_view, std::shared_ptr<const std::string>>();
  absl::MutexLock lock(&mu);
  std::shared_ptr<const std::string>& gzipped = (*cache)[name];
  if (gzipped == nullptr) {
    gzipped = std::make_shared<const std::string>(compress::Gzip(asset.content, 9));
  }
  return gzipped;
}

http::Response PlainText(int status, std::string body) {
  return {.status = status,
          .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
          .body = std::move(body)};
}

}  // namespace

std::string_view Document() {
  const auto& assets = Assets();
  const auto it = assets.find(kDocumentName);
  return it == assets.end() ? std::string_view() : it->second.content;
}

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
  const auto& assets = Assets();
  const auto it = assets.find(name);
  if (it == assets.end()) {
    return PlainText(404, "not found\n");
  }
  const Asset& asset = it->second;
  const std::optional<std::string_view> accept = request.Header("Accept-Encoding");
  const bool gzip = Compressible(asset) && accept.has_value() && compress::AcceptsGzip(*accept);
  const std::string gzip_etag = asset.etag.substr(0, asset.etag.size() - 1) + "-gzip\"";
  http::Response response;
  // Revalidated on every load (cheap: a 304), so a new build is picked up at once. Each
  // encoding has its own tag; a client holding either gets its 304.
  response.headers = {{"ETag", gzip ? gzip_etag : asset.etag},
                      {"Cache-Control", "no-cache"},
                      {"X-Content-Type-Options", "nosniff"}};
  if (Compressible(asset)) {
    response.headers.emplace_back("Vary", "Accept-Encoding");
  }
  if (rest::NoneMatchHits(request, asset.etag) || rest::NoneMatchHits(request, gzip_etag)) {
    response.status = 304;
    return response;
  }
  response.headers.emplace_back("Content-Type", std::string{asset.content_type});
  if (gzip) {
    response.headers.emplace_back("Content-Encoding", "gzip");
    response.shared_body = Gzipped(it->first, asset);
  } else {
    response.body = std::string{asset.content};
  }
  return response;
}

}  // namespace discovery::openapi
