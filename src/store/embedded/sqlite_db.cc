#include "store/embedded/sqlite_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

#include "common/status_macros.h"

namespace discovery::store::sqlite_internal {
namespace {

absl::StatusCode CodeForSqlite(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kInternal;
  }
}

std::string_view ColumnBlob(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  const int size = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || size <= 0) {
    return {};
  }
  return {static_cast<const char*>(data), static_cast<size_t>(size)};
}

// The -wal and -shm files of a database made by an older release may be readable by others.
void ChmodCompanionsOwnerOnly(const std::string& path) {
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string companion = path + suffix;
    struct stat info {};
    if (stat(companion.c_str(), &info) == 0 && (info.st_mode & 077) != 0) {
      chmod(companion.c_str(), 0600);
    }
  }
}

// The database and its -wal/-shm files (SQLite gives those the database file's mode) are
// readable by their owner only, whatever the umask: they hold every stored record.
//
// An existing file is never opened here: closing any descriptor of a file drops every POSIX
// lock the process holds on it, SQLite's included, so a second connection of this process
// (the store's checkpoint connection, a test's) would otherwise release the first one's locks,
// and another process closing the database would then take it for the last user and delete
// the write-ahead log under it.
absl::Status CreateOwnerOnly(const std::string& path) {
  struct stat existing {};
  if (lstat(path.c_str(), &existing) == 0) {
    if (S_ISLNK(existing.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("sqlite ", path, ": is a symbolic link, not a database file"));
    }
    if ((existing.st_mode & 077) != 0 && chmod(path.c_str(), 0600) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sqlite ", path,
          ": cannot make it owner-only (mode 0600): ", std::generic_category().message(errno)));
    }
    ChmodCompanionsOwnerOnly(path);
    return absl::OkStatus();
  }
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sqlite ", path, ": open: ", std::generic_category().message(errno)));
  }
  struct stat info {};
  const bool ok = fstat(fd, &info) == 0 && ((info.st_mode & 077) == 0 || fchmod(fd, 0600) == 0);
  const int saved_errno = errno;
  close(fd);
  if (!ok) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sqlite ", path,
        ": cannot make it owner-only (mode 0600): ", std::generic_category().message(saved_errno)));
  }
  ChmodCompanionsOwnerOnly(path);
  return absl::OkStatus();
}

}  // namespace

static_assert(SQLITE_OK == 0, "Statement::bind_rc_ starts at 0 for SQLITE_OK");

Connection::Statement::Statement(Connection& connection, sqlite3_stmt* stmt)
    : connection_(&connection), stmt_(stmt) {}

Connection::Statement::Statement(Statement&& other) noexcept
    : connection_(other.connection_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_rc_(other.bind_rc_) {}

Connection::Statement::~Statement() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

void Connection::Statement::BindBlob(int index, std::string_view value) {
  // A null pointer would bind SQL NULL; an empty key or value is a zero-length blob.
  const char* data = value.data() != nullptr ? value.data() : "";
  Check(sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_TRANSIENT));
}

void Connection::Statement::BindInt(int index, int64_t value) {
  Check(sqlite3_bind_int64(stmt_, index, value));
}

void Connection::Statement::BindNull(int index) { Check(sqlite3_bind_null(stmt_, index)); }

absl::StatusOr<bool> Connection::Statement::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return connection_->Error(bind_rc_, "bind");
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return connection_->Error(rc, sqlite3_sql(stmt_));
}

int64_t Connection::Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string_view Connection::Statement::Blob(int column) const { return ColumnBlob(stmt_, column); }

void Connection::Statement::Check(int rc) {
  if (bind_rc_ == SQLITE_OK) {
    bind_rc_ = rc;
  }
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path,
                                                             absl::Duration busy_timeout) {
  const std::string name = path.empty() ? ":memory:" : path;
  if (!path.empty()) {
    DISCOVERY_RETURN_IF_ERROR(CreateOwnerOnly(path));
  }
  sqlite3* db = nullptr;
  // NOMUTEX: the store serializes every use of the connection with its own absl::Mutex.
  const int rc = sqlite3_open_v2(
      name.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  auto connection = std::unique_ptr<Connection>(new Connection(db, name));
  if (rc != SQLITE_OK) {
    return connection->Error(rc, "open");
  }
  sqlite3_extended_result_codes(db, 1);
  const int64_t busy_ms = absl::ToInt64Milliseconds(busy_timeout);
  sqlite3_busy_timeout(
      db, static_cast<int>(std::clamp<int64_t>(busy_ms, 0, std::numeric_limits<int>::max())));
  return connection;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) {
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db_);
}

void Connection::OnWalCommit(std::function<void(int wal_pages)> hook) {
  wal_hook_ = std::move(hook);
  sqlite3_wal_hook(
      db_,
      [](void* self, sqlite3* /*db*/, const char* /*schema*/, int pages) {
        static_cast<Connection*>(self)->wal_hook_(pages);
        return SQLITE_OK;
      },
      this);
}

absl::StatusOr<int> Connection::Checkpoint() {
  int wal_pages = 0;
  int copied = 0;
  const int rc =
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_pages, &copied);
  if (rc != SQLITE_OK) {
    return Error(rc, "checkpoint");
  }
  return copied;
}

absl::Status Connection::Exec(const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    return {CodeForSqlite(rc),
            absl::StrCat("sqlite ", name_, ": ", sql, ": ", detail, " (code ", rc, ")")};
  }
  return absl::OkStatus();
}

absl::StatusOr<Connection::Statement> Connection::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) {
      return Error(rc, sql);
    }
    it = statements_.emplace(sql, stmt).first;
  }
  return Statement(*this, it->second);
}

absl::StatusOr<int64_t> Connection::QueryInt(const char* sql) {
  DISCOVERY_ASSIGN_OR_RETURN(Statement stmt, Prepare(sql));
  DISCOVERY_ASSIGN_OR_RETURN(const bool row, stmt.Step());
  if (!row) {
    return absl::DataLossError(absl::StrCat("sqlite ", name_, ": no result for ", sql));
  }
  return stmt.Int(0);
}

absl::StatusOr<std::string> Connection::QueryText(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return Error(rc, sql);
  }
  rc = sqlite3_step(stmt);
  std::string text;
  if (rc == SQLITE_ROW) {
    text = std::string(ColumnBlob(stmt, 0));
    rc = SQLITE_OK;
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_OK && rc != SQLITE_DONE) {
    return Error(rc, sql);
  }
  return text;
}

absl::Status Connection::Error(int rc, std::string_view what) const {
  const char* message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return {CodeForSqlite(rc), absl::StrCat("sqlite ", name_, ": ", std::string(what), ": ", message,
                                          " (code ", rc, ")")};
}

int64_t Connection::Changes() const { return sqlite3_changes64(db_); }

bool Connection::Autocommit() const { return sqlite3_get_autocommit(db_) != 0; }

absl::StatusOr<Transaction> Transaction::Begin(Connection& connection, const char* begin_sql) {
  DISCOVERY_RETURN_IF_ERROR(connection.Exec(begin_sql));
  return Transaction(connection);
}

Transaction::~Transaction() {
  if (open_) {
    (void)connection_.Exec("ROLLBACK");
  }
}

absl::Status Transaction::Commit() {
  open_ = false;
  absl::Status status = connection_.Exec("COMMIT");
  if (!status.ok()) {
    // A failed COMMIT may leave the transaction open; make sure nothing half-done remains.
    (void)connection_.Exec("ROLLBACK");
  }
  return status;
}

absl::Status Transaction::Rollback() {
  open_ = false;
  return connection_.Exec("ROLLBACK");
}

}  // namespace discovery::store::sqlite_internal
