// The embedded store's database: its schema and the SQL of every statement the store runs, with
// the event types of the `events` table. Internal to src/store/embedded (embedded_store.cc).
#pragma once

#include <cstdint>

namespace discovery::store::embedded_sql {

// Revisions follow etcd: an empty store is at revision 1 and the first change gets revision 2.
// `compacted` is the oldest revision whose events are still kept (0: nothing compacted).
inline constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS kv (
  key BLOB PRIMARY KEY NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  expires INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 1), ('compacted', 0);
CREATE TABLE IF NOT EXISTS events (
  revision INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  type INTEGER NOT NULL,
  key BLOB NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
)sql";

// Databases of releases before expiring keys have no `expires` column: it is added in place
// (NULL: never expires), which those releases keep reading and writing (their statements name
// their columns, and a put of theirs clears an expiry as a put without one should).
inline constexpr const char* kHasExpiresColumnSql =
    "SELECT COUNT(*) FROM pragma_table_info('kv') WHERE name = 'expires'";
inline constexpr const char* kAddExpiresColumnSql = "ALTER TABLE kv ADD COLUMN expires INTEGER";
inline constexpr const char* kExpiresIndexSql =
    "CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires) WHERE expires IS NOT NULL";
// Expiry times are Unix microseconds.
inline constexpr const char* kSelectExpiredSql =
    "SELECT key, mod_revision FROM kv WHERE expires IS NOT NULL AND expires <= ?1 "
    "ORDER BY expires LIMIT ?2";
// A renewal (Store::Renew) rewrites a key's record and expiry in place: no revision, no event.
// -1 stands for "never expires" (NULL).
inline constexpr const char* kSelectRenewableSql =
    "SELECT mod_revision, COALESCE(expires, -1) FROM kv WHERE key = ?1";
inline constexpr const char* kRenewSql = "UPDATE kv SET value = ?2, expires = ?3 WHERE key = ?1";
// The earliest expiry (-1: none), when the reaper next has work.
inline constexpr const char* kSelectNextExpirySql =
    "SELECT COALESCE(MIN(expires), -1) FROM kv WHERE expires IS NOT NULL";
inline constexpr const char* kSelectRevisionSql = "SELECT value FROM meta WHERE name = 'revision'";
inline constexpr const char* kSelectCompactedSql =
    "SELECT value FROM meta WHERE name = 'compacted'";
inline constexpr const char* kUpdateRevisionSql =
    "UPDATE meta SET value = ?1 WHERE name = 'revision'";
inline constexpr const char* kUpdateCompactedSql =
    "UPDATE meta SET value = ?1 WHERE name = 'compacted'";
inline constexpr const char* kSelectKeySql =
    "SELECT value, create_revision, mod_revision, version FROM kv WHERE key = ?1";
inline constexpr const char* kSelectCreateSql =
    "SELECT create_revision, version FROM kv WHERE key = ?1";
inline constexpr const char* kUpsertSql =
    "INSERT OR REPLACE INTO kv (key, value, create_revision, mod_revision, version, expires) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
inline constexpr const char* kDeleteKeySql = "DELETE FROM kv WHERE key = ?1";
// Prefix ranges come in two shapes so SQLite can use both bounds of the primary key; a prefix
// of only 0xff bytes (or "") has no upper bound.
inline constexpr const char* kRangeBoundedSql =
    "SELECT key, value, create_revision, mod_revision, version FROM kv "
    "WHERE key >= ?1 AND key < ?2 ORDER BY key";
inline constexpr const char* kRangeUnboundedSql =
    "SELECT key, value, create_revision, mod_revision, version FROM kv "
    "WHERE key >= ?1 ORDER BY key";
inline constexpr const char* kDeleteRangeBoundedSql = "DELETE FROM kv WHERE key >= ?1 AND key < ?2";
inline constexpr const char* kDeleteRangeUnboundedSql = "DELETE FROM kv WHERE key >= ?1";
inline constexpr const char* kInsertEventSql =
    "INSERT INTO events (revision, seq, type, key, value, create_revision, version) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
inline constexpr const char* kEventsBoundedSql =
    "SELECT revision, type, key, value, create_revision, version FROM events "
    "WHERE revision >= ?1 AND revision < ?2 AND key >= ?3 AND key < ?4 ORDER BY revision, seq";
inline constexpr const char* kEventsUnboundedSql =
    "SELECT revision, type, key, value, create_revision, version FROM events "
    "WHERE revision >= ?1 AND revision < ?2 AND key >= ?3 ORDER BY revision, seq";
inline constexpr const char* kDeleteEventsSql = "DELETE FROM events WHERE revision < ?1";
// Each txn of a group commit runs in this savepoint, so a failing one is undone alone.
inline constexpr const char* kSavepointSql = "SAVEPOINT txn";
inline constexpr const char* kReleaseSql = "RELEASE txn";
inline constexpr const char* kRollbackToSql = "ROLLBACK TO txn";

inline constexpr int kEventPut = 0;
inline constexpr int kEventDelete = 1;
// A delete by the reaper: the key's expiry passed. Releases before it read any type but
// kEventPut as a delete.
inline constexpr int kEventExpired = 2;

}  // namespace discovery::store::embedded_sql
