// The files of an embedded-store (SQLite) database, for tests that start from none.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

namespace discovery::testing {

// Removes the database at `path` together with its write-ahead log and shared memory (a log left
// by a killed run would be replayed into a new database of the same name). Missing files are
// fine.
inline void RemoveSqliteDatabase(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::error_code ignored;
    std::filesystem::remove(path + suffix, ignored);
  }
}

}  // namespace discovery::testing
