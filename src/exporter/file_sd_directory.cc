#include "exporter/file_sd_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "fmt/format.h"

#include "common/file.h"
#include "common/format.h"
#include "common/status_macros.h"

namespace discovery::exporter {
namespace {

// Temporary files are not ours to keep for long; more collisions than this mean something else is
// creating files with our names.
constexpr int kMaxTempAttempts = 100;

constexpr std::string_view kManifestHeader =
    "# Files written by the discovery file_sd exporter, which deletes them once they are no longer "
    "wanted. Do not edit.\n";

// Closes a file descriptor on every return path.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ScopedFd(ScopedFd&&) = delete;
  ScopedFd& operator=(ScopedFd&&) = delete;

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  // Closes now, so that the error of close (which can report a failed write-back) is not lost.
  int Close() { return ::close(release()); }

 private:
  int fd_;
};

// std::strerror is not thread-safe; the category's message is.
std::string ErrnoText(int error) { return std::generic_category().message(error); }

absl::Status ErrnoStatus(int error, std::string_view what) {
  return {absl::ErrnoToStatusCode(error), fmt::format("{}: {}", what, ErrnoText(error))};
}

bool IsValidName(std::string_view name) {
  return !name.empty() && std::ranges::all_of(name, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool IsValidKey(std::string_view key) { return ValidateFileSdPath(key).ok(); }

bool IsTempFileName(std::string_view name) {
  return name.size() > kTempFilePrefix.size() + kTempFileSuffix.size() &&
         name.starts_with(kTempFilePrefix) && name.ends_with(kTempFileSuffix);
}

// Creates one directory with mode 0755; true when it did not exist. The mode is set explicitly
// because Prometheus usually runs as another user and a restrictive umask would hide the files.
absl::StatusOr<bool> MakeDirectory(const std::filesystem::path& path) {
  if (::mkdir(path.c_str(), 0755) == 0) {
    if (::chmod(path.c_str(), 0755) != 0) {
      const int error = errno;
      return ErrnoStatus(error, fmt::format("cannot set the mode of directory {}", path.string()));
    }
    return true;
  }
  const int error = errno;
  struct stat info {};
  if (error == EEXIST && ::stat(path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) {
      return false;
    }
    return ErrnoStatus(ENOTDIR, fmt::format("cannot create directory {}", path.string()));
  }
  return ErrnoStatus(error, fmt::format("cannot create directory {}", path.string()));
}

absl::Status MakeDirectories(const std::filesystem::path& path) {
  std::filesystem::path prefix;
  for (const std::filesystem::path& part : path) {
    if (part.empty()) {
      continue;  // a trailing separator
    }
    prefix /= part;
    DISCOVERY_RETURN_IF_ERROR(MakeDirectory(prefix).status());
  }
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::filesystem::path& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0) {
    const int error = errno;
    return ErrnoStatus(error, fmt::format("cannot sync directory {}", path.string()));
  }
  return absl::OkStatus();
}

// Reads a regular file. A symbolic link is not followed (ELOOP): its target is not ours to
// compare with, and a rename replaces the link itself anyway.
absl::StatusOr<std::string> ReadOwnFile(const std::filesystem::path& path) {
  return ReadFile(path, {.follow_links = false, .regular_only = true});
}

// Returns 0 or the errno of the failed write.
int WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// Removes the temporary files of an earlier run that crashed between creating and renaming them,
// in the root and in the namespace directories. Best effort: a leftover is harmless (its name does
// not end in ".json"), so failing to remove one is no reason to refuse to start.
void RemoveStaleTempFiles(const std::filesystem::path& root) {
  auto remove_in = [](const std::filesystem::path& directory, bool descend, auto& self) -> void {
    std::error_code error;
    for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end;
         it.increment(error)) {
      const std::string name = it->path().filename().string();
      const std::filesystem::file_status status = it->symlink_status(error);
      if (error) {
        error.clear();
        continue;
      }
      if (std::filesystem::is_regular_file(status) && IsTempFileName(name)) {
        ::unlink(it->path().c_str());
      } else if (descend && std::filesystem::is_directory(status) && IsValidName(name)) {
        self(it->path(), false, self);
      }
    }
  };
  remove_in(root, true, remove_in);
}

std::set<std::string> ParseManifest(std::string_view content) {
  std::set<std::string> paths;
  while (!content.empty()) {
    const size_t end = content.find('\n');
    const std::string_view line = content.substr(0, end);
    content.remove_prefix(end == std::string_view::npos ? content.size() : end + 1);
    // Only well-formed keys: whatever else is in the file must not make us delete anything.
    if (IsValidKey(line)) {
      paths.emplace(line);
    }
  }
  return paths;
}

std::string_view NamespaceOf(std::string_view key) { return key.substr(0, key.find('/')); }
std::string_view FileNameOf(std::string_view key) { return key.substr(key.find('/') + 1); }

}  // namespace

FileSdDirectory::FileSdDirectory(std::filesystem::path root, int lock_fd,
                                 std::set<std::string> manifest)
    : root_(std::move(root)), lock_fd_(lock_fd), manifest_(std::move(manifest)) {}

FileSdDirectory::~FileSdDirectory() {
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
  }
}

absl::StatusOr<std::unique_ptr<FileSdDirectory>> FileSdDirectory::Open(
    const std::filesystem::path& root) {
  DISCOVERY_RETURN_IF_ERROR(MakeDirectories(root));

  const std::filesystem::path lock_path = root / kLockFileName;
  ScopedFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (lock.get() < 0) {
    const int error = errno;
    return ErrnoStatus(error, fmt::format("cannot open lock file {}", lock_path.string()));
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(fmt::format("another exporter is writing {} (lock {})",
                                                       root.string(), lock_path.string()));
    }
    return ErrnoStatus(error, fmt::format("cannot lock {}", lock_path.string()));
  }

  // Only now, holding the lock, is every temporary file certain to be a leftover.
  RemoveStaleTempFiles(root);

  std::set<std::string> manifest;
  const std::filesystem::path manifest_path = root / kManifestFileName;
  absl::StatusOr<std::string> content = ReadOwnFile(manifest_path);
  if (content.ok()) {
    manifest = ParseManifest(*content);
  } else if (!absl::IsNotFound(content.status())) {
    return content.status();
  }
  return std::unique_ptr<FileSdDirectory>(
      new FileSdDirectory(root, lock.release(), std::move(manifest)));
}

void FileSdDirectory::ResetCache() { cache_.clear(); }

absl::Status FileSdDirectory::WriteAtomically(const std::filesystem::path& directory,
                                              std::string_view name, const std::string& content,
                                              bool sync_directory) {
  const std::filesystem::path target = directory / name;
  std::filesystem::path temp;
  int fd = -1;
  // O_EXCL: never write through a file (or a symbolic link) someone else put at that name.
  for (int attempt = 0; fd < 0; ++attempt) {
    // The target's name is cut so that the decoration keeps a name of up to NAME_MAX bytes
    // within NAME_MAX; pid and counter keep temporary names unique all the same.
    temp = directory / fmt::format("{}{}.{}-{}{}", kTempFilePrefix,
                                   name.substr(0, kMaxTempTargetBytes), ::getpid(), temp_counter_++,
                                   kTempFileSuffix);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    const int error = errno;
    if (fd < 0 && (error != EEXIST || attempt + 1 >= kMaxTempAttempts)) {
      return ErrnoStatus(error, fmt::format("cannot write {}: cannot create temporary file {}",
                                            target.string(), temp.string()));
    }
  }
  ScopedFd file(fd);
  auto fail = [&](int error, std::string_view step) {
    file.Close();
    ::unlink(temp.c_str());
    return ErrnoStatus(error,
                       fmt::format("cannot write {}: {} {}", target.string(), step, temp.string()));
  };
  if (const int error = WriteAll(file.get(), content); error != 0) {
    return fail(error, "write to");
  }
  // Explicitly, since the umask may have taken read access away from Prometheus. Before fsync, so
  // that the mode is as durable as the content.
  if (::fchmod(file.get(), 0644) != 0) {
    const int error = errno;
    return fail(error, "chmod of");
  }
  if (::fsync(file.get()) != 0) {
    const int error = errno;
    return fail(error, "fsync of");
  }
  if (file.Close() != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus(error,
                       fmt::format("cannot write {}: close of {}", target.string(), temp.string()));
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    return ErrnoStatus(
        error, fmt::format("cannot write {}: rename of {}", target.string(), temp.string()));
  }
  return sync_directory ? SyncDirectory(directory) : absl::OkStatus();
}

absl::Status FileSdDirectory::WriteManifest(const std::set<std::string>& paths) {
  std::string content(kManifestHeader);
  for (const std::string& path : paths) {
    content += path;
    content += '\n';
  }
  return WriteAtomically(root_, kManifestFileName, content, /*sync_directory=*/true);
}

absl::Status ValidateFileSdPath(std::string_view path) {
  constexpr std::string_view kSuffix = ".json";
  std::string_view key = path;
  const size_t slash = key.find('/');
  bool valid = key.ends_with(kSuffix) && slash != std::string_view::npos;
  if (valid) {
    key.remove_suffix(kSuffix.size());
    valid = IsValidName(key.substr(0, slash)) && IsValidName(key.substr(slash + 1));
  }
  if (!valid) {
    return absl::InvalidArgumentError(fmt::format(
        "invalid file_sd path '{}': want <namespace>/<job>.json, names made of [A-Za-z0-9_-]",
        path.substr(0, kMaxFileNameBytes)));
  }
  if (slash > kMaxFileNameBytes || path.size() - slash - 1 > kMaxFileNameBytes) {
    return absl::InvalidArgumentError(fmt::format(
        "invalid file_sd path '{}...': a directory or file name is longer than {} bytes",
        path.substr(0, 64), kMaxFileNameBytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<ApplyResult> FileSdDirectory::Apply(const FileSet& files) {
  for (const auto& [path, content] : files) {
    DISCOVERY_RETURN_IF_ERROR(ValidateFileSdPath(path));
  }

  absl::Status first_error;
  auto note = [&first_error](absl::Status status) {
    if (first_error.ok()) {
      first_error = std::move(status);
    }
  };

  std::vector<FileSet::const_pointer> to_write;
  for (const auto& entry : files) {
    auto cached = cache_.find(entry.first);
    if (cached == cache_.end()) {
      // First sight. Any read error just means "write it": the rename replaces whatever is there.
      absl::StatusOr<std::string> on_disk = ReadOwnFile(root_ / entry.first);
      if (on_disk.ok()) {
        cached = cache_.emplace(entry.first, *std::move(on_disk)).first;
      }
    }
    if (cached == cache_.end() || !(cached->second == entry.second)) {
      to_write.push_back(&entry);
    }
  }

  // Write-ahead: the manifest lists a file before it can exist.
  std::set<std::string> ahead = manifest_;
  for (const auto& [path, content] : files) {
    ahead.insert(path);
  }
  if (ahead != manifest_) {
    if (absl::Status status = WriteManifest(ahead); status.ok()) {
      manifest_ = std::move(ahead);
    } else {
      note(std::move(status));
    }
  }

  ApplyResult result;
  std::set<std::filesystem::path> unsynced_directories;
  for (const FileSet::const_pointer entry : to_write) {
    const std::string& path = entry->first;
    if (!manifest_.contains(path)) {
      continue;  // the manifest could not be updated; stays dirty and is retried next time
    }
    const std::filesystem::path directory = root_ / NamespaceOf(path);
    absl::StatusOr<bool> created = MakeDirectory(directory);
    absl::Status status = created.status();
    if (status.ok()) {
      if (*created) {
        unsynced_directories.insert(root_);
      }
      status = WriteAtomically(directory, FileNameOf(path), entry->second.text(),
                               /*sync_directory=*/false);
    }
    if (!status.ok()) {
      note(std::move(status));
      cache_.erase(path);  // re-read next time rather than trust anything about it
      continue;
    }
    cache_.insert_or_assign(path, entry->second);
    unsynced_directories.insert(directory);
    ++result.written;
  }

  std::set<std::string> kept;  // owned, unwanted, but could not be deleted
  std::set<std::string, std::less<>> touched_namespaces;
  for (const std::string& path : manifest_) {
    if (files.contains(path)) {
      continue;
    }
    cache_.erase(path);
    const std::filesystem::path file = root_ / path;
    if (::unlink(file.c_str()) == 0) {
      ++result.removed;
      unsynced_directories.insert(file.parent_path());
    } else if (const int error = errno; error != ENOENT && error != ENOTDIR) {
      note(ErrnoStatus(error, fmt::format("cannot remove {}", file.string())));
      kept.insert(path);
      continue;
    }
    touched_namespaces.emplace(NamespaceOf(path));
  }
  for (const std::string& name : touched_namespaces) {
    // Fails (ENOTEMPTY) while anything is left in it, ours or not; that is the intended check.
    const std::filesystem::path directory = root_ / name;
    if (::rmdir(directory.c_str()) == 0) {
      unsynced_directories.erase(directory);
      unsynced_directories.insert(root_);
    }
  }

  // Batched: one fsync per directory rather than per file makes a large first Apply cheap, and
  // renames are atomic without it (the fsync is only about surviving a power loss).
  for (const std::filesystem::path& directory : unsynced_directories) {
    if (absl::Status status = SyncDirectory(directory); !status.ok()) {
      note(std::move(status));
    }
  }

  std::set<std::string> owned;
  for (const std::string& path : manifest_) {
    if (files.contains(path) || kept.contains(path)) {
      owned.insert(path);
    }
  }
  if (owned != manifest_) {
    // On failure the manifest on disk keeps listing deleted files, which is harmless (deleting a
    // missing file is fine) and repaired by the next Apply.
    if (absl::Status status = WriteManifest(owned); status.ok()) {
      manifest_ = std::move(owned);
    } else {
      note(std::move(status));
    }
  }

  DISCOVERY_RETURN_IF_ERROR(first_error);
  return result;
}

}  // namespace discovery::exporter
