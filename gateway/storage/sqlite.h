#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <sqlite3.h>

#include "core/heartbeat.h"
#include "model/value.h"

namespace hgj::storage {

/// The gateway's one way to SQLite: every component that reads or writes the database file
/// (the readings store, the alerts, the notifier, the outbox, the HTTP API's alert reads) goes
/// through these classes, so busy handling, durability, checkpoints and file permissions are
/// decided once, here.

/// An error from SQLite with its result code (SQLITE_FULL, SQLITE_CORRUPT, ...).
class SqliteError : public std::runtime_error {
public:
  SqliteError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }
  /// The disk (or the file system's quota) is full.
  bool full() const { return code_ == SQLITE_FULL; }
  /// The file is not a database, or is damaged.
  bool corrupt() const { return code_ == SQLITE_CORRUPT || code_ == SQLITE_NOTADB; }

private:
  int code_;
};

/// How long a commit must survive.
enum class Durability {
  /// A crash of the process (kill -9) loses nothing committed; a power cut may lose the last
  /// commits (WAL with synchronous=NORMAL). Readings and point state.
  Process,
  /// Also a power cut: the WAL is synced before commit() returns. Alerts, notifications,
  /// actuation records, latches, the outbox.
  Power,
};

/// A prepared statement, reset after each use. Owned by its connection's thread.
class Statement {
public:
  Statement() = default;
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(Statement&& o) noexcept : stmt_(o.stmt_), db_(o.db_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, double v);
  /// Copies the text (SQLITE_TRANSIENT).
  Statement& bind(int i, std::string_view v);
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  /// The text must outlive the statement's next reset (bound without copying).
  Statement& bindStatic(int i, std::string_view v);
  Statement& bindNull(int i);
  /// NULL for an empty string / zero.
  Statement& bindOpt(int i, const std::string& v);
  Statement& bindOpt(int i, int64_t v);
  /// Booleans as 0/1, numbers as REAL, text without copying (the value must outlive the step).
  Statement& bindValue(int i, const model::Value& v);
  /// Binds the arguments to parameters 1, 2, 3 ... in order (each as bind() would; an
  /// Opt{...} as bindOpt()).
  template <typename... Args> Statement& bindAll(const Args&... args) {
    int i = 0;
    (bindArg(++i, args), ...);
    return *this;
  }
  /// Wraps a value for bindAll(): NULL when empty / zero.
  template <typename T> struct Opt {
    const T& v;
  };
  /// One step: true when a row is available. Throws SqliteError on failure (and resets).
  bool step();
  /// Steps to completion and resets (keeps nothing bound).
  void run();
  /// Resets and clears the bindings; a statement left half-read holds a read transaction open.
  void reset();

  int64_t columnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  double columnDouble(int i) const { return sqlite3_column_double(stmt_, i); }
  std::string columnText(int i) const;
  bool columnNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  model::Value columnValue(int i) const;
  bool valid() const { return stmt_ != nullptr; }

  /// Resets the statement when the scope ends, on every path (a query read only in part, an
  /// exception between step() and reset()).
  class Scope {
  public:
    explicit Scope(Statement& s) : s_(s) {}
    ~Scope() { s_.reset(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

  private:
    Statement& s_;
  };

private:
  template <typename T> void bindArg(int i, const T& v) { bind(i, v); }
  template <typename T> void bindArg(int i, const Opt<T>& o) { bindOpt(i, o.v); }

  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
};

struct OpenOptions {
  bool read_only = false;
  /// How long a write waits for another connection's write lock (and a reader for a
  /// checkpoint's). Waits poll every 0.1 ms for the first 5 ms, then every ms: SQLite's own
  /// handler sleeps 1, 2, 5 ... 100 ms between tries, so a writer that waits for another's
  /// one-fsync transaction (under a millisecond) would oversleep by several ms.
  int64_t busy_timeout_ms = 5000;
  /// Whether this connection's commits run WAL checkpoints (SQLite's default, every 1000
  /// pages). Only the storage writer's connection does: a commit that runs one copies and syncs
  /// the whole WAL (50-160 ms measured), and no other writer must pay for that.
  bool checkpoints = false;
  /// Page cache in KiB; 0 = SQLite's default (2 MB).
  int cache_kib = 0;
};

/// A connection in WAL mode. Owned by one thread (or used under its owner's mutex). Opening a
/// file that does not exist creates it with mode 0640 (the gateway's group may read it, others
/// not), before SQLite would create it world-readable; the -wal and -shm files take the same
/// mode.
class Database {
public:
  /// Throws SqliteError (corrupt() for a file that is not a database).
  Database(const std::string& path, const OpenOptions& options = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(std::string_view sql);
  Statement prepare(std::string_view sql) { return Statement(db_, sql); }
  /// The connection's own prepared statement for `sql`, prepared on first use and kept: for
  /// statements run again and again (write-behind closures). Reset it after use (run() does).
  Statement& cached(const std::string& sql);
  /// The first column of the first row, 0 when there is none.
  int64_t scalarInt(std::string_view sql);
  int64_t changes() const { return sqlite3_changes64(db_); }
  int64_t lastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  bool inTransaction() const { return sqlite3_get_autocommit(db_) == 0; }
  const std::string& path() const { return path_; }
  sqlite3* raw() const { return db_; }

  /// Copies the WAL into the database file without waiting for readers (PASSIVE), or
  /// `truncate`: waits (busy timeout) for readers and truncates the WAL to zero bytes. Returns
  /// false when it could not finish (busy, or an I/O error such as a full disk). Never throws.
  bool checkpoint(bool truncate = false);
  /// Syncs the WAL file: every commit so far survives a power cut. Throws SqliteError when the
  /// sync fails (the data may not be on disk).
  void syncWal();
  /// Bytes in use by the database's pages (page count minus free pages).
  int64_t usedBytes();

  /// The version of `component`'s tables recorded in schema_versions ("store", "alerts",
  /// "history"; the table is created if missing), 0 when none. Throws SqliteError when it is
  /// newer than `supported`: a database from a newer gateway is refused, never guessed at.
  int64_t schemaVersion(std::string_view component, int64_t supported);
  /// Records that `component`'s tables are now at `version` (in the caller's transaction).
  void setSchemaVersion(std::string_view component, int64_t version, int64_t now_ms);
  /// Beaten while this connection waits for a lock or a stalled commit, so a thread that waits
  /// within its bounds still shows it is alive. Not owned; null = none.
  void setHeartbeat(core::Heartbeat* heartbeat) { busy_.heartbeat = heartbeat; }
  core::Heartbeat* heartbeat() const { return busy_.heartbeat; }

  /// What the busy handler reads (through a pointer: the connection never moves).
  struct Busy {
    int64_t timeout_ms;
    core::Heartbeat* heartbeat = nullptr;
  };

private:
  std::string path_;
  Busy busy_;
  bool memory_ = false;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, Statement> cache_;
};

/// BEGIN IMMEDIATE ... COMMIT on a connection, rolled back when the scope ends without
/// commit(). The fault hook `commit_stall_ms` (HGJ_FAULTS, tests only) stalls every commit by
/// that many milliseconds, to show that nothing on the safety path waits for the disk.
class Transaction {
public:
  explicit Transaction(Database& db, Durability durability = Durability::Process);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();
  void rollback();

private:
  Database& db_;
  Durability durability_;
  bool open_ = true;
};

/// Creates `component`'s tables (`schema`: CREATE ... IF NOT EXISTS statements, safe to run
/// again) and records their `version`, in one transaction of `durability`. Throws SqliteError
/// for a database whose `component` tables are newer than `version`.
void createSchema(Database& db, std::string_view component, std::string_view schema,
                  int64_t version, Durability durability, int64_t now_ms);

/// Read-only connections for threads that only read (the HTTP server's pool): each call borrows
/// one, at most `max_idle` are kept open between calls. Thread-safe. The database may not exist
/// yet: a call then fails with an error and the next one tries again.
class ReadPool {
public:
  explicit ReadPool(std::string path, size_t max_idle = 4, int64_t busy_timeout_ms = 1000);
  ~ReadPool();
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  /// Runs `fn` with a borrowed connection. Returns false (with `error` set) when no connection
  /// could be opened or `fn` threw a SqliteError; such a connection is closed, not kept.
  bool with(const std::function<void(Database&)>& fn, std::string* error) const;

private:
  std::string path_;
  size_t max_idle_;
  int64_t busy_timeout_ms_;
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<Database>> idle_;  // guarded by mu_
};

/// Moves a damaged database file (and its -wal and -shm) aside to `<path>.corrupt-<now_ms>`;
/// returns the new name.
std::string moveAside(const std::string& path, int64_t now_ms);

/// Bytes SQLite holds in this process now (page caches, prepared statements, schema):
/// `sqlite3_memory_used()`. Bounded by the connections' cache_size; a soak tells it apart from
/// the rest of the resident set.
int64_t memoryUsed();

} // namespace hgj::storage
