// The embedded store's C++ layer over the SQLite C API: a connection that owns its handle and a
// cache of prepared statements, a borrowed statement with bind, step and column helpers, and a
// transaction that rolls back unless committed. SQLite result codes become absl::Status codes
// (busy and locked: Unavailable, corrupt: DataLoss, full: ResourceExhausted, ...). Internal to
// src/store/embedded.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace discovery::store::sqlite_internal {

// A SQLite connection with a cache of prepared statements. Not thread-safe: the owner
// serializes access (EmbeddedStore::mu_).
class Connection {
 public:
  // A borrowed cached statement, reset for reuse when it goes out of scope. The first binding
  // error is reported by the next Step().
  class Statement {
   public:
    Statement(Connection& connection, sqlite3_stmt* stmt);
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    void BindBlob(int index, std::string_view value);
    void BindInt(int index, int64_t value);
    void BindNull(int index);

    // Advances; true when a row is available.
    absl::StatusOr<bool> Step();
    // Runs a statement that returns no rows.
    absl::Status Run() { return Step().status(); }

    int64_t Int(int column) const;
    std::string_view Blob(int column) const;

   private:
    void Check(int rc);

    Connection* connection_;
    sqlite3_stmt* stmt_;
    int bind_rc_ = 0;  // SQLITE_OK (checked in sqlite_db.cc) until a bind fails
  };

  // Opens `path` (creating it owner-only; empty: a private in-memory database) with extended
  // result codes and `busy_timeout` for another process's locks.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path,
                                                          absl::Duration busy_timeout);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;
  ~Connection();

  // Runs one or more statements without results.
  absl::Status Exec(const char* sql);

  // Returns the cached statement for `sql`, which must be a string with static storage (the
  // cache is keyed by its address).
  absl::StatusOr<Statement> Prepare(const char* sql);

  // Reads a single integer (e.g. a meta value or a pragma).
  absl::StatusOr<int64_t> QueryInt(const char* sql);

  // Reads a single text value (pragmas such as journal_mode).
  absl::StatusOr<std::string> QueryText(const char* sql);

  absl::Status Error(int rc, std::string_view what) const;

  // Rows the last INSERT, UPDATE or DELETE changed.
  int64_t Changes() const;
  // True outside a transaction: also after SQLite rolled one back on its own (an I/O error, a
  // full disk, ...).
  bool Autocommit() const;

  // Runs `hook` after every commit of this connection in WAL mode, with the pages the WAL holds
  // then, instead of SQLite's own checkpoint on commit (PRAGMA wal_autocheckpoint), which this
  // replaces. The hook runs inside the commit and may call Checkpoint().
  void OnWalCommit(std::function<void(int wal_pages)> hook);
  // Copies what the WAL holds into the database file as far as readers allow, without waiting
  // for readers or writers of other connections (SQLite's PASSIVE checkpoint); Unavailable when
  // another connection is checkpointing right now. Returns the pages copied.
  absl::StatusOr<int> Checkpoint();

  const std::string& name() const { return name_; }

 private:
  Connection(sqlite3* db, std::string name) : db_(db), name_(std::move(name)) {}

  sqlite3* db_;
  std::string name_;
  std::map<const char*, sqlite3_stmt*> statements_;
  std::function<void(int wal_pages)> wal_hook_;
};

// An open SQLite transaction that rolls back unless committed, so every early error return
// leaves the database unchanged.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(Connection& connection, const char* begin_sql);
  Transaction(Transaction&& other) noexcept
      : connection_(other.connection_), open_(std::exchange(other.open_, false)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  absl::Status Commit();
  absl::Status Rollback();

 private:
  explicit Transaction(Connection& connection) : connection_(connection) {}

  Connection& connection_;
  bool open_ = true;
};

}  // namespace discovery::store::sqlite_internal
