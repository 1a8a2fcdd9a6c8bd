#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <sqlite3.h>

#include "model/value.h"

namespace hgj::storage {

/// An error from SQLite with its result code (SQLITE_FULL, SQLITE_CORRUPT, ...).
class SqliteError : public std::runtime_error {
public:
  SqliteError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

private:
  int code_;
};

/// A prepared statement, reset after each use. Owned by one thread.
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
  Statement& bind(int i, double v);
  /// The text must outlive the statement's next step (bound without copying).
  Statement& bindStatic(int i, std::string_view v);
  Statement& bind(int i, std::string_view v);
  Statement& bindNull(int i);
  Statement& bindValue(int i, const model::Value& v);
  /// One step: true when a row is available. Throws SqliteError on failure.
  bool step();
  /// Steps to completion and resets.
  void run();
  void reset();

  int64_t columnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  double columnDouble(int i) const { return sqlite3_column_double(stmt_, i); }
  std::string columnText(int i) const;
  bool columnNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  model::Value columnValue(int i) const;
  sqlite3_stmt* raw() const { return stmt_; }

private:
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
};

/// A connection. Owned by one thread.
class Database {
public:
  /// Opens (creating) `path` in WAL mode with the given busy timeout.
  Database(const std::string& path, int64_t busy_timeout_ms, bool read_only = false);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(std::string_view sql);
  Statement prepare(std::string_view sql) { return Statement(db_, sql); }
  int64_t scalarInt(std::string_view sql);
  sqlite3* raw() const { return db_; }
  int64_t changes() const { return sqlite3_changes64(db_); }

private:
  sqlite3* db_ = nullptr;
};

} // namespace hgj::storage
