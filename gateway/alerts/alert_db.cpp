#include "gateway/alerts/alert_db.h"

#include <chrono>
#include <thread>

#include <sqlite3.h>

#include <spdlog/spdlog.h>

namespace hgj::alerts {

namespace {

[[noreturn]] void fail(sqlite3* db, std::string_view what) {
  throw DbError(std::string(what) + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

// The `alerts` table is read directly by the HTTP API: its columns are fixed (ARCHITECTURE.md).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS schema_versions(component TEXT PRIMARY KEY, version INTEGER NOT NULL,
  updated_ms INTEGER);
CREATE TABLE IF NOT EXISTS alerts(
  id INTEGER PRIMARY KEY,
  rule TEXT NOT NULL,
  device TEXT NOT NULL,
  grid TEXT,
  severity TEXT NOT NULL,
  state TEXT NOT NULL,
  message TEXT,
  value TEXT,
  source_ts INTEGER,
  raised_at INTEGER,
  acked_at INTEGER,
  acked_by TEXT,
  ack_note TEXT,
  cleared_at INTEGER,
  escalation_level INTEGER DEFAULT 0,
  actions TEXT);
CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts(state);
CREATE INDEX IF NOT EXISTS alerts_by_rule_device ON alerts(rule, device);
CREATE TABLE IF NOT EXISTS alert_events(
  id INTEGER PRIMARY KEY,
  alert_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  detail TEXT);
CREATE INDEX IF NOT EXISTS alert_events_by_alert ON alert_events(alert_id);
CREATE TABLE IF NOT EXISTS alert_notifications(
  id INTEGER PRIMARY KEY,
  alert_id INTEGER,
  channel TEXT NOT NULL,
  kind TEXT NOT NULL,
  level INTEGER NOT NULL DEFAULT 0,
  rule TEXT,
  grid TEXT,
  severity TEXT,
  created_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_attempt_at INTEGER,
  last_error TEXT,
  sent_at INTEGER,
  batch_id INTEGER,
  summary_id INTEGER,
  body TEXT NOT NULL,
  mentions TEXT,
  data TEXT);
CREATE INDEX IF NOT EXISTS alert_notifications_queue ON alert_notifications(channel, state, id);
CREATE INDEX IF NOT EXISTS alert_notifications_by_alert ON alert_notifications(alert_id);
)sql";

} // namespace

Stmt::Stmt(sqlite3* db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
      SQLITE_OK) {
    fail(db, "prepare \"" + std::string(sql.substr(0, 60)) + "\"");
  }
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::bindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Stmt& Stmt::bindOpt(int i, const std::string& v) {
  return v.empty() ? bindNull(i) : bind(i, std::string_view(v));
}

Stmt& Stmt::bindOpt(int i, int64_t v) { return v == 0 ? bindNull(i) : bind(i, v); }

bool Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  std::string msg = sqlite3_errmsg(db_);
  sqlite3_reset(stmt_);
  throw DbError("step: " + msg);
}

void Stmt::run() {
  while (step()) {
  }
  reset();
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Stmt::int64(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Stmt::text(int col) const {
  const unsigned char* t = sqlite3_column_text(stmt_, col);
  return t == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(t),
                                    static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

bool Stmt::isNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

AlertDb::AlertDb(const std::string& path, int64_t now_ms, int busy_timeout_ms) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw DbError("open " + path + ": " + msg);
  }
  busy_timeout_ms_ = busy_timeout_ms;
  sqlite3_busy_handler(db_, &AlertDb::busyHandler, this);
  try {
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    // Checkpoints are the readings writer's job: a commit that crosses the WAL's 1000-page mark
    // runs one on its own thread, copying and syncing the whole WAL (50-160 ms measured), and
    // an alert or outbox commit must not be the one that pays for it.
    exec("PRAGMA wal_autocheckpoint=0");
    createSchema(now_ms);
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

AlertDb::~AlertDb() { sqlite3_close(db_); }

int AlertDb::busyHandler(void* self, int count) {
  // SQLite's own handler sleeps 1, 2, 5, 10, ... 100 ms between tries, so an alert that waits
  // for another writer's one-fsync transaction (under a millisecond) would oversleep by several
  // ms. Poll every 0.1 ms for the first 5 ms, then every ms, up to the timeout.
  constexpr int kFinePolls = 50;
  const int waited_ms = count < kFinePolls ? count / 10 : kFinePolls / 10 + (count - kFinePolls);
  if (waited_ms >= static_cast<AlertDb*>(self)->busy_timeout_ms_) {
    return 0;
  }
  std::this_thread::sleep_for(count < kFinePolls ? std::chrono::microseconds(100)
                                                 : std::chrono::microseconds(1000));
  return 1;
}

void AlertDb::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    throw DbError("exec \"" + s.substr(0, 60) + "\": " + msg);
  }
}

int64_t AlertDb::lastInsertId() const { return sqlite3_last_insert_rowid(db_); }

int AlertDb::changes() const { return sqlite3_changes(db_); }

void AlertDb::createSchema(int64_t now_ms) {
  Tx tx(*this);
  exec(kSchema);
  Stmt v(db_, "SELECT version FROM schema_versions WHERE component='alerts'");
  int64_t found = v.step() ? v.int64(0) : 0;
  v.reset();
  if (found > kAlertsSchemaVersion) {
    throw DbError("database has alerts schema version " + std::to_string(found) +
                  ", newer than this gateway's " + std::to_string(kAlertsSchemaVersion));
  }
  if (found != kAlertsSchemaVersion) {
    Stmt set(db_, "INSERT OR REPLACE INTO schema_versions(component, version, updated_ms) "
                  "VALUES('alerts', ?, ?)");
    set.bind(1, kAlertsSchemaVersion).bindOpt(2, now_ms).run();
  }
  tx.commit();
}

AlertDb::Tx::Tx(AlertDb& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

AlertDb::Tx::~Tx() {
  if (!done_) {
    char* err = nullptr;
    sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, &err);
    sqlite3_free(err);
  }
}

void AlertDb::Tx::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

} // namespace hgj::alerts
