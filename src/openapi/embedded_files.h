// Files compiled into the binary by cmake/EmbedFiles.cmake: the OpenAPI document and the Swagger
// UI assets. The definitions are generated at build time (embedded_files.cc in the build tree).
#pragma once

#include <span>
#include <string_view>

namespace discovery::openapi {

struct EmbeddedFile {
  // The file's name under /swagger/, e.g. "swagger-ui.css".
  std::string_view name;
  // Its bytes, in static storage.
  std::string_view content;
};

// Every embedded file, in static storage. Thread-safe.
std::span<const EmbeddedFile> EmbeddedFiles();

}  // namespace discovery::openapi
