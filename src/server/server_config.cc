#include "server/server_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "fmt/format.h"
#include "openssl/rand.h"

#include "common/format.h"
#include "repo/repo.h"
#include "store/embedded/embedded_store.h"

namespace discovery::server {
namespace {

constexpr size_t kSecretBytes = 32;

std::string Hex(const unsigned char* data, size_t size) {
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out += fmt::format("{:02x}", data[i]);
  }
  return out;
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
  if (geteuid() == 0) {
    return "/var/lib/discovery";
  }
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.local/share/discovery", home != nullptr && *home != '\0' ? home : "/tmp");
}

absl::StatusOr<std::unique_ptr<store::Store>> OpenStore(const StoreConfig& config) {
  if (!config.kind.empty() && config.kind != "embedded" && config.kind != "etcd") {
    return absl::InvalidArgumentError(
        fmt::format("unknown store '{}': use 'embedded' or 'etcd'", config.kind));
  }
  if (absl::Status prefix = repo::ValidatePrefix(config.prefix); !prefix.ok()) {
    return prefix;
  }
  if (!UsesEmbeddedStore(config)) {
    return store::ConnectEtcdStore(config.etcd);
  }
  const std::filesystem::path dir = DataDir(config);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(fmt::format(
        "cannot create the data directory {}: {} (set --data-dir)", dir.string(), error.message()));
  }
  return store::OpenEmbeddedStore({.path = (dir / "discovery.db").string()});
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
  {
    std::ifstream in(path);
    std::string secret;
    if (in && std::getline(in, secret) && !secret.empty()) {
      return secret;
    }
  }
  if (!create) {
    return absl::FailedPreconditionError(fmt::format(
        "no token secret: set --token-secret, or start discoveryd server once so that it creates "
        "{}",
        path.string()));
  }
  std::error_code error;
  std::filesystem::create_directories(path.parent_path(), error);
  unsigned char random[kSecretBytes];
  if (RAND_bytes(random, sizeof(random)) != 1) {
    return absl::InternalError("cannot generate a token secret: OpenSSL RAND_bytes failed");
  }
  const std::string secret = Hex(random, sizeof(random));
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
