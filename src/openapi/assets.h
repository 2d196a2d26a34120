// A set of files compiled into the binary (cmake/EmbedFiles.cmake), served over HTTP the same
// way by Swagger UI (/swagger/) and the web UI (/ui/): content type from the name, a strong
// ETag per encoding, `Cache-Control: no-cache` so a new build is picked up at once, and text
// gzipped once on first request.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

#include "http/server.h"
#include "openapi/embedded_files.h"

namespace discovery::openapi {

class AssetTable {
 public:
  // `files` must be in static storage (EmbeddedFiles()).
  explicit AssetTable(std::span<const EmbeddedFile> files);

  // The bytes of file `name`; an empty view when there is none.
  std::string_view Content(std::string_view name) const;

  // Answers a GET or HEAD of file `name`: 200 with its Content-Type, ETag (a hash of the
  // content), `Cache-Control: no-cache` and, for text of 1 KiB or more when the client takes
  // it, gzip; 304 when If-None-Match lists the tag; 404 text/plain for an unknown name. The
  // method is the caller's to check. Thread-safe.
  http::Response Serve(const http::Request& request, std::string_view name) const;

 private:
  struct Asset {
    std::string_view content;
    std::string_view content_type;
    std::string etag;
  };

  std::shared_ptr<const std::string> Gzipped(std::string_view name, const Asset& asset) const;

  absl::flat_hash_map<std::string_view, Asset> assets_;
  mutable absl::Mutex mu_;
  // Keyed by the (static) names of assets_.
  mutable absl::flat_hash_map<std::string_view, std::shared_ptr<const std::string>> gzipped_
      ABSL_GUARDED_BY(mu_);
};

// A text/plain answer, for the errors of the asset paths.
http::Response PlainText(int status, std::string body);

}  // namespace discovery::openapi
