// The CLI's token file (default ~/.config/discovery/.token): YAML with the keys machine_token,
// id_token, refresh_token and access_token, as the Go original reads and writes it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace discovery::cli {

struct TokenFile {
  std::string machine_token;
  std::string id_token;
  std::string refresh_token;
  std::string access_token;

  // What a request carries as bearer: the machine token when there is one, else the ID token.
  const std::string& BearerToken() const {
    return machine_token.empty() ? id_token : machine_token;
  }
};

// The default token path: ~/.config/discovery/.token (HOME, else the passwd entry).
std::filesystem::path DefaultTokenPath();

// `path` with a leading "~/" replaced by the home directory (config files are not expanded by a
// shell).
std::filesystem::path ExpandHome(const std::string& path);

// Parses the content of a token file: a YAML mapping (unknown keys are ignored), or just a JWT,
// the machine token as `token create` prints it. Anything else is InvalidArgument.
absl::StatusOr<TokenFile> ParseTokenFile(std::string_view content);

// Reads `path`. A missing or unreadable file is FailedPrecondition with a message that says how to
// get a token ("login required: ..."); a malformed one is InvalidArgument naming the file.
absl::StatusOr<TokenFile> ReadTokenFile(const std::filesystem::path& path);

// Writes `token` to `path` with mode 0600 (parent directories 0750), replacing it atomically.
absl::Status WriteTokenFile(const std::filesystem::path& path, const TokenFile& token);

}  // namespace discovery::cli
