// Environment variables changed for one test and restored afterwards.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace discovery::testing {

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

}  // namespace discovery::testing
