#include "cli/token_file.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "fmt/format.h"
#include "yaml-cpp/yaml.h"

#include "common/file.h"
#include "common/format.h"

namespace discovery::cli {
namespace {

std::filesystem::path HomeDirectory() {
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {  // NOLINT
    return home;
  }
  if (const passwd* entry = getpwuid(getuid()); entry != nullptr) {  // NOLINT
    return entry->pw_dir;
  }
  return "/";
}

// Three base64url parts separated by dots, as every JWT: not a word of YAML that was meant to
// be a mapping.
bool IsJwt(const std::string& text) {
  int dots = 0;
  for (const char c : text) {
    if (c == '.') {
      ++dots;
    } else if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return false;
    }
  }
  return dots == 2 && text.front() != '.' && text.back() != '.';
}

}  // namespace

std::filesystem::path DefaultTokenPath() {
  return HomeDirectory() / ".config" / "discovery" / ".token";
}

std::filesystem::path ExpandHome(const std::string& path) {
  if (path == "~") {
    return HomeDirectory();
  }
  if (path.starts_with("~/")) {
    return HomeDirectory() / path.substr(2);
  }
  return path;
}

absl::StatusOr<TokenFile> ParseTokenFile(std::string_view content) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string{content});
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(error.what());
  }
  TokenFile token;
  if (root.IsNull()) {
    return token;
  }
  // What `token create` prints, saved as it is: the file is the machine token.
  if (root.IsScalar() && IsJwt(root.Scalar())) {
    token.machine_token = root.Scalar();
    return token;
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        "expected a machine token (as `token create` prints it) or a mapping of token names to "
        "tokens");
  }
  const std::array<std::pair<const char*, std::string*>, 4> fields = {{
      {"machine_token", &token.machine_token},
      {"id_token", &token.id_token},
      {"refresh_token", &token.refresh_token},
      {"access_token", &token.access_token},
  }};
  for (const auto& [key, target] : fields) {
    const YAML::Node value = root[key];
    if (!value || value.IsNull()) {
      continue;
    }
    if (!value.IsScalar()) {
      return absl::InvalidArgumentError(fmt::format("{} must be a string", key));
    }
    *target = value.Scalar();
  }
  return token;
}

absl::StatusOr<TokenFile> ReadTokenFile(const std::filesystem::path& path) {
  const absl::StatusOr<std::string> content = ReadFile(path, {.what = "token file"});
  if (!content.ok()) {
    return absl::FailedPreconditionError(
        fmt::format("login required: {}; run `discovery login`, or put `machine_token: <jwt>` into "
                    "that file (--token-path, $DISCOVERY_TOKEN_PATH)",
                    content.status().message()));
  }
  absl::StatusOr<TokenFile> token = ParseTokenFile(*content);
  if (!token.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("invalid token file {}: {}", path.string(), token.status().message()));
  }
  return token;
}

absl::Status WriteTokenFile(const std::filesystem::path& path, const TokenFile& token) {
  std::error_code error;
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path(), error);
    if (error) {
      return absl::PermissionDeniedError(fmt::format("cannot create directory {}: {}",
                                                     path.parent_path().string(), error.message()));
    }
  }
  YAML::Emitter yaml;
  yaml << YAML::BeginMap;
  if (!token.machine_token.empty()) {
    yaml << YAML::Key << "machine_token" << YAML::Value << token.machine_token;
  }
  yaml << YAML::Key << "refresh_token" << YAML::Value << YAML::DoubleQuoted << token.refresh_token;
  yaml << YAML::Key << "id_token" << YAML::Value << YAML::DoubleQuoted << token.id_token;
  yaml << YAML::Key << "access_token" << YAML::Value << YAML::DoubleQuoted << token.access_token;
  yaml << YAML::EndMap;
  const std::string content = std::string(yaml.c_str()) + "\n";

  std::filesystem::path temporary = path;
  temporary += ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(fmt::format("cannot write token file {}: {}",
                                                   temporary.string(),
                                                   std::strerror(errno)));  // NOLINT
  }
  const bool written =
      ::fchmod(fd, 0600) == 0 &&
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      ::fsync(fd) == 0;
  const int write_errno = errno;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), path.c_str()) != 0) {
    const int cause = written ? errno : write_errno;
    ::unlink(temporary.c_str());
    return absl::PermissionDeniedError(fmt::format("cannot write token file {}: {}", path.string(),
                                                   std::strerror(cause)));  // NOLINT
  }
  return absl::OkStatus();
}

}  // namespace discovery::cli
