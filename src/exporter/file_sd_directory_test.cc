#include "exporter/file_sd_directory.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/status_matchers.h"

namespace discovery::exporter {

// In ApplyResult's namespace so that gtest finds it by argument-dependent lookup (which an
// anonymous namespace would defeat); static, so another test in the same binary may have its own.
static void PrintTo(const ApplyResult& result, std::ostream* os) {
  *os << "{written=" << result.written << ", removed=" << result.removed << "}";
}

namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void WriteText(const fs::path& path, std::string_view content) { std::ofstream(path) << content; }

struct stat Stat(const fs::path& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
  return info;
}

// Every path below `root`, relative and sorted, directories included.
std::vector<std::string> Tree(const fs::path& root) {
  std::vector<std::string> paths;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(root)) {
    paths.push_back(fs::relative(entry.path(), root).string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

class FileSdDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/file-sd-directory-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    temp_ = pattern;
    root_ = temp_ / "server-1";
  }
  void TearDown() override { fs::remove_all(temp_); }

  std::unique_ptr<FileSdDirectory> OpenOrDie() {
    absl::StatusOr<std::unique_ptr<FileSdDirectory>> directory = FileSdDirectory::Open(root_);
    EXPECT_THAT(directory, IsOk());
    return directory.ok() ? *std::move(directory) : nullptr;
  }

  fs::path temp_;
  fs::path root_;
};

TEST_F(FileSdDirectoryTest, OpenCreatesTheRootWithParents) {
  root_ = temp_ / "a" / "b" / "server-1";
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  EXPECT_EQ(directory->root(), root_);
  EXPECT_TRUE(fs::is_directory(root_));
  EXPECT_EQ(Stat(root_).st_mode & 07777, 0755);
  EXPECT_EQ(Stat(root_ / kLockFileName).st_mode & 0777, 0644);
}

TEST_F(FileSdDirectoryTest, OpenFailsWhenTheRootIsAFile) {
  WriteText(temp_ / "server-1", "not a directory");
  EXPECT_THAT(FileSdDirectory::Open(root_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(root_.string())));
}

TEST_F(FileSdDirectoryTest, WritesFilesWithExactContentAndMode0644) {
  // The modes are set explicitly: a restrictive umask must not hide the files from Prometheus.
  const mode_t old_umask = ::umask(077);
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  const FileSet files = {
      {"ns-a/job_1.json", "[{\"targets\":[\"a:1\"]}]\n"},
      {"ns-a/job-2.json", ""},
      {"NS_b/Job.json", std::string("binary\0content", 14)},
  };
  const absl::StatusOr<ApplyResult> result = directory->Apply(files);
  ::umask(old_umask);
  EXPECT_THAT(result, IsOkAndHolds(ApplyResult{.written = 3, .removed = 0}));
  for (const auto& [path, content] : files) {
    EXPECT_EQ(ReadText(root_ / path), content) << path;
    const struct stat info = Stat(root_ / path);
    EXPECT_TRUE(S_ISREG(info.st_mode)) << path;
    EXPECT_EQ(info.st_mode & 07777, 0644) << path;
  }
  EXPECT_EQ(Stat(root_ / "ns-a").st_mode & 07777, 0755);
  EXPECT_EQ(Stat(root_ / "NS_b").st_mode & 07777, 0755);
  EXPECT_THAT(Tree(root_),
              ElementsAre(".discovery-exporter.lock", ".discovery-exporter.manifest", "NS_b",
                          "NS_b/Job.json", "ns-a", "ns-a/job-2.json", "ns-a/job_1.json"));
}

TEST_F(FileSdDirectoryTest, UnchangedContentIsNotRewritten) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  const FileSet files = {{"ns/a.json", "a"}, {"ns/b.json", "b"}};
  ASSERT_THAT(directory->Apply(files), IsOkAndHolds(ApplyResult{2, 0}));
  const struct stat before = Stat(root_ / "ns/a.json");
  const struct stat manifest_before = Stat(root_ / kManifestFileName);

  EXPECT_THAT(directory->Apply(files), IsOkAndHolds(ApplyResult{0, 0}));
  const struct stat after = Stat(root_ / "ns/a.json");
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(Stat(root_ / kManifestFileName).st_ino, manifest_before.st_ino);
}

TEST_F(FileSdDirectoryTest, ChangedContentIsRewrittenAtomically) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  ASSERT_THAT(directory->Apply({{"ns/a.json", "old"}, {"ns/b.json", "b"}}),
              IsOkAndHolds(ApplyResult{2, 0}));
  const ino_t old_a = Stat(root_ / "ns/a.json").st_ino;
  const ino_t old_b = Stat(root_ / "ns/b.json").st_ino;

  EXPECT_THAT(directory->Apply({{"ns/a.json", "new content"}, {"ns/b.json", "b"}}),
              IsOkAndHolds(ApplyResult{1, 0}));
  EXPECT_EQ(ReadText(root_ / "ns/a.json"), "new content");
  EXPECT_NE(Stat(root_ / "ns/a.json").st_ino, old_a);  // a new file renamed over the old one
  EXPECT_EQ(Stat(root_ / "ns/b.json").st_ino, old_b);
  EXPECT_THAT(Tree(root_ / "ns"), ElementsAre("a.json", "b.json"));  // no temporary file left
}

TEST_F(FileSdDirectoryTest, RemovingJobsDeletesTheirFilesAndEmptyNamespaceDirectories) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  ASSERT_THAT(directory->Apply({{"ns/a.json", "a"}, {"ns/b.json", "b"}, {"other/c.json", "c"}}),
              IsOkAndHolds(ApplyResult{3, 0}));

  EXPECT_THAT(directory->Apply({{"ns/a.json", "a"}}), IsOkAndHolds(ApplyResult{0, 2}));
  EXPECT_THAT(Tree(root_), ElementsAre(".discovery-exporter.lock", ".discovery-exporter.manifest",
                                       "ns", "ns/a.json"));

  EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 1}));
  EXPECT_THAT(Tree(root_), ElementsAre(".discovery-exporter.lock", ".discovery-exporter.manifest"));

  // A removed job that comes back is written again.
  EXPECT_THAT(directory->Apply({{"ns/a.json", "a"}}), IsOkAndHolds(ApplyResult{1, 0}));
  EXPECT_EQ(ReadText(root_ / "ns/a.json"), "a");
}

TEST_F(FileSdDirectoryTest, ForeignFilesSurviveApplyAndReopen) {
  fs::create_directories(root_ / "ns");
  WriteText(root_ / "ns/static.json", "static");
  WriteText(root_ / "README", "readme");
  {
    const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
    ASSERT_NE(directory, nullptr);
    EXPECT_THAT(directory->Apply({{"ns/job.json", "job"}}), IsOkAndHolds(ApplyResult{1, 0}));
    EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 1}));
    EXPECT_FALSE(fs::exists(root_ / "ns/job.json"));
    EXPECT_EQ(ReadText(root_ / "ns/static.json"), "static");  // and its directory with it
    EXPECT_THAT(directory->Apply({{"ns/job.json", "job"}}), IsOkAndHolds(ApplyResult{1, 0}));
  }
  {
    const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
    ASSERT_NE(directory, nullptr);
    EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 1}));
  }
  EXPECT_THAT(Tree(root_), ElementsAre(".discovery-exporter.lock", ".discovery-exporter.manifest",
                                       "README", "ns", "ns/static.json"));
  EXPECT_EQ(ReadText(root_ / "README"), "readme");
  EXPECT_EQ(ReadText(root_ / "ns/static.json"), "static");
}

TEST_F(FileSdDirectoryTest, ManifestLetsALaterInstanceRemoveFilesOfAnEarlierOne) {
  {
    const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
    ASSERT_NE(directory, nullptr);
    ASSERT_THAT(directory->Apply({{"ns/a.json", "a"}, {"ns/b.json", "b"}, {"gone/c.json", "c"}}),
                IsOkAndHolds(ApplyResult{3, 0}));
  }
  EXPECT_THAT(ReadText(root_ / kManifestFileName), HasSubstr("\nns/a.json\nns/b.json\n"));

  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  // a.json is read from disk on first sight and found up to date; b and c are no longer wanted.
  EXPECT_THAT(directory->Apply({{"ns/a.json", "a"}}), IsOkAndHolds(ApplyResult{0, 2}));
  EXPECT_THAT(Tree(root_), ElementsAre(".discovery-exporter.lock", ".discovery-exporter.manifest",
                                       "ns", "ns/a.json"));
}

TEST_F(FileSdDirectoryTest, ManifestListsExactlyTheOwnedFiles) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  ASSERT_THAT(directory->Apply({{"x/b.json", "b"}, {"a/a.json", "a"}}), IsOk());
  EXPECT_THAT(ReadText(root_ / kManifestFileName), ::testing::EndsWith("\na/a.json\nx/b.json\n"));
  EXPECT_EQ(Stat(root_ / kManifestFileName).st_mode & 0777, 0644);
  ASSERT_THAT(directory->Apply({{"a/a.json", "a"}}), IsOk());
  EXPECT_THAT(ReadText(root_ / kManifestFileName), ::testing::EndsWith("\na/a.json\n"));
}

TEST_F(FileSdDirectoryTest, MalformedManifestLinesAreIgnored) {
  fs::create_directories(root_ / "ns");
  WriteText(temp_ / "outside.json", "outside");
  WriteText(root_ / "ns/mine.json", "mine");
  WriteText(root_ / "top.json", "top");
  WriteText(root_ / kManifestFileName,
            "# comment\n../outside.json\ntop.json\n\nns/mine.json\nns/../../outside.json");
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 1}));
  EXPECT_EQ(ReadText(temp_ / "outside.json"), "outside");
  EXPECT_EQ(ReadText(root_ / "top.json"), "top");
  EXPECT_FALSE(fs::exists(root_ / "ns"));
}

TEST_F(FileSdDirectoryTest, UnreadableManifestFailsOpen) {
  fs::create_directories(root_ / kManifestFileName);  // a directory cannot be read as a file
  EXPECT_THAT(FileSdDirectory::Open(root_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(kManifestFileName)));
  // The failed Open released the lock.
  fs::remove(root_ / kManifestFileName);
  EXPECT_NE(OpenOrDie(), nullptr);
}

TEST_F(FileSdDirectoryTest, SecondOpenFailsWhileTheFirstIsAlive) {
  std::unique_ptr<FileSdDirectory> first = OpenOrDie();
  ASSERT_NE(first, nullptr);
  const std::string lock = (root_ / kLockFileName).string();
  EXPECT_THAT(FileSdDirectory::Open(root_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "another exporter is writing " + root_.string() + " (lock " + lock + ")"));

  first.reset();
  EXPECT_TRUE(fs::exists(lock));  // kept: deleting a lock file races with the next locker
  std::unique_ptr<FileSdDirectory> second = OpenOrDie();
  EXPECT_NE(second, nullptr);
}

TEST_F(FileSdDirectoryTest, InvalidKeysAreRejectedAndNothingIsWritten) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  for (const char* bad :
       {"../x.json", "a/b/c.json", "a.json", "a/b.txt", "a/.json", "/b.json", "a/b.json/",
        "./b.json", "a/../b.json", "a/b.c.json", "a b/c.json", "a/b.JSON", "", "a/b.json\n"}) {
    EXPECT_THAT(directory->Apply({{"ok/fine.json", "fine"}, {bad, "bad"}}),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid file_sd path")))
        << bad;
  }
  EXPECT_THAT(Tree(root_), ElementsAre(".discovery-exporter.lock"));
  EXPECT_FALSE(fs::exists(temp_ / "x.json"));
}

TEST_F(FileSdDirectoryTest, NamesUpToNameMaxAreWrittenLongerOnesRefused) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  // The longest names: a 255-byte directory and a 255-byte file name, temporary file included.
  const std::string longest = std::string(255, 'n') + "/" + std::string(250, 'j') + ".json";
  EXPECT_THAT(ValidateFileSdPath(longest), IsOk());
  EXPECT_THAT(directory->Apply({{longest, "[]"}}), IsOkAndHolds(ApplyResult{1, 0}));
  EXPECT_EQ(ReadText(root_ / longest), "[]");

  for (const std::string& bad :
       {std::string(256, 'n') + "/j.json", "n/" + std::string(251, 'j') + ".json"}) {
    EXPECT_THAT(ValidateFileSdPath(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("longer than 255 bytes")));
    EXPECT_THAT(directory->Apply({{bad, "[]"}}), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  EXPECT_THAT(ValidateFileSdPath("a/b.c.json"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid file_sd path")));
}

// A manifest written by an exporter that could not write an overlong name lists it; it is
// ignored rather than tried (and failed) forever.
TEST_F(FileSdDirectoryTest, OverlongManifestEntriesAreIgnored) {
  fs::create_directories(root_ / "ns");
  WriteText(root_ / "ns/mine.json", "mine");
  WriteText(root_ / kManifestFileName, "ns/" + std::string(300, 'j') + ".json\nns/mine.json\n");
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 1}));
}

TEST_F(FileSdDirectoryTest, StaleTempFilesAreRemovedOnOpen) {
  fs::create_directories(root_ / "ns");
  WriteText(root_ / ".discovery-exporter..discovery-exporter.manifest.12-0.tmp", "stale");
  WriteText(root_ / "ns/.discovery-exporter.job.json.12-3.tmp", "stale");
  WriteText(root_ / "ns/.vim.tmp", "foreign");
  WriteText(root_ / ".other.tmp", "foreign");
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  EXPECT_THAT(Tree(root_),
              ElementsAre(".discovery-exporter.lock", ".other.tmp", "ns", "ns/.vim.tmp"));
}

TEST_F(FileSdDirectoryTest, FileChangedBehindOurBackIsRepairedAfterReopenOrResetCache) {
  // Decision: after the first sight Apply trusts its in-memory copy, so an edit behind its back
  // survives until the wanted content changes, the exporter restarts or ResetCache is called.
  const FileSet files = {{"ns/a.json", "a"}};
  {
    const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
    ASSERT_NE(directory, nullptr);
    ASSERT_THAT(directory->Apply(files), IsOkAndHolds(ApplyResult{1, 0}));
    WriteText(root_ / "ns/a.json", "edited");
    EXPECT_THAT(directory->Apply(files), IsOkAndHolds(ApplyResult{0, 0}));
    EXPECT_EQ(ReadText(root_ / "ns/a.json"), "edited");

    directory->ResetCache();
    EXPECT_THAT(directory->Apply(files), IsOkAndHolds(ApplyResult{1, 0}));
    EXPECT_EQ(ReadText(root_ / "ns/a.json"), "a");

    fs::remove(root_ / "ns/a.json");
  }
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  EXPECT_THAT(directory->Apply(files), IsOkAndHolds(ApplyResult{1, 0}));
  EXPECT_EQ(ReadText(root_ / "ns/a.json"), "a");
}

TEST_F(FileSdDirectoryTest, ForeignFileAtAWantedPathIsAdopted) {
  fs::create_directories(root_ / "ns");
  WriteText(root_ / "ns/same.json", "same");
  WriteText(root_ / "ns/other.json", "operator's");
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  const ino_t same = Stat(root_ / "ns/same.json").st_ino;
  EXPECT_THAT(directory->Apply({{"ns/same.json", "same"}, {"ns/other.json", "ours"}}),
              IsOkAndHolds(ApplyResult{1, 0}));
  EXPECT_EQ(Stat(root_ / "ns/same.json").st_ino, same);  // equal content: read, not rewritten
  EXPECT_EQ(ReadText(root_ / "ns/other.json"), "ours");

  EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 2}));
  EXPECT_FALSE(fs::exists(root_ / "ns"));
}

TEST_F(FileSdDirectoryTest, SymbolicLinkAtAWantedPathIsReplacedNotFollowed) {
  fs::create_directories(root_ / "ns");
  WriteText(temp_ / "target", "a");
  fs::create_symlink(temp_ / "target", root_ / "ns/a.json");
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  EXPECT_THAT(directory->Apply({{"ns/a.json", "a"}}), IsOkAndHolds(ApplyResult{1, 0}));
  EXPECT_TRUE(S_ISREG(Stat(root_ / "ns/a.json").st_mode));
  EXPECT_EQ(ReadText(temp_ / "target"), "a");
}

TEST_F(FileSdDirectoryTest, IoErrorCarriesOnAndTheFailedFileIsRetried) {
  // A file where the namespace directory should be makes that one write fail, whoever runs the
  // test (root ignores permission bits).
  fs::create_directories(root_);
  WriteText(root_ / "blocked", "foreign");
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  const FileSet files = {{"a/x.json", "x"}, {"blocked/y.json", "y"}, {"c/z.json", "z"}};
  EXPECT_THAT(directory->Apply(files),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cannot create directory " + (root_ / "blocked").string())));
  EXPECT_EQ(ReadText(root_ / "a/x.json"), "x");
  EXPECT_EQ(ReadText(root_ / "c/z.json"), "z");
  EXPECT_EQ(ReadText(root_ / "blocked"), "foreign");

  fs::remove(root_ / "blocked");
  EXPECT_THAT(directory->Apply(files), IsOkAndHolds(ApplyResult{1, 0}));
  EXPECT_EQ(ReadText(root_ / "blocked/y.json"), "y");
}

TEST_F(FileSdDirectoryTest, FailedRemovalIsKeptInTheManifestAndRetried) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  ASSERT_THAT(directory->Apply({{"ns/a.json", "a"}}), IsOkAndHolds(ApplyResult{1, 0}));
  // A non-empty directory in place of our file cannot be unlinked.
  fs::remove(root_ / "ns/a.json");
  fs::create_directories(root_ / "ns/a.json/sub");
  const absl::StatusOr<ApplyResult> result = directory->Apply({});
  EXPECT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("cannot remove " + (root_ / "ns/a.json").string()));
  EXPECT_THAT(ReadText(root_ / kManifestFileName), HasSubstr("\nns/a.json\n"));

  fs::remove_all(root_ / "ns/a.json");
  WriteText(root_ / "ns/a.json", "a");
  EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 1}));
  EXPECT_FALSE(fs::exists(root_ / "ns"));
  EXPECT_THAT(ReadText(root_ / kManifestFileName), ::testing::Not(HasSubstr("ns/a.json")));
}

TEST_F(FileSdDirectoryTest, EmptyApplyOnAFreshDirectoryWritesNothing) {
  const std::unique_ptr<FileSdDirectory> directory = OpenOrDie();
  ASSERT_NE(directory, nullptr);
  EXPECT_THAT(directory->Apply({}), IsOkAndHolds(ApplyResult{0, 0}));
  EXPECT_THAT(Tree(root_), ElementsAre(".discovery-exporter.lock"));
}

}  // namespace
}  // namespace discovery::exporter
