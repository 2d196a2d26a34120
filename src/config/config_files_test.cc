#include "config/config_files.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "config/test_util.h"
#include "testing/status_matchers.h"

namespace discovery::config {
namespace {

using ::discovery::config::testutil::TempTree;
using ::discovery::testing::IsOk;
using ::discovery::testing::IsOkAndHolds;
using ::discovery::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::Pointee;
using ::testing::StartsWith;

TEST(ConfigLocationsTest, CandidatesAreAbsoluteAndOrderedByPrecedence) {
  const ConfigLocations locations{
      .working_dir = "/work/dir", .home_dir = "/home/me", .system_root = "/"};
  EXPECT_THAT(locations.Candidates(),
              ElementsAre(std::filesystem::path("/work/dir/discovery.yaml"),
                          std::filesystem::path("/home/me/.config/discovery/config.yaml"),
                          std::filesystem::path("/etc/discovery/config.yaml")));
}

TEST(ConfigLocationsTest, RelativeDirectoriesBecomeAbsolute) {
  const ConfigLocations locations{.working_dir = ".", .home_dir = "h", .system_root = "/"};
  for (const std::filesystem::path& path : locations.Candidates()) {
    EXPECT_TRUE(path.is_absolute()) << path;
  }
  EXPECT_EQ(locations.Candidates().front(), std::filesystem::current_path() / "discovery.yaml");
}

TEST(ConfigLocationsTest, FromEnvironmentUsesWorkingDirectory) {
  const ConfigLocations locations = ConfigLocations::FromEnvironment();
  EXPECT_EQ(locations.working_dir, std::filesystem::current_path());
  EXPECT_FALSE(locations.home_dir.empty());
  EXPECT_EQ(locations.system_root, std::filesystem::path("/"));
}

TEST(FileStatusNameTest, NamesEveryStatus) {
  EXPECT_EQ(FileStatusName(FileStatus::kParsed), "parsed");
  EXPECT_EQ(FileStatusName(FileStatus::kNotFound), "not found");
  EXPECT_EQ(FileStatusName(FileStatus::kPermissionDenied), "permission denied");
  EXPECT_EQ(FileStatusName(FileStatus::kInvalid), "invalid");
}

TEST(ParseConfigYamlTest, ReadsScalarsListsAndMappings) {
  const absl::StatusOr<FlagValues> values = ParseConfigYaml(
      "selector: zone=default\n"
      "oidc-roles: [role1, role2]\n"
      "etcd-endpoints:\n  - https://a:2379\n  - https://b:2379\n"
      "labels: {team: sre, tier: \"1\"}\n"
      "debug: true\n"
      "port: 8080\n"
      "unset:\n");
  ASSERT_THAT(values, IsOk());
  EXPECT_THAT(*values,
              ElementsAre(Pair("debug", ElementsAre("true")),
                          Pair("etcd-endpoints", ElementsAre("https://a:2379", "https://b:2379")),
                          Pair("labels", ElementsAre("team=sre", "tier=1")),
                          Pair("oidc-roles", ElementsAre("role1", "role2")),
                          Pair("port", ElementsAre("8080")),
                          Pair("selector", ElementsAre("zone=default"))));
}

TEST(ParseConfigYamlTest, EmptyOrCommentOnlyDocumentIsEmpty) {
  EXPECT_THAT(ParseConfigYaml(""), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(ParseConfigYaml("# nothing here\n"), IsOkAndHolds(IsEmpty()));
}

TEST(ParseConfigYamlTest, RejectsMalformedYamlWithParserMessage) {
  EXPECT_THAT(ParseConfigYaml("a: [1, 2\nb: c\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("yaml-cpp: error at line")));
}

TEST(ParseConfigYamlTest, RejectsWrongShapes) {
  EXPECT_THAT(ParseConfigYaml("- a\n- b\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mapping")));
  EXPECT_THAT(ParseConfigYaml("just a string\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mapping")));
  EXPECT_THAT(ParseConfigYaml("a:\n  - [1, 2]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("value of a must be")));
  EXPECT_THAT(ParseConfigYaml("a:\n  b: {c: d}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("value of a must be")));
  EXPECT_THAT(ParseConfigYaml("[a]: b\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("flag names")));
}

// Found by fuzz/config_yaml_fuzzer: yaml-cpp passed the bytes through, its emitter wrote them
// back as U+FFFD. The Go original's parser rejects such files too.
TEST(ParseConfigYamlTest, RejectsInvalidUtf8) {
  EXPECT_THAT(ParseConfigYaml("oidc-roles:\n  - discovery-admin\n  - \"quoted: val\x91\x9a\"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 2: value of oidc-roles must be valid UTF-8")));
  EXPECT_THAT(ParseConfigYaml("labels: {zone: \"\xed\xa0\x80\"}\n"),  // a UTF-16 surrogate
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be valid UTF-8")));
  EXPECT_THAT(ParseConfigYaml("\xc0\xaf: x\n"),  // overlong '/'
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 1: flag names must be valid UTF-8")));
  EXPECT_THAT(ParseConfigYaml("name: \"grüße 😀\"\n"),
              IsOkAndHolds(ElementsAre(Pair("name", ElementsAre("grüße 😀")))));
}

// Found by fuzz/config_yaml_fuzzer: a raw NUL in a key, which yaml-cpp's emitter wrote back as
// a CR. Escapes of control characters are refused too; tab and line feed are text.
TEST(ParseConfigYamlTest, RejectsControlCharacters) {
  EXPECT_THAT(ParseConfigYaml(std::string("ad\0ress: localhost:3001\n", 24)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 1: flag names must be valid UTF-8 without control")));
  EXPECT_THAT(ParseConfigYaml("token-secret: \"a\\0b\"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("value of token-secret must be valid UTF-8 without control")));
  EXPECT_THAT(ParseConfigYaml("a: \"x\\ty\\nz\"\n"),
              IsOkAndHolds(ElementsAre(Pair("a", ElementsAre("x\ty\nz")))));
}

// Found by fuzz/config_yaml_fuzzer: "\uffff" and "\ufddf" escapes gave values that yaml-cpp's
// emitter wrote back unquoted although they held ": " or a trailing CR.
TEST(ParseConfigYamlTest, RejectsNoncharacters) {
  EXPECT_THAT(ParseConfigYaml("address: \"x\\uffff: \"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("value of address must be valid UTF-8 without control "
                                 "characters or noncharacters")));
  EXPECT_THAT(ParseConfigYaml("address: \"\xef\xbf\xbe\"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseConfigYaml("c-f: \"\\ufddfffVf&a   js\r"),  // the second finding
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseConfigYaml("address: \"\\U0001FFFF\"\n"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // The last character below them stays text.
  EXPECT_THAT(ParseConfigYaml("address: \"\\ufffd\"\n"),
              IsOkAndHolds(ElementsAre(Pair("address", ElementsAre("\xef\xbf\xbd")))));
}

// Found by fuzz/config_yaml_fuzzer: yaml-cpp kept a CR that ends the input in the value.
TEST(ParseConfigYamlTest, AnyLineBreakEndsAValue) {
  EXPECT_THAT(ParseConfigYaml("address: localhost:3001\r"),
              IsOkAndHolds(ElementsAre(Pair("address", ElementsAre("localhost:3001")))));
  EXPECT_THAT(ParseConfigYaml("a: b\rc: d\r\ne: |\r\n  x\r  y\r"),
              IsOkAndHolds(ElementsAre(Pair("a", ElementsAre("b")), Pair("c", ElementsAre("d")),
                                       Pair("e", ElementsAre("x\ny\n")))));
}

TEST(LoadConfigFileTest, MissingFileIsNotFound) {
  const TempTree tree;
  const ConfigFile file = LoadConfigFile(tree.LocalFile());
  EXPECT_EQ(file.status, FileStatus::kNotFound);
  EXPECT_EQ(file.path, tree.LocalFile());
  EXPECT_THAT(file.values, IsEmpty());
}

TEST(LoadConfigFileTest, EmptyFileIsParsedAndEmpty) {
  const TempTree tree;
  TempTree::Write(tree.LocalFile(), "");
  const ConfigFile file = LoadConfigFile(tree.LocalFile());
  EXPECT_EQ(file.status, FileStatus::kParsed);
  EXPECT_THAT(file.values, IsEmpty());
  EXPECT_THAT(file.error, IsEmpty());
}

TEST(LoadConfigFileTest, InvalidYamlIsInvalidWithMessage) {
  const TempTree tree;
  TempTree::Write(tree.LocalFile(), "namespace: [unclosed\n");
  const ConfigFile file = LoadConfigFile(tree.LocalFile());
  EXPECT_EQ(file.status, FileStatus::kInvalid);
  EXPECT_THAT(file.error, StartsWith("yaml-cpp: error at line"));
  EXPECT_THAT(file.values, IsEmpty());
}

TEST(LoadConfigFileTest, DirectoryIsInvalid) {
  const TempTree tree;
  std::filesystem::create_directories(tree.LocalFile());
  const ConfigFile file = LoadConfigFile(tree.LocalFile());
  EXPECT_EQ(file.status, FileStatus::kInvalid);
  EXPECT_EQ(file.error, "is a directory");
}

TEST(LoadConfigFileTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) {
    GTEST_SKIP() << "root reads every file";
  }
  const TempTree tree;
  TempTree::Write(tree.UserFile(), "namespace: x\n");
  std::filesystem::permissions(tree.UserFile(), std::filesystem::perms::none);
  EXPECT_EQ(LoadConfigFile(tree.UserFile()).status, FileStatus::kPermissionDenied);
}

TEST(ConfigFilesTest, LoadReportsEveryCandidateHighestPrecedenceFirst) {
  const TempTree tree;
  TempTree::Write(tree.SystemFile(), "namespace: sys\n");
  const ConfigFiles files = ConfigFiles::Load(tree.Locations());
  ASSERT_EQ(files.files().size(), 3U);
  EXPECT_EQ(files.files()[0].path, tree.LocalFile());
  EXPECT_EQ(files.files()[0].status, FileStatus::kNotFound);
  EXPECT_EQ(files.files()[1].path, tree.UserFile());
  EXPECT_EQ(files.files()[1].status, FileStatus::kNotFound);
  EXPECT_EQ(files.files()[2].path, tree.SystemFile());
  EXPECT_EQ(files.files()[2].status, FileStatus::kParsed);
  EXPECT_THAT(files.status(), IsOk());
}

TEST(ConfigFilesTest, FindPrefersLocalThenUserThenSystem) {
  const TempTree tree;
  TempTree::Write(tree.LocalFile(), "a: local\n");
  TempTree::Write(tree.UserFile(), "a: user\nb: user\n");
  TempTree::Write(tree.SystemFile(), "a: sys\nb: sys\nc: [sys1, sys2]\n");
  const ConfigFiles files = ConfigFiles::Load(tree.Locations());
  EXPECT_THAT(files.Find("a"), Pointee(ElementsAre("local")));
  EXPECT_THAT(files.Find("b"), Pointee(ElementsAre("user")));
  EXPECT_THAT(files.Find("c"), Pointee(ElementsAre("sys1", "sys2")));
  EXPECT_EQ(files.Find("d"), nullptr);
}

TEST(ConfigFilesTest, StatusNamesTheInvalidFile) {
  const TempTree tree;
  TempTree::Write(tree.UserFile(), "a: b: c\n");
  const ConfigFiles files = ConfigFiles::Load(tree.Locations());
  EXPECT_EQ(files.files()[1].status, FileStatus::kInvalid);
  EXPECT_THAT(files.status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(StartsWith("invalid config file " + tree.UserFile().string() + ": "),
                             HasSubstr("yaml-cpp: error at line 1"))));
}

}  // namespace
}  // namespace discovery::config
