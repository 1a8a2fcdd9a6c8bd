#include "gateway/alerts/alert_schema.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace hgj::alerts {

namespace {

// The `alerts` table is read directly by the HTTP API: its columns are fixed (docs/alerts.md).
constexpr const char* kSchema = R"sql(
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
CREATE TABLE IF NOT EXISTS id_reservations(name TEXT PRIMARY KEY, next INTEGER NOT NULL);
)sql";

// Ids reserved at a time: a crash wastes at most this many (never reuses one).
constexpr int64_t kBlock = 1024;

} // namespace

void createAlertsSchema(storage::Database& db, int64_t now_ms) {
  storage::createSchema(db, "alerts", kSchema, kAlertsSchemaVersion, storage::Durability::Power,
                        now_ms);
}

void IdBlocks::writeReservation(storage::Database& db, const std::string& name, int64_t upto) {
  db.cached("INSERT INTO id_reservations(name, next) VALUES(?1, ?2) ON CONFLICT(name) DO "
            "UPDATE SET next=MAX(next, excluded.next)")
      .bind(1, name)
      .bind(2, upto)
      .run();
}

void IdBlocks::open(storage::Database& db) {
  int64_t max_id = db.scalarInt("SELECT COALESCE(MAX(id), 0) FROM " + table_);
  int64_t reserved = 0;
  {
    storage::Statement q = db.prepare("SELECT next FROM id_reservations WHERE name=?1");
    storage::Statement::Scope scope(q);
    q.bind(1, name_);
    if (q.step()) {
      reserved = q.columnInt(0);
    }
  }
  next_ = std::max(max_id + 1, reserved);
  reserved_ = next_ + kBlock;
  try {
    storage::Transaction tx(db, storage::Durability::Power);
    writeReservation(db, name_, reserved_);
    tx.commit();
  } catch (const storage::SqliteError& e) {
    spdlog::error("alerts: cannot reserve {} ids ({}); a crash may reuse ids of this boot", name_,
                  e.what());
  }
}

int64_t IdBlocks::next() { return next_++; }

void IdBlocks::close(storage::Database& db) {
  try {
    storage::Transaction tx(db, storage::Durability::Power);
    db.prepare("INSERT OR REPLACE INTO id_reservations(name, next) VALUES(?1, ?2)")
        .bind(1, name_)
        .bind(2, next_)
        .run();
    tx.commit();
  } catch (const storage::SqliteError& e) {
    spdlog::warn("alerts: cannot record the next {} id ({}); the next start skips a block", name_,
                 e.what());
  }
}

int64_t IdBlocks::wantReserve() {
  if (reserved_ - next_ > kBlock / 2) {
    return 0;
  }
  reserved_ += kBlock;
  return reserved_;
}

} // namespace hgj::alerts
