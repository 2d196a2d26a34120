// The YAML configuration files shared by both binaries: where they are looked for, what state
// each one is in (reported by --show-config) and the flag values they define.
// Precedence among files is ./discovery.yaml > ~/.config/discovery/config.yaml >
// /etc/discovery/config.yaml (the Go original let the system file win, docs/decisions.md D20).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace discovery::config {

// Flag name (kebab-case, without "--") -> its values, one per YAML list element.
using FlagValues = std::map<std::string, std::vector<std::string>, std::less<>>;

// The directories the candidate files hang off; tests point them at temporary directories.
struct ConfigLocations {
  std::filesystem::path working_dir;        // holds discovery.yaml
  std::filesystem::path home_dir;           // holds .config/discovery/config.yaml
  std::filesystem::path system_root = "/";  // holds etc/discovery/config.yaml
  // Whether ~/.config/discovery/config.yaml is a candidate: the CLI's per-user file, which
  // discoveryd does not read.
  bool user_file = true;

  // The process's working directory, $HOME (else the passwd entry, else "/") and "/".
  static ConfigLocations FromEnvironment();

  // The candidate files as absolute paths, highest precedence first.
  std::vector<std::filesystem::path> Candidates() const;
};

enum class FileStatus {
  kParsed,            // read and valid (possibly empty)
  kNotFound,          // does not exist
  kPermissionDenied,  // exists but cannot be read
  kInvalid,           // readable but not a YAML mapping of flag names to values
};

// "parsed", "not found", "permission denied" or "invalid", as printed by --show-config.
std::string_view FileStatusName(FileStatus status);

struct ConfigFile {
  std::filesystem::path path;
  FileStatus status = FileStatus::kNotFound;
  std::string error;  // why the file is invalid; empty unless status is kInvalid
  FlagValues values;  // empty unless status is kParsed
  // The line (1-based) of each key of `values`.
  std::map<std::string, int, std::less<>> key_lines;
  // Read by one program only (the CLI's per-user file), so a key that is none of its flags is a
  // mistake; the shared files may hold keys of the other program.
  bool exclusive = false;
};

// Parses the content of one configuration file: a YAML mapping whose values are scalars, lists of
// scalars, or mappings of scalars (which become "key=value" items, for map flags such as
// --labels). Null values are left out. An empty document is an empty mapping. Returns
// InvalidArgument carrying yaml-cpp's message (with line and column) for anything else, and
// with the line for flag names or values that are not valid UTF-8.
// `key_lines`, when given, receives the line (1-based) of each key.
absl::StatusOr<FlagValues> ParseConfigYaml(
    std::string_view content, std::map<std::string, int, std::less<>>* key_lines = nullptr);

// Reads one file. Never fails: problems are recorded in the returned status and error.
ConfigFile LoadConfigFile(const std::filesystem::path& path);

// The candidate files of one process, read once at start-up. Immutable; thread-safe.
class ConfigFiles {
 public:
  // `files` must be ordered highest precedence first.
  explicit ConfigFiles(std::vector<ConfigFile> files);

  // Reads every candidate file of `locations`.
  static ConfigFiles Load(const ConfigLocations& locations);

  // Highest precedence first.
  const std::vector<ConfigFile>& files() const { return files_; }

  // OK, or InvalidArgument naming the first invalid file and the parser's message.
  absl::Status status() const;

  // The values of `flag` from the highest-precedence parsed file defining it; nullptr if none.
  // The pointer lives as long as this object.
  const std::vector<std::string>* Find(std::string_view flag) const;

 private:
  std::vector<ConfigFile> files_;
};

}  // namespace discovery::config
