// The directory a file_sd exporter writes for one server: `<root>/<namespace>/<job>.json`, read by
// Prometheus' file_sd. FileSdDirectory owns that directory for the lifetime of the process (an
// exclusive lock file), writes each file atomically and remembers in a manifest which files it
// wrote, so that it can delete its own stale files after a restart without ever touching files an
// operator put there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace discovery::exporter {

// A file's content, shared by whoever made it and the directory that wrote it, so that a file
// handed to Apply unchanged is neither copied nor compared byte by byte again.
class FileContent {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): a FileSet is written with plain strings
  FileContent(std::string text) : text_(std::make_shared<const std::string>(std::move(text))) {}
  // NOLINTNEXTLINE(google-explicit-constructor): a FileSet is written with plain strings
  FileContent(const char* text) : FileContent(std::string(text)) {}

  const std::string& text() const { return *text_; }
  friend bool operator==(const FileContent& a, const FileContent& b) {
    return a.text_ == b.text_ || *a.text_ == *b.text_;
  }

 private:
  std::shared_ptr<const std::string> text_;  // never null
};

// Relative path "<namespace>/<job>.json" -> file content.
using FileSet = std::map<std::string, FileContent, std::less<>>;

struct ApplyResult {
  int written = 0;  // files created or replaced
  int removed = 0;  // files deleted
  friend bool operator==(const ApplyResult&, const ApplyResult&) = default;
};

// Names of the bookkeeping files in the root. Neither ends in ".json", so a `*/*.json` (or
// `*.json`) file_sd glob never picks them up.
inline constexpr std::string_view kLockFileName = ".discovery-exporter.lock";
inline constexpr std::string_view kManifestFileName = ".discovery-exporter.manifest";

// Temporary files are named ".discovery-exporter.<target>.<pid>-<n>.tmp" next to their target;
// whatever matches this prefix and suffix in the root or a namespace directory is a leftover of a
// crash and is removed by Open.
inline constexpr std::string_view kTempFilePrefix = ".discovery-exporter.";
inline constexpr std::string_view kTempFileSuffix = ".tmp";

// The longest directory or file name the directory writes (Linux NAME_MAX).
inline constexpr size_t kMaxFileNameBytes = 255;
// How much of a target's name goes into its temporary file's name: the temporary name's prefix,
// suffix, pid and counter take at most 55 bytes, so it stays within kMaxFileNameBytes.
inline constexpr size_t kMaxTempTargetBytes = 200;

// OK when Apply can write `path`: "<a>/<b>.json" with a and b non-empty and made of
// [A-Za-z0-9_-] (so a path stays one directory below the root and is never "." or ".."), a and
// "<b>.json" at most kMaxFileNameBytes. InvalidArgument naming the problem otherwise.
absl::Status ValidateFileSdPath(std::string_view path);

// Ownership rules:
//  * A file is owned when it is listed in the manifest or is in the FileSet of an Apply. A wanted
//    path therefore always belongs to the exporter: a foreign file at exactly that path is adopted
//    (overwritten, then deleted when it is no longer wanted). Foreign files at any other path are
//    never touched.
//  * The manifest is written ahead: paths are added to it before their files are created, and
//    removed only after the files are gone, so that a crash at any point leaves no file of ours
//    that a later run would take for a foreign one.
//
// What is on disk is read once per file (on first sight, i.e. after Open or ResetCache); after
// that Apply compares against an in-memory copy of what it last wrote or read. A file edited or
// deleted behind the exporter's back is thus repaired only when its wanted content changes, after
// a restart, or after ResetCache. That keeps a steady-state Apply free of I/O, and nobody but the
// exporter is supposed to write these files.
//
// Not thread-safe: one thread calls Apply.
class FileSdDirectory {
 public:
  // Creates `root` (mode 0755, parents included) and takes an exclusive, non-blocking flock on
  // `root`/.discovery-exporter.lock (created 0644, kept on disk: deleting a lock file races).
  // FailedPrecondition "another exporter is writing <root> (lock <lockpath>)" when another process
  // (or another FileSdDirectory in this process) holds it. Removes temporary files that a crash
  // left behind and reads the manifest `root`/.discovery-exporter.manifest (the relative paths
  // this exporter wrote in earlier runs, one per line). A manifest that exists but cannot be read
  // is an error: going on without it would turn our old files into foreign ones for good.
  static absl::StatusOr<std::unique_ptr<FileSdDirectory>> Open(const std::filesystem::path& root);

  ~FileSdDirectory();  // releases the lock

  FileSdDirectory(const FileSdDirectory&) = delete;
  FileSdDirectory& operator=(const FileSdDirectory&) = delete;
  FileSdDirectory(FileSdDirectory&&) = delete;  // the lock is tied to this object
  FileSdDirectory& operator=(FileSdDirectory&&) = delete;

  // Makes the owned files equal `files`:
  //  * a file whose content differs from what is on disk is written atomically (temporary file in
  //    the same directory, fchmod 0644, fsync, rename over the target); each changed directory is
  //    fsynced once at the end; namespace directories are created (0755) on demand;
  //  * owned files not in `files` are deleted, then namespace directories that became empty;
  //  * files the exporter does not own are left alone;
  //  * the manifest is rewritten atomically when the owned set changes.
  // A key that ValidateFileSdPath refuses is InvalidArgument and nothing is written. On an I/O
  // error Apply carries on with the other files and returns the first error (with path and reason);
  // every file is always either old or new, and the files that failed are retried by the next
  // Apply.
  absl::StatusOr<ApplyResult> Apply(const FileSet& files);

  // Forgets the remembered content of the files, so that the next Apply reads each wanted file
  // from disk again and rewrites those that differ (e.g. for a periodic resync).
  void ResetCache();

  const std::filesystem::path& root() const { return root_; }

 private:
  FileSdDirectory(std::filesystem::path root, int lock_fd, std::set<std::string> manifest);

  // Writes `content` to `directory`/`name` atomically; `sync_directory` says whether to fsync the
  // directory (Apply batches those).
  absl::Status WriteAtomically(const std::filesystem::path& directory, std::string_view name,
                               const std::string& content, bool sync_directory);
  absl::Status WriteManifest(const std::set<std::string>& paths);

  std::filesystem::path root_;
  int lock_fd_;
  // The paths listed in the manifest on disk: every file of ours that may exist.
  std::set<std::string> manifest_;
  // Relative path -> content known to be on disk. A path is missing when it has not been looked at
  // yet or when its last write failed (it is "dirty").
  std::map<std::string, FileContent, std::less<>> cache_;
  std::uint64_t temp_counter_ = 0;
};

}  // namespace discovery::exporter
