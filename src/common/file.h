// Reading a whole file into memory, the one way every module does it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace discovery {

struct ReadFileOptions {
  // When false a symbolic link is refused (ELOOP) rather than followed, for callers that compare
  // a file they own and must not read whatever a link points to.
  bool follow_links = true;
  // When true anything but a regular file (a FIFO, a device) is refused; otherwise such files are
  // read to their end, so a secret can come from /dev/fd/N.
  bool regular_only = false;
  // What the file is, for the error message ("token file"); empty names it by its path alone.
  std::string_view what;
};

// Returns the content of `path`. An error's code follows errno (absl::ErrnoToStatusCode: a missing
// file is NotFound, an unreadable one PermissionDenied) and its message reads
// "cannot read [<what> ]<path>: <reason>"; a directory is refused with FailedPrecondition.
// Thread-safe.
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path,
                                     const ReadFileOptions& options = {});

}  // namespace discovery
