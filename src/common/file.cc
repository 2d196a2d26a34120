#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

#include "absl/status/status.h"
#include "fmt/format.h"

namespace discovery {
namespace {

std::string Subject(const std::filesystem::path& path, const ReadFileOptions& options) {
  return options.what.empty() ? path.string() : fmt::format("{} {}", options.what, path.string());
}

absl::Status ReadError(const std::filesystem::path& path, const ReadFileOptions& options,
                       int error) {
  return {absl::ErrnoToStatusCode(error), fmt::format("cannot read {}: {}", Subject(path, options),
                                                      std::generic_category().message(error))};
}

// Reads the open descriptor `fd` to its end.
absl::StatusOr<std::string> ReadOpen(int fd, const std::filesystem::path& path,
                                     const ReadFileOptions& options) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    return ReadError(path, options, errno);
  }
  if (options.regular_only && !S_ISREG(info.st_mode)) {
    return absl::FailedPreconditionError(
        fmt::format("cannot read {}: not a regular file", Subject(path, options)));
  }
  if (S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(
        fmt::format("cannot read {}: is a directory", Subject(path, options)));
  }
  std::string content;
  std::array<char, 16384> buffer{};
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n == 0) {
      return content;
    }
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) {
        continue;
      }
      return ReadError(path, options, error);
    }
    content.append(buffer.data(), static_cast<size_t>(n));
  }
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path,
                                     const ReadFileOptions& options) {
  const int flags = O_RDONLY | O_CLOEXEC | (options.follow_links ? 0 : O_NOFOLLOW);
  const int fd = ::open(path.c_str(), flags);  // NOLINT(cppcoreguidelines-pro-type-vararg)
  if (fd < 0) {
    return ReadError(path, options, errno);
  }
  absl::StatusOr<std::string> content = ReadOpen(fd, path, options);
  ::close(fd);
  return content;
}

}  // namespace discovery
