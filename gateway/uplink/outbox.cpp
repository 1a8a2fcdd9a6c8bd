#include "gateway/uplink/outbox.h"

#include <chrono>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace hgj::uplink {

namespace {

constexpr std::array<const char*, kKindCount> kKindNames = {"summary", "alert", "telemetry",
                                                             "status", "cmd_result"};
constexpr std::array<Kind, 3> kDropOrder = {Kind::Summary, Kind::Telemetry, Kind::Status};

// Resets a statement on every exit path so a failed step never leaves a read transaction open.
class StmtGuard {
public:
  explicit StmtGuard(sqlite3_stmt* s) : s_(s) {}
  ~StmtGuard() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  StmtGuard(const StmtGuard&) = delete;
  StmtGuard& operator=(const StmtGuard&) = delete;

private:
  sqlite3_stmt* s_;
};

std::string columnText(sqlite3_stmt* s, int col) {
  const auto* p = sqlite3_column_text(s, col);
  return p == nullptr ? std::string()
                      : std::string(reinterpret_cast<const char*>(p),
                                    static_cast<size_t>(sqlite3_column_bytes(s, col)));
}

void bindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}

constexpr int kBusyTimeoutMs = 5000;
constexpr int kFinePolls = 50;  // 50 x 0.1 ms, then 1 ms steps

// SQLite's own busy handler sleeps 1, 2, 5, 10, ... 100 ms between retries, so a writer that
// waits for another's one-fsync transaction (under a millisecond) oversleeps by several ms. Poll
// finely for the first 5 ms, where alerts and acks usually find the lock, then every ms.
int busyHandler(void* /*unused*/, int count) {
  const int waited_ms = count < kFinePolls ? count / 10 : kFinePolls / 10 + (count - kFinePolls);
  if (waited_ms >= kBusyTimeoutMs) {
    return 0;
  }
  std::this_thread::sleep_for(count < kFinePolls ? std::chrono::microseconds(100)
                                                 : std::chrono::microseconds(1000));
  return 1;
}

sqlite3* openConnection(const std::string& db_path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw std::runtime_error("outbox: cannot open " + db_path + ": " + msg);
  }
  sqlite3_busy_handler(db, busyHandler, nullptr);
  return db;
}

} // namespace

const char* kindName(Kind kind) {
  return kKindNames[static_cast<size_t>(kind)];
}

std::optional<Kind> parseKind(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i) {
    if (name == kKindNames[i]) {
      return static_cast<Kind>(i);
    }
  }
  return std::nullopt;
}

bool isDroppable(Kind kind) {
  return kind == Kind::Summary || kind == Kind::Telemetry || kind == Kind::Status;
}

Outbox::Outbox(const std::string& db_path, const std::string& site_id, Limits limits,
               const core::Clock& clock, core::MetricsRegistry& metrics)
    : site_id_(site_id),
      limits_(limits),
      clock_(clock),
      depth_gauge_(metrics.gauge("hgj_outbox_depth", "upstream messages waiting in the outbox")),
      bytes_gauge_(metrics.gauge("hgj_outbox_bytes", "bytes of upstream messages in the outbox")) {
  for (size_t i = 0; i < kKindCount; ++i) {
    dropped_counters_[i] = &metrics.counter(
        "hgj_outbox_dropped_total", "outbox messages dropped because the outbox was full",
        {{"kind", kKindNames[i]}});
  }
  db_ = openConnection(db_path);
  try {
    exec("PRAGMA journal_mode=WAL");
    // An outbox commit (and a deletion after PUBACK) must survive a power cut, not only a crash.
    exec("PRAGMA synchronous=FULL");
    // Checkpoints are the readings writer's job: a commit that crosses the WAL's 1000-page mark
    // runs one on its own thread, copying and syncing the whole WAL (50-160 ms measured), and
    // an alert or outbox commit must not be the one that pays for it.
    exec("PRAGMA wal_autocheckpoint=0");
    // Same definition as the store's: whichever component opens the file first creates it.
    exec("CREATE TABLE IF NOT EXISTS schema_versions(component TEXT PRIMARY KEY, "
         "version INTEGER NOT NULL, updated_ms INTEGER)");
    exec("CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY, msg_id TEXT NOT NULL, "
         "kind TEXT NOT NULL, topic TEXT NOT NULL, payload TEXT NOT NULL, "
         "created_ms INTEGER NOT NULL)");
    // Finding the oldest summary when full must not scan past thousands of alerts.
    exec("CREATE INDEX IF NOT EXISTS outbox_kind_seq ON outbox(kind, seq)");
    exec("CREATE TABLE IF NOT EXISTS outbox_sequence(site TEXT PRIMARY KEY, "
         "last_seq INTEGER NOT NULL)");
    exec(("INSERT INTO schema_versions(component, version, updated_ms) VALUES('uplink', 1, " +
          std::to_string(clock_.wallMs()) + ") ON CONFLICT(component) DO NOTHING")
             .c_str());

    sqlite3_stmt* s = prepare("SELECT version FROM schema_versions WHERE component='uplink'");
    int version = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_finalize(s);
    if (version > kSchemaVersion) {
      throw std::runtime_error("outbox: database has schema version " + std::to_string(version) +
                               ", this build knows " + std::to_string(kSchemaVersion));
    }

    // The next seq is above both this site's persisted counter and any row still queued (rows
    // written under another site id share the table's key space).
    s = prepare("SELECT MAX(COALESCE((SELECT last_seq FROM outbox_sequence WHERE site=?1), 0), "
                "COALESCE((SELECT MAX(seq) FROM outbox), 0)), "
                "(SELECT COUNT(*) FROM outbox), "
                "(SELECT COALESCE(SUM(length(CAST(topic AS BLOB)) + "
                "length(CAST(payload AS BLOB))), 0) FROM outbox)");
    bindText(s, 1, site_id_);
    if (sqlite3_step(s) == SQLITE_ROW) {
      stats_.last_seq = sqlite3_column_int64(s, 0);
      stats_.rows = sqlite3_column_int64(s, 1);
      stats_.bytes = sqlite3_column_int64(s, 2);
    }
    sqlite3_finalize(s);

    insert_ = prepare("INSERT INTO outbox(seq, msg_id, kind, topic, payload, created_ms) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    save_seq_ = prepare("INSERT INTO outbox_sequence(site, last_seq) VALUES(?1, ?2) "
                        "ON CONFLICT(site) DO UPDATE SET last_seq=excluded.last_seq");
    delete_ = prepare("DELETE FROM outbox WHERE seq=?1 RETURNING "
                      "length(CAST(topic AS BLOB)) + length(CAST(payload AS BLOB))");
    // Fetching runs on a connection of its own: in WAL a reader never waits for a writer, so
    // the uplink thread can send a just-committed alert while another thread's write (or this
    // connection's, holding mu_) waits for the write lock.
    read_db_ = openConnection(db_path);
    if (sqlite3_prepare_v3(read_db_, "SELECT seq, msg_id, kind, topic, payload, created_ms "
                                     "FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                           -1, SQLITE_PREPARE_PERSISTENT, &fetch_, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("outbox: ") + sqlite3_errmsg(read_db_));
    }
    oldest_of_kind_ = prepare("SELECT seq, length(CAST(topic AS BLOB)) + "
                              "length(CAST(payload AS BLOB)) FROM outbox WHERE kind=?1 "
                              "ORDER BY seq LIMIT 1");
    oldest_ = prepare("SELECT created_ms FROM outbox ORDER BY seq LIMIT 1");
    begin_ = prepare("BEGIN IMMEDIATE");
    commit_ = prepare("COMMIT");
    rollback_ = prepare("ROLLBACK");
  } catch (...) {
    for (auto* st : {insert_, save_seq_, delete_, fetch_, oldest_of_kind_, oldest_, begin_,
                     commit_, rollback_}) {
      sqlite3_finalize(st);
    }
    sqlite3_close(read_db_);
    sqlite3_close(db_);
    db_ = nullptr;
    read_db_ = nullptr;
    throw;
  }
  std::lock_guard lock(mu_);
  refreshOldestLocked();
  publishGaugesLocked();
}

Outbox::~Outbox() {
  for (auto* st : {insert_, save_seq_, delete_, fetch_, oldest_of_kind_, oldest_, begin_, commit_,
                   rollback_}) {
    sqlite3_finalize(st);
  }
  sqlite3_close(read_db_);
  sqlite3_close(db_);
}

void Outbox::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    throw std::runtime_error(std::string("outbox: ") + msg + " in: " + sql);
  }
}

sqlite3_stmt* Outbox::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("outbox: ") + sqlite3_errmsg(db_) + " in: " + sql);
  }
  return s;
}

void Outbox::setDropHandler(DropHandler handler) {
  std::lock_guard lock(mu_);
  drop_handler_ = std::move(handler);
}

bool Outbox::dropOldestLocked(Kind& dropped_kind) {
  int64_t best_seq = 0;
  int64_t best_bytes = 0;
  Kind best_kind = Kind::Summary;
  for (Kind k : kDropOrder) {
    StmtGuard g(oldest_of_kind_);
    sqlite3_bind_text(oldest_of_kind_, 1, kindName(k), -1, SQLITE_STATIC);
    if (sqlite3_step(oldest_of_kind_) == SQLITE_ROW) {
      int64_t seq = sqlite3_column_int64(oldest_of_kind_, 0);
      if (best_seq == 0 || seq < best_seq) {
        best_seq = seq;
        best_bytes = sqlite3_column_int64(oldest_of_kind_, 1);
        best_kind = k;
      }
    }
  }
  if (best_seq == 0) {
    return false;
  }
  StmtGuard g(delete_);
  sqlite3_bind_int64(delete_, 1, best_seq);
  if (sqlite3_step(delete_) != SQLITE_ROW) {
    return false;
  }
  stats_.rows -= 1;
  stats_.bytes -= best_bytes;
  dropped_kind = best_kind;
  return true;
}

std::optional<std::vector<int64_t>> Outbox::append(std::vector<Entry> entries) {
  std::vector<int64_t> seqs(entries.size(), 0);
  std::array<uint64_t, kKindCount> dropped_now{};
  DropHandler handler;
  std::vector<std::pair<Kind, uint64_t>> notify;
  {
    std::lock_guard lock(mu_);
    const OutboxStats before = stats_;
    auto fail = [&](const char* what) {
      spdlog::error("outbox: {} failed: {}", what, sqlite3_errmsg(db_));
      sqlite3_reset(rollback_);
      sqlite3_step(rollback_);
      sqlite3_reset(rollback_);
      stats_ = before;
      return std::nullopt;
    };
    {
      StmtGuard g(begin_);
      if (sqlite3_step(begin_) != SQLITE_DONE) {
        spdlog::error("outbox: begin failed: {}", sqlite3_errmsg(db_));
        return std::nullopt;
      }
    }
    const int64_t now_ms = clock_.wallMs();
    std::string topic;
    std::string payload;
    for (size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      const int64_t seq = stats_.last_seq + 1;
      std::string msg_id = site_id_ + ":" + std::to_string(seq);
      topic.clear();
      payload.clear();
      e.render(msg_id, topic, payload);
      const auto size = static_cast<int64_t>(topic.size() + payload.size());
      bool refused = false;
      while (stats_.rows + 1 > limits_.max_rows || stats_.bytes + size > limits_.max_bytes) {
        Kind k;
        if (!dropOldestLocked(k)) {
          if (isDroppable(e.kind)) {
            refused = true;
            dropped_now[static_cast<size_t>(e.kind)] += 1;
          } else {
            stats_.over_cap_kept += 1;
          }
          break;
        }
        dropped_now[static_cast<size_t>(k)] += 1;
      }
      if (refused) {
        continue;
      }
      StmtGuard g(insert_);
      sqlite3_bind_int64(insert_, 1, seq);
      bindText(insert_, 2, msg_id);
      sqlite3_bind_text(insert_, 3, kindName(e.kind), -1, SQLITE_STATIC);
      bindText(insert_, 4, topic);
      bindText(insert_, 5, payload);
      sqlite3_bind_int64(insert_, 6, now_ms);
      if (sqlite3_step(insert_) != SQLITE_DONE) {
        return fail("insert");
      }
      stats_.last_seq = seq;
      stats_.rows += 1;
      stats_.bytes += size;
      seqs[i] = seq;
    }
    {
      StmtGuard g(save_seq_);
      bindText(save_seq_, 1, site_id_);
      sqlite3_bind_int64(save_seq_, 2, stats_.last_seq);
      if (sqlite3_step(save_seq_) != SQLITE_DONE) {
        return fail("saving the sequence");
      }
    }
    {
      StmtGuard g(commit_);
      if (sqlite3_step(commit_) != SQLITE_DONE) {
        return fail("commit");
      }
    }
    bool any_dropped = false;
    for (size_t k = 0; k < kKindCount; ++k) {
      if (dropped_now[k] > 0) {
        stats_.dropped[k] += dropped_now[k];
        dropped_counters_[k]->inc(dropped_now[k]);
        any_dropped = true;
      }
    }
    if (any_dropped || before.rows == 0) {
      refreshOldestLocked();
    }
    publishGaugesLocked();
    if (any_dropped && drop_handler_) {
      handler = drop_handler_;
      for (size_t k = 0; k < kKindCount; ++k) {
        if (dropped_now[k] > 0) {
          notify.emplace_back(static_cast<Kind>(k), stats_.dropped[k]);
        }
      }
    }
  }
  for (const auto& [kind, total] : notify) {
    handler(kind, total);
  }
  return seqs;
}

std::vector<OutboxRow> Outbox::fetchAfter(int64_t after_seq, int limit) {
  std::vector<OutboxRow> rows;
  std::lock_guard lock(read_mu_);
  StmtGuard g(fetch_);
  sqlite3_bind_int64(fetch_, 1, after_seq);
  sqlite3_bind_int(fetch_, 2, limit);
  int rc;
  while ((rc = sqlite3_step(fetch_)) == SQLITE_ROW) {
    OutboxRow r;
    r.seq = sqlite3_column_int64(fetch_, 0);
    r.msg_id = columnText(fetch_, 1);
    r.kind = parseKind(columnText(fetch_, 2)).value_or(Kind::Summary);
    r.topic = columnText(fetch_, 3);
    r.payload = columnText(fetch_, 4);
    r.created_ms = sqlite3_column_int64(fetch_, 5);
    rows.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) {
    spdlog::error("outbox: fetch failed: {}", sqlite3_errmsg(read_db_));
  }
  return rows;
}

bool Outbox::remove(const std::vector<int64_t>& seqs) {
  if (seqs.empty()) {
    return true;
  }
  std::lock_guard lock(mu_);
  const OutboxStats before = stats_;
  {
    StmtGuard g(begin_);
    if (sqlite3_step(begin_) != SQLITE_DONE) {
      spdlog::error("outbox: begin failed: {}", sqlite3_errmsg(db_));
      return false;
    }
  }
  for (int64_t seq : seqs) {
    StmtGuard g(delete_);
    sqlite3_bind_int64(delete_, 1, seq);
    int rc = sqlite3_step(delete_);
    if (rc == SQLITE_ROW) {
      stats_.rows -= 1;
      stats_.bytes -= sqlite3_column_int64(delete_, 0);
      rc = sqlite3_step(delete_);
    }
    if (rc != SQLITE_DONE) {
      spdlog::error("outbox: delete failed: {}", sqlite3_errmsg(db_));
      sqlite3_reset(rollback_);
      sqlite3_step(rollback_);
      sqlite3_reset(rollback_);
      stats_ = before;
      return false;
    }
  }
  StmtGuard g(commit_);
  if (sqlite3_step(commit_) != SQLITE_DONE) {
    spdlog::error("outbox: commit of deletions failed: {}", sqlite3_errmsg(db_));
    sqlite3_reset(rollback_);
    sqlite3_step(rollback_);
    sqlite3_reset(rollback_);
    stats_ = before;
    return false;
  }
  refreshOldestLocked();
  publishGaugesLocked();
  return true;
}

void Outbox::refreshOldestLocked() {
  StmtGuard g(oldest_);
  stats_.oldest_created_ms =
      sqlite3_step(oldest_) == SQLITE_ROW ? sqlite3_column_int64(oldest_, 0) : 0;
}

void Outbox::publishGaugesLocked() {
  depth_gauge_.set(static_cast<double>(stats_.rows));
  bytes_gauge_.set(static_cast<double>(stats_.bytes));
  std::lock_guard lock(published_mu_);
  published_ = stats_;
}

OutboxStats Outbox::stats() const {
  std::lock_guard lock(published_mu_);
  return published_;
}

} // namespace hgj::uplink
