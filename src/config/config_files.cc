#include "config/config_files.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "yaml-cpp/yaml.h"

#include "common/utf8.h"

namespace discovery::config {
namespace {

std::filesystem::path HomeDir() {
  // Read at start-up, before any thread could modify the environment.
  const char* home = std::getenv("HOME");  // NOLINT(concurrency-mt-unsafe)
  if (home != nullptr && *home != '\0') {
    return home;
  }
  struct passwd entry {};
  struct passwd* result = nullptr;
  std::string buffer(16384, '\0');
  if (getpwuid_r(geteuid(), &entry, buffer.data(), buffer.size(), &result) == 0 &&
      result != nullptr && result->pw_dir != nullptr) {
    return result->pw_dir;
  }
  return "/";
}

std::filesystem::path Absolute(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  return (ec ? path : absolute).lexically_normal();
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF, as Go's
// utf8.ValidString checks it) without ASCII control characters other than tab and line feed, and
// without noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF): a "\uffff" or "\ufddf" escape decodes
// to one, and with one in a value yaml-cpp's emitter wrote it unquoted although it held ": " or a
// trailing CR, so it read back differently.
bool IsText(std::string_view text) {
  while (!text.empty()) {
    const std::optional<Utf8Rune> rune = DecodeUtf8(text);
    if (!rune.has_value()) {
      return false;
    }
    const char32_t c = rune->code_point;
    if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f) {
      return false;  // a control character
    }
    if ((c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe) {
      return false;  // a noncharacter
    }
    text.remove_prefix(rune->length);
  }
  return true;
}

// YAML reads CR LF, CR and LF alike as one line break (YAML 1.2 §5.4); yaml-cpp 0.7 takes a CR
// that ends the input for content, so "address: host:3001\r" would set the value with the CR.
std::string NormalizeLineBreaks(std::string_view content) {
  std::string normalized;
  normalized.reserve(content.size());
  for (size_t i = 0; i < content.size(); ++i) {
    if (content[i] != '\r') {
      normalized += content[i];
    } else if (i + 1 == content.size() || content[i + 1] != '\n') {
      normalized += '\n';
    }
  }
  return normalized;
}

// Converts one value of the top-level mapping into flag inputs; false if it has the wrong shape.
bool AppendInputs(const YAML::Node& node, std::vector<std::string>& inputs) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      inputs.push_back(node.Scalar());
      return true;
    case YAML::NodeType::Sequence:
      for (const YAML::Node& item : node) {
        if (!item.IsScalar()) {
          return false;
        }
        inputs.push_back(item.Scalar());
      }
      return true;
    case YAML::NodeType::Map:
      for (const auto& entry : node) {
        if (!entry.first.IsScalar() || !entry.second.IsScalar()) {
          return false;
        }
        inputs.push_back(entry.first.Scalar() + "=" + entry.second.Scalar());
      }
      return true;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return true;
  }
  return false;
}

// Reads the whole file; on failure sets `status` (and `error` for unexpected errors).
bool ReadFile(const std::filesystem::path& path, std::string& content, ConfigFile& file) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      file.status = FileStatus::kNotFound;
    } else if (error == EACCES || error == EPERM) {
      file.status = FileStatus::kPermissionDenied;
    } else {
      file.status = FileStatus::kInvalid;
      file.error = std::error_code(error, std::generic_category()).message();
    }
    return false;
  }
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    ::close(fd);
    file.status = FileStatus::kInvalid;
    file.error = "is a directory";
    return false;
  }
  std::array<char, 8192> buffer{};
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n == 0) {
      break;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      file.status = FileStatus::kInvalid;
      file.error = std::error_code(errno, std::generic_category()).message();
      ::close(fd);
      return false;
    }
    content.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

}  // namespace

ConfigLocations ConfigLocations::FromEnvironment() {
  std::error_code ec;
  std::filesystem::path cwd = std::filesystem::current_path(ec);
  if (ec) {
    cwd = ".";
  }
  return ConfigLocations{.working_dir = std::move(cwd), .home_dir = HomeDir()};
}

std::vector<std::filesystem::path> ConfigLocations::Candidates() const {
  std::vector<std::filesystem::path> candidates = {Absolute(working_dir / "discovery.yaml")};
  if (user_file) {
    candidates.push_back(Absolute(home_dir / ".config" / "discovery" / "config.yaml"));
  }
  candidates.push_back(Absolute(system_root / "etc" / "discovery" / "config.yaml"));
  return candidates;
}

std::string_view FileStatusName(FileStatus status) {
  switch (status) {
    case FileStatus::kParsed:
      return "parsed";
    case FileStatus::kNotFound:
      return "not found";
    case FileStatus::kPermissionDenied:
      return "permission denied";
    case FileStatus::kInvalid:
      return "invalid";
  }
  return "invalid";
}

absl::StatusOr<FlagValues> ParseConfigYaml(std::string_view content,
                                           std::map<std::string, int, std::less<>>* key_lines) {
  YAML::Node root;
  try {
    root = YAML::Load(NormalizeLineBreaks(content));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  FlagValues values;
  if (root.IsNull()) {
    return values;
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        "expected a mapping of flag names to values at the top level");
  }
  for (const auto& entry : root) {
    if (!entry.first.IsScalar()) {
      return absl::InvalidArgumentError("yaml-cpp: error at line " +
                                        std::to_string(entry.first.Mark().line + 1) +
                                        ": flag names must be scalars");
    }
    if (key_lines != nullptr) {
      (*key_lines)[entry.first.Scalar()] = entry.first.Mark().line + 1;
    }
    // yaml-cpp passes bytes that are not UTF-8 (and raw control characters) through, but YAML
    // text is printable Unicode: the Go original's parser rejects such files, and yaml-cpp's
    // emitter would not write them back. No flag takes control characters (a "\0" escape, say).
    if (!IsText(entry.first.Scalar())) {
      return absl::InvalidArgumentError(
          "yaml-cpp: error at line " + std::to_string(entry.first.Mark().line + 1) +
          ": flag names must be valid UTF-8 without control characters or noncharacters");
    }
    if (entry.second.IsNull()) {
      continue;
    }
    std::vector<std::string> inputs;
    if (!AppendInputs(entry.second, inputs)) {
      return absl::InvalidArgumentError(
          "yaml-cpp: error at line " + std::to_string(entry.second.Mark().line + 1) +
          ": value of " + entry.first.Scalar() +
          " must be a scalar, a list of scalars or a mapping of scalars");
    }
    for (const std::string& input : inputs) {
      if (!IsText(input)) {
        return absl::InvalidArgumentError(
            "yaml-cpp: error at line " + std::to_string(entry.second.Mark().line + 1) +
            ": value of " + entry.first.Scalar() +
            " must be valid UTF-8 without control characters or noncharacters");
      }
    }
    values.insert_or_assign(entry.first.Scalar(), std::move(inputs));
  }
  return values;
}

ConfigFile LoadConfigFile(const std::filesystem::path& path) {
  ConfigFile file{.path = path};
  std::string content;
  if (!ReadFile(path, content, file)) {
    return file;
  }
  absl::StatusOr<FlagValues> values = ParseConfigYaml(content, &file.key_lines);
  if (!values.ok()) {
    file.status = FileStatus::kInvalid;
    file.error = std::string{values.status().message()};
    return file;
  }
  file.status = FileStatus::kParsed;
  file.values = *std::move(values);
  return file;
}

ConfigFiles::ConfigFiles(std::vector<ConfigFile> files) : files_(std::move(files)) {}

ConfigFiles ConfigFiles::Load(const ConfigLocations& locations) {
  std::vector<ConfigFile> files;
  const std::filesystem::path user_file =
      Absolute(locations.home_dir / ".config" / "discovery" / "config.yaml");
  for (const std::filesystem::path& path : locations.Candidates()) {
    files.push_back(LoadConfigFile(path));
    files.back().exclusive = locations.user_file && path == user_file;
  }
  return ConfigFiles(std::move(files));
}

absl::Status ConfigFiles::status() const {
  for (const ConfigFile& file : files_) {
    if (file.status == FileStatus::kInvalid) {
      return absl::InvalidArgumentError("invalid config file " + file.path.string() + ": " +
                                        file.error);
    }
  }
  return absl::OkStatus();
}

const std::vector<std::string>* ConfigFiles::Find(std::string_view flag) const {
  for (const ConfigFile& file : files_) {
    if (auto it = file.values.find(flag); it != file.values.end()) {
      return &it->second;
    }
  }
  return nullptr;
}

}  // namespace discovery::config
