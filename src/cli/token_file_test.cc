#include "cli/token_file.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/scoped_env.h"

namespace discovery::cli {
namespace {

using ::testing::HasSubstr;

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/token-file-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST(ParseTokenFileTest, ReadsEveryKeyAndIgnoresUnknownOnes) {
  const absl::StatusOr<TokenFile> token = ParseTokenFile(
      "machine_token: m\nid_token: i\nrefresh_token: r\naccess_token: a\nexpiry: later\n");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->machine_token, "m");
  EXPECT_EQ(token->id_token, "i");
  EXPECT_EQ(token->refresh_token, "r");
  EXPECT_EQ(token->access_token, "a");
}

TEST(ParseTokenFileTest, MachineTokenWinsOverTheIdToken) {
  EXPECT_EQ(ParseTokenFile("machine_token: m\nid_token: i\n")->BearerToken(), "m");
  EXPECT_EQ(ParseTokenFile("machine_token: \"\"\nid_token: i\n")->BearerToken(), "i");
  EXPECT_EQ(ParseTokenFile("")->BearerToken(), "");
}

TEST(ParseTokenFileTest, AcceptsJustTheJwtAsTokenCreatePrintsIt) {
  absl::StatusOr<TokenFile> token = ParseTokenFile("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->machine_token, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
  // A lone word that is no JWT is still refused.
  EXPECT_FALSE(ParseTokenFile("machine_token\n").ok());
  EXPECT_FALSE(ParseTokenFile("a.b\n").ok());
}

TEST(ParseTokenFileTest, RejectsWhatIsNotAMappingOfStrings) {
  EXPECT_FALSE(ParseTokenFile("- a\n- b\n").ok());
  EXPECT_FALSE(ParseTokenFile("machine_token: [a, b]\n").ok());
  EXPECT_FALSE(ParseTokenFile("machine_token: [unclosed\n").ok());
}

TEST_F(TokenFileTest, MissingFileSaysWhereToPutAMachineToken) {
  const absl::StatusOr<TokenFile> token = ReadTokenFile(dir_ / "missing");
  ASSERT_TRUE(absl::IsFailedPrecondition(token.status())) << token.status();
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("login required"));
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("machine_token: <jwt>"));
  EXPECT_THAT(std::string(token.status().message()), HasSubstr((dir_ / "missing").string()));
}

TEST_F(TokenFileTest, MalformedFileIsNamed) {
  std::ofstream(dir_ / ".token") << "- not a mapping\n";
  const absl::StatusOr<TokenFile> token = ReadTokenFile(dir_ / ".token");
  ASSERT_TRUE(absl::IsInvalidArgument(token.status())) << token.status();
  EXPECT_THAT(std::string(token.status().message()), HasSubstr((dir_ / ".token").string()));
}

TEST_F(TokenFileTest, WriteCreatesAPrivateFileThatReadsBack) {
  const std::filesystem::path path = dir_ / "config" / "discovery" / ".token";
  ASSERT_TRUE(WriteTokenFile(path, {.id_token = "i", .refresh_token = "r"}).ok());
  struct stat info {};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
  const absl::StatusOr<TokenFile> token = ReadTokenFile(path);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->id_token, "i");
  EXPECT_EQ(token->refresh_token, "r");
  EXPECT_EQ(token->access_token, "");
}

TEST(ExpandHomeTest, ReplacesOnlyALeadingTilde) {
  testing::ScopedEnv env;  // the other tests of this binary keep their HOME
  env.Set("HOME", "/home/operator");
  EXPECT_EQ(ExpandHome("~/.config/discovery/.token"), "/home/operator/.config/discovery/.token");
  EXPECT_EQ(ExpandHome("/etc/~/x"), "/etc/~/x");
  EXPECT_EQ(DefaultTokenPath(), "/home/operator/.config/discovery/.token");
}

}  // namespace
}  // namespace discovery::cli
