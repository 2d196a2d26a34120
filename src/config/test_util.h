// Test helpers for the config module: a private directory tree standing in for the working
// directory, the home directory and the system root. Environment variables restored after each
// test are testing::ScopedEnv (tests/testing/scoped_env.h).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

#include "config/config_files.h"

namespace discovery::config::testutil {

// A fresh directory tree under gtest's temporary directory, removed on destruction.
class TempTree {
 public:
  TempTree() {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / "config_test_XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    }
    root_ = pattern;
    std::filesystem::create_directories(root_ / "cwd");
    std::filesystem::create_directories(root_ / "home");
    std::filesystem::create_directories(root_ / "sys");
  }
  ~TempTree() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;
  TempTree(TempTree&&) = delete;
  TempTree& operator=(TempTree&&) = delete;

  ConfigLocations Locations() const {
    return ConfigLocations{
        .working_dir = root_ / "cwd", .home_dir = root_ / "home", .system_root = root_ / "sys"};
  }
  std::filesystem::path LocalFile() const { return root_ / "cwd" / "discovery.yaml"; }
  std::filesystem::path UserFile() const {
    return root_ / "home" / ".config" / "discovery" / "config.yaml";
  }
  std::filesystem::path SystemFile() const {
    return root_ / "sys" / "etc" / "discovery" / "config.yaml";
  }

  // Creates `path` (and its directories) with `content`.
  static void Write(const std::filesystem::path& path, const std::string& content) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << content;
  }

 private:
  std::filesystem::path root_;
};

}  // namespace discovery::config::testutil
