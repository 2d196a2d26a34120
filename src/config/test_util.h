// Test helpers for the config module: a private directory tree standing in for the working
// directory, the home directory and the system root, and environment variables that are
// restored after each test.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// Sets or unsets environment variables for one test and restores them afterwards. Tests are
// single-threaded, so changing the environment is safe.
// NOLINTBEGIN(concurrency-mt-unsafe)
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ~ScopedEnv() {
    // Newest first, so a variable changed twice ends up with its original value.
    while (!saved_.empty()) {
      const auto& [name, value] = saved_.back();
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
      saved_.pop_back();
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ScopedEnv(ScopedEnv&&) = delete;
  ScopedEnv& operator=(ScopedEnv&&) = delete;

  void Set(const std::string& name, const std::string& value) {
    Save(name);
    setenv(name.c_str(), value.c_str(), 1);
  }
  void Unset(const std::string& name) {
    Save(name);
    unsetenv(name.c_str());
  }

 private:
  void Save(const std::string& name) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old == nullptr ? std::nullopt : std::optional<std::string>(old));
  }

  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};
// NOLINTEND(concurrency-mt-unsafe)

}  // namespace discovery::config::testutil
