#include "openapi/assets.h"

#include <cstdint>
#include <optional>
#include <utility>

#include "fmt/format.h"

#include "compress/gzip.h"
#include "hash/fnv1a.h"
#include "rest/rest_api.h"

namespace discovery::openapi {
namespace {

std::string_view ContentType(std::string_view name) {
  if (name.ends_with(".html")) {
    return "text/html; charset=utf-8";
  }
  if (name.ends_with(".css")) {
    return "text/css; charset=utf-8";
  }
  if (name.ends_with(".js") || name.ends_with(".mjs")) {
    return "text/javascript; charset=utf-8";
  }
  if (name.ends_with(".json")) {
    return "application/json";
  }
  if (name.ends_with(".png")) {
    return "image/png";
  }
  if (name.ends_with(".svg")) {
    return "image/svg+xml";
  }
  if (name.find('.') == std::string_view::npos) {
    return "text/plain; charset=utf-8";  // LICENSE
  }
  return "application/octet-stream";
}

// The content changes only with a new build, so any stable hash makes a good ETag.
std::string ETag(std::string_view content) {
  return fmt::format("\"{:016x}\"", hash::Fnv1a64(content));
}

}  // namespace

http::Response PlainText(int status, std::string body) {
  return {.status = status,
          .headers = {{"Content-Type", "text/plain; charset=utf-8"}},
          .body = std::move(body)};
}

AssetTable::AssetTable(std::span<const EmbeddedFile> files) {
  for (const EmbeddedFile& file : files) {
    assets_.emplace(file.name, Asset{.content = file.content,
                                     .content_type = ContentType(file.name),
                                     .etag = ETag(file.content)});
  }
}

std::string_view AssetTable::Content(std::string_view name) const {
  const auto it = assets_.find(name);
  return it == assets_.end() ? std::string_view() : it->second.content;
}

// Compressed on its first request and kept for the life of the table. `name` must be the
// table's own (static) key.
std::shared_ptr<const std::string> AssetTable::Gzipped(std::string_view name,
                                                       const Asset& asset) const {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const std::string>& gzipped = gzipped_[name];
  if (gzipped == nullptr) {
    gzipped = std::make_shared<const std::string>(compress::Gzip(asset.content, 9));
  }
  return gzipped;
}

http::Response AssetTable::Serve(const http::Request& request, std::string_view name) const {
  const auto it = assets_.find(name);
  if (it == assets_.end()) {
    return PlainText(404, "not found\n");
  }
  const Asset& asset = it->second;
  // Text worth compressing; images are compressed already.
  const bool compressible =
      asset.content.size() >= 1024 &&
      (asset.content_type.starts_with("text/") || asset.content_type == "application/json");
  const std::optional<std::string_view> accept = request.Header("Accept-Encoding");
  const bool gzip = compressible && accept.has_value() && compress::AcceptsGzip(*accept);
  const std::string gzip_etag = asset.etag.substr(0, asset.etag.size() - 1) + "-gzip\"";
  http::Response response;
  // Revalidated on every load (cheap: a 304), so a new build is picked up at once. Each
  // encoding has its own tag; a client holding either gets its 304.
  response.headers = {{"ETag", gzip ? gzip_etag : asset.etag},
                      {"Cache-Control", "no-cache"},
                      {"X-Content-Type-Options", "nosniff"}};
  if (compressible) {
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
