#include "common/file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace discovery {
namespace {

using ::testing::HasSubstr;

class ReadFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("discovery_file_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path Write(const std::string& name, const std::string& content) {
    std::filesystem::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ReadFileTest, ReturnsTheWholeContent) {
  const std::string content = std::string(40000, 'x') + std::string("\0\n", 2);
  const absl::StatusOr<std::string> read = ReadFile(Write("data", content));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, content);
}

TEST_F(ReadFileTest, MissingFileIsNotFoundAndNamesWhatItIs) {
  const absl::StatusOr<std::string> read = ReadFile(dir_ / "missing", {.what = "token file"});
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(),
              HasSubstr("cannot read token file " + (dir_ / "missing").string() + ": "));
}

TEST_F(ReadFileTest, DirectoryIsRefused) {
  const absl::StatusOr<std::string> read = ReadFile(dir_);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(read.status().message(), HasSubstr("is a directory"));
}

TEST_F(ReadFileTest, LinksAreFollowedUnlessRefused) {
  const std::filesystem::path target = Write("target", "content");
  std::filesystem::create_symlink(target, dir_ / "link");
  EXPECT_EQ(ReadFile(dir_ / "link").value_or(""), "content");
  EXPECT_FALSE(ReadFile(dir_ / "link", {.follow_links = false}).ok());
}

TEST_F(ReadFileTest, RegularOnlyRefusesADevice) {
  EXPECT_TRUE(ReadFile("/dev/null").ok());
  const absl::StatusOr<std::string> read = ReadFile("/dev/null", {.regular_only = true});
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(read.status().message(), HasSubstr("not a regular file"));
}

}  // namespace
}  // namespace discovery
