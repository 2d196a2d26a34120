#include "server/server_config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "testing/process.h"
#include "testing/scoped_env.h"
#include "testing/status_matchers.h"

namespace discovery::server {
namespace {

using ::discovery::testing::IsOk;
using ::discovery::testing::ScopedEnv;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// Sets the umask for one scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;
  ScopedUmask(ScopedUmask&&) = delete;
  ScopedUmask& operator=(ScopedUmask&&) = delete;

 private:
  mode_t old_;
};

mode_t Mode(const std::filesystem::path& path) {
  struct stat info {};
  EXPECT_EQ(stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

class ServerConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = discovery::testing::MakeTempDir("server-config");
    ASSERT_THAT(dir, IsOk());
    root_ = *dir;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  std::filesystem::path root_;
};

TEST_F(ServerConfigTest, DefaultDataDirIsTheUsersForEveryone) {
  ScopedEnv env;
  env.Set("HOME", "/home/alice");
  env.Unset("XDG_DATA_HOME");
  EXPECT_EQ(DataDir({}), "/home/alice/.local/share/discovery");
  env.Set("XDG_DATA_HOME", "/srv/data");
  EXPECT_EQ(DataDir({}), "/srv/data/discovery");
  // The XDG rules say a relative path is to be ignored.
  env.Set("XDG_DATA_HOME", "relative/data");
  EXPECT_EQ(DataDir({}), "/home/alice/.local/share/discovery");
  EXPECT_EQ(DataDir({.data_dir = "/var/lib/discovery"}), "/var/lib/discovery");
}

TEST_F(ServerConfigTest, DefaultDataDirWithoutHomeComesFromThePasswordDatabase) {
  ScopedEnv env;
  env.Unset("HOME");
  env.Unset("XDG_DATA_HOME");
  const std::string dir = DataDir({});
  EXPECT_THAT(dir, ::testing::EndsWith("/.local/share/discovery"));
  EXPECT_NE(dir, "/var/lib/discovery");
}

TEST_F(ServerConfigTest, DataDirectoryAndDatabaseAreOwnerOnlyWhateverTheUmask) {
  ScopedUmask open_umask(0);
  const std::filesystem::path dir = root_ / "a" / "data";
  absl::StatusOr<std::unique_ptr<store::Store>> store = OpenStore({.data_dir = dir.string()});
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ(Mode(root_ / "a"), 0700);
  EXPECT_EQ(Mode(dir), 0700);
  EXPECT_EQ(Mode(dir / "discovery.db"), 0600);
  for (const char* companion : {"discovery.db-wal", "discovery.db-shm"}) {
    if (std::filesystem::exists(dir / companion)) {
      EXPECT_EQ(Mode(dir / companion), 0600) << companion;
    }
  }
  ServerConfig config;
  config.store.data_dir = dir.string();
  ASSERT_THAT(ResolveTokenSecret(config, /*create=*/true), IsOk());
  EXPECT_EQ(Mode(dir / "token-secret"), 0600);
}

TEST_F(ServerConfigTest, CreatesASecretOf32RandomBytesInHexAndReadsItBack) {
  ServerConfig config;
  config.store.data_dir = (root_ / "data").string();
  ASSERT_OK_AND_ASSIGN(const std::string created, ResolveTokenSecret(config, /*create=*/true));
  EXPECT_THAT(created, MatchesRegex("[0-9a-f]{64}"));
  ASSERT_OK_AND_ASSIGN(const std::string read, ResolveTokenSecret(config, /*create=*/false));
  EXPECT_EQ(read, created);
  ServerConfig elsewhere;
  elsewhere.store.data_dir = (root_ / "other").string();
  ASSERT_OK_AND_ASSIGN(const std::string other, ResolveTokenSecret(elsewhere, /*create=*/true));
  EXPECT_NE(other, created);
}

TEST_F(ServerConfigTest, ADatabaseLeftReadableByOthersIsMadeOwnerOnly) {
  const std::filesystem::path dir = root_ / "data";
  ASSERT_THAT(OpenStore({.data_dir = dir.string()}), IsOk());
  ASSERT_EQ(chmod((dir / "discovery.db").c_str(), 0644), 0);
  ASSERT_THAT(OpenStore({.data_dir = dir.string()}), IsOk());
  EXPECT_EQ(Mode(dir / "discovery.db"), 0600);
}

TEST_F(ServerConfigTest, RefusesADataDirectoryOthersMayWrite) {
  const std::filesystem::path dir = root_ / "shared";
  ASSERT_TRUE(std::filesystem::create_directory(dir));
  ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
  absl::StatusOr<std::unique_ptr<store::Store>> store = OpenStore({.data_dir = dir.string()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("writable by other users (mode 0777)"));
  EXPECT_THAT(store.status().message(), HasSubstr("chmod o-w " + dir.string()));
  EXPECT_FALSE(std::filesystem::exists(dir / "discovery.db"));

  ServerConfig config;
  config.store.data_dir = dir.string();
  absl::StatusOr<std::string> secret = ResolveTokenSecret(config, /*create=*/true);
  ASSERT_FALSE(secret.ok());
  EXPECT_FALSE(std::filesystem::exists(dir / "token-secret"));

  ASSERT_EQ(chmod(dir.c_str(), 0750), 0);
  EXPECT_THAT(OpenStore({.data_dir = dir.string()}), IsOk());
}

TEST_F(ServerConfigTest, TheDaemonsStoreCountsItsFailures) {
  metrics::Metrics metrics;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<store::Store> store,
                       OpenObservedStore({.data_dir = (root_ / "data").string()}, metrics));
  ASSERT_FALSE(
      store->RangeInBatches("/", 0, [](const std::vector<store::KeyValue>& /*batch*/) {}).ok());
  EXPECT_THAT(metrics.Serialize(), HasSubstr("discovery_store_errors_total{op=\"range\"} 1\n"));
}

}  // namespace
}  // namespace discovery::server
