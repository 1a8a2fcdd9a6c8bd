#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace hgj::alerts {

/// The alerts component's schema version in `schema_versions`.
constexpr int kAlertsSchemaVersion = 1;

/// Thrown by AlertDb on SQLite errors; callers on the data path catch it at their boundary.
class DbError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A prepared statement; binds are 1-based. Not thread-safe (belongs to its connection's thread).
class Stmt {
public:
  Stmt(sqlite3* db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bindNull(int i);
  /// Binds NULL for an empty string / zero.
  Stmt& bindOpt(int i, const std::string& v);
  Stmt& bindOpt(int i, int64_t v);

  /// Steps once: true when a row is available.
  bool step();
  /// Steps to completion (for writes) and resets.
  void run();
  void reset();

  int64_t int64(int col) const;
  std::string text(int col) const;
  bool isNull(int col) const;

private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// One SQLite connection to the gateway's database for the alerts component: WAL,
/// `synchronous=FULL` (an alert or a delivery state that was committed survives a power cut),
/// a busy timeout so it waits for the readings writer instead of failing (polling every 0.1 ms
/// for the first 5 ms: SQLite's default handler sleeps up to 100 ms between tries). Used by one
/// thread.
class AlertDb {
public:
  /// Opens (creating the file and the alerts tables when missing; `now_ms` stamps
  /// schema_versions.updated_ms). Throws DbError.
  AlertDb(const std::string& path, int64_t now_ms, int busy_timeout_ms = 5000);
  ~AlertDb();
  AlertDb(const AlertDb&) = delete;
  AlertDb& operator=(const AlertDb&) = delete;

  sqlite3* handle() const { return db_; }
  void exec(std::string_view sql);
  int64_t lastInsertId() const;
  int changes() const;

  /// BEGIN IMMEDIATE ... COMMIT, rolled back when the scope exits without commit().
  class Tx {
  public:
    explicit Tx(AlertDb& db);
    ~Tx();
    void commit();

  private:
    AlertDb& db_;
    bool done_ = false;
  };

private:
  void createSchema(int64_t now_ms);
  static int busyHandler(void* self, int count);
  sqlite3* db_ = nullptr;
  int busy_timeout_ms_ = 5000;
};

} // namespace hgj::alerts
