// What the embedded store's tests share: a per-process directory of database files (removed when
// the test program ends), a database file per test, an independent SQLite integrity check and the
// fixture of the embedded-only tests.
#pragma once

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "store/embedded/embedded_store.h"
#include "testing/sqlite_files.h"
#include "testing/status_matchers.h"
#include "testing/store_contract.h"

namespace discovery::store {

using ::discovery::testing::IsOk;
using ::discovery::testing::StatusIs;
using ::discovery::testing::StoreContractTest;
using ::discovery::testing::StoreFactory;
using ::discovery::testing::WatchRecorder;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A directory for this process's database files, removed when the test program ends.
inline const std::filesystem::path& TestDir() {
  static const auto* dir =
      new std::filesystem::path(std::filesystem::path(::testing::TempDir()) /
                                absl::StrCat("discovery_store_test_", getpid()));
  return *dir;
}

class RemoveTestDir : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(TestDir(), ignored);
  }
};
inline const auto* const kRemoveTestDir = ::testing::AddGlobalTestEnvironment(new RemoveTestDir);

// A name unique to the running test, usable as a file name.
inline std::string CurrentTestName() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrReplaceAll(absl::StrCat(info->test_suite_name(), ".", info->name()),
                             {{"/", "."}});
}

// The database file of the running test: every open during one test shares it.
inline std::string CurrentTestDbPath() {
  return (TestDir() / (CurrentTestName() + ".db")).string();
}

inline EmbeddedStoreOptions FileOptions(std::string path) {
  // A short poll keeps cross-process watch tests fast; the default is for production.
  return {.path = std::move(path), .poll_interval = absl::Milliseconds(20)};
}

// Checks the SQLite file with its own connection: "ok" when the database is consistent.
inline std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    std::string error = db != nullptr ? sqlite3_errmsg(db) : "open failed";
    sqlite3_close(db);
    return error;
  }
  std::string result;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      result += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
  } else {
    result = sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return result;
}

// The embedded-only tests: each starts from no database file at CurrentTestDbPath().
class EmbeddedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = CurrentTestDbPath();
    // Start from no database even when the test is repeated (--gtest_repeat) in one process.
    ::discovery::testing::RemoveSqliteDatabase(path_);
  }

  absl::StatusOr<std::unique_ptr<Store>> Open() { return OpenEmbeddedStore(FileOptions(path_)); }

  std::string path_;
};

}  // namespace discovery::store
