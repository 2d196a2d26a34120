// The web UI's files compiled into the binary by cmake/EmbedFiles.cmake (src/ui/web); the
// definitions are generated at build time (embedded_files.cc in the build tree).
#pragma once

#include <span>

#include "openapi/embedded_files.h"

namespace discovery::ui {

using openapi::EmbeddedFile;

// Every file of the UI, named as under /ui/, in static storage. Thread-safe.
std::span<const EmbeddedFile> EmbeddedFiles();

}  // namespace discovery::ui
