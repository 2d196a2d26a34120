#include "server/server_config.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "fmt/format.h"
#include "openssl/rand.h"

#include "common/file.h"
#include "common/format.h"
#include "common/status_macros.h"
#include "repo/repo.h"
#include "store/embedded/embedded_store.h"
#include "store/observed_store.h"

namespace discovery::server {
namespace {

constexpr size_t kSecretBytes = 32;

// $HOME, else the password database's entry of the effective user (systemd and `env -i` may
// leave HOME unset).
std::string HomeDirectory() {
  const char* home = std::getenv("HOME");  // NOLINT(concurrency-mt-unsafe)
  if (home != nullptr && home[0] != '\0') {
    return home;
  }
  const int64_t size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  if (getpwuid_r(geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 &&
      found != nullptr && found->pw_dir != nullptr && found->pw_dir[0] != '\0') {
    return found->pw_dir;
  }
  return "/";
}

// Creates `dir` (and missing parents) owner-only whatever the umask, and refuses a directory
// that other users may write to: whoever can write there can replace the token secret or the
// database.
absl::Status PrepareDataDirectory(const std::filesystem::path& dir) {
  std::filesystem::path partial;
  for (const std::filesystem::path& component : dir) {
    partial /= component;
    if (mkdir(partial.c_str(), 0700) == 0) {
      // mkdir applies the umask; an owner-only directory must not depend on it.
      chmod(partial.c_str(), 0700);
    } else if (errno != EEXIST) {
      return absl::FailedPreconditionError(
          fmt::format("cannot create the data directory {}: {} (set --data-dir)", dir.string(),
                      std::error_code(errno, std::generic_category()).message()));
    }
  }
  struct stat info {};
  if (stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        fmt::format("the data directory {} is not a directory (set --data-dir)", dir.string()));
  }
  if ((info.st_mode & S_IWOTH) != 0) {
    return absl::FailedPreconditionError(fmt::format(
        "the data directory {} is writable by other users (mode {:04o}), who could replace the "
        "token secret or the database; fix it with: chmod o-w {}",
        dir.string(), info.st_mode & 07777, dir.string()));
  }
  return absl::OkStatus();
}

}  // namespace

bool UsesEmbeddedStore(const StoreConfig& config) {
  if (!config.kind.empty()) {
    return config.kind == "embedded";
  }
  return !config.etcd_endpoints_set;
}

std::string DataDir(const StoreConfig& config) {
  if (!config.data_dir.empty()) {
    return config.data_dir;
  }
  // The XDG base directory rules, for root too: /var/lib/discovery belongs to the Debian
  // package, whose units name it explicitly. A relative XDG_DATA_HOME is to be ignored.
  const char* xdg_data_home = std::getenv("XDG_DATA_HOME");  // NOLINT(concurrency-mt-unsafe)
  if (xdg_data_home != nullptr && xdg_data_home[0] == '/') {
    return fmt::format("{}/discovery", xdg_data_home);
  }
  return fmt::format("{}/.local/share/discovery", HomeDirectory());
}

namespace {

absl::StatusOr<std::unique_ptr<store::Store>> OpenStoreReporting(
    const StoreConfig& config, const store::ObservedStore::OnError& on_background_error) {
  if (!config.kind.empty() && config.kind != "embedded" && config.kind != "etcd") {
    return absl::InvalidArgumentError(
        fmt::format("unknown store '{}': use 'embedded' or 'etcd'", config.kind));
  }
  DISCOVERY_RETURN_IF_ERROR(repo::ValidatePrefix(config.prefix));
  if (!UsesEmbeddedStore(config)) {
    return store::ConnectEtcdStore(config.etcd);
  }
  const std::filesystem::path dir = DataDir(config);
  DISCOVERY_RETURN_IF_ERROR(PrepareDataDirectory(dir));
  return store::OpenEmbeddedStore(
      {.path = (dir / "discovery.db").string(), .on_background_error = on_background_error});
}

}  // namespace

absl::StatusOr<std::unique_ptr<store::Store>> OpenStore(const StoreConfig& config) {
  return OpenStoreReporting(config, nullptr);
}

absl::StatusOr<std::unique_ptr<store::Store>> OpenObservedStore(const StoreConfig& config,
                                                                metrics::Metrics& metrics) {
  store::ObservedStore::OnError count = [&metrics](std::string_view op, const absl::Status&) {
    metrics.StoreError(op);
  };
  DISCOVERY_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store,
                             OpenStoreReporting(config, count));
  return std::make_unique<store::ObservedStore>(std::move(store), std::move(count));
}

absl::StatusOr<std::string> ResolveTokenSecret(const ServerConfig& config, bool create) {
  if (!config.token_secret.empty()) {
    return config.token_secret;
  }
  if (!UsesEmbeddedStore(config.store)) {
    return absl::FailedPreconditionError(
        "--token-secret is required with the etcd store: every replica must sign machine tokens "
        "with the same secret");
  }
  const std::filesystem::path path = std::filesystem::path(DataDir(config.store)) / "token-secret";
  if (absl::StatusOr<std::string> content = ReadFile(path); content.ok()) {
    // The secret is the first line.
    std::string secret = content->substr(0, content->find('\n'));
    if (!secret.empty()) {
      return secret;
    }
  }
  if (!create) {
    return absl::FailedPreconditionError(fmt::format(
        "no token secret in {}: pass the server's --data-dir or its --token-secret (`discoveryd "
        "server` creates <data-dir>/token-secret at its first start)",
        path.string()));
  }
  DISCOVERY_RETURN_IF_ERROR(PrepareDataDirectory(path.parent_path()));
  std::error_code error;
  std::array<unsigned char, kSecretBytes> random{};
  if (RAND_bytes(random.data(), random.size()) != 1) {
    return absl::InternalError("cannot generate a token secret: OpenSSL RAND_bytes failed");
  }
  const std::string secret = absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(random.data()), random.size()));
  // O_EXCL: when two processes race, one creates the file and the other reads it back.
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return ResolveTokenSecret(config, false);
    }
    return absl::FailedPreconditionError(
        fmt::format("cannot create the token secret file {}: {}", path.string(),
                    std::error_code(errno, std::generic_category()).message()));
  }
  const std::string line = secret + "\n";
  const bool written =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
  close(fd);
  if (!written) {
    std::filesystem::remove(path, error);
    return absl::InternalError(fmt::format("cannot write the token secret file {}", path.string()));
  }
  return secret;
}

}  // namespace discovery::server
