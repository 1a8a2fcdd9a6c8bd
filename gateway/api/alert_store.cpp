#include "gateway/api/alert_store.h"

#include <sqlite3.h>

#include "core/time_format.h"

namespace hgj::api {

namespace {

constexpr const char* kColumns =
    "SELECT id, rule, device, grid, severity, state, message, value, source_ts, raised_at, "
    "acked_at, acked_by, ack_note, cleared_at, escalation_level FROM alerts ";

// Keeps at most this many idle connections; more are opened under load and closed after use.
constexpr size_t kMaxIdle = 4;

std::string text(sqlite3_stmt* st, int col) {
  const unsigned char* t = sqlite3_column_text(st, col);
  return t != nullptr ? reinterpret_cast<const char*>(t) : std::string();
}

Json textOrNull(sqlite3_stmt* st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) {
    return nullptr;
  }
  return text(st, col);
}

Json timeCol(sqlite3_stmt* st, int col) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) {
    return nullptr;
  }
  return timeOrNull(sqlite3_column_int64(st, col));
}

Json row(sqlite3_stmt* st) {
  Json value = nullptr;
  if (sqlite3_column_type(st, 7) != SQLITE_NULL) {
    std::string v = text(st, 7);
    auto parsed = nlohmann::json::parse(v, nullptr, false);
    if (parsed.is_discarded() || parsed.is_structured()) {
      value = v;
    } else {
      value = Json::parse(v);
    }
  }
  Json j{{"id", sqlite3_column_int64(st, 0)},
         {"rule", text(st, 1)},
         {"device", text(st, 2)},
         {"grid", text(st, 3)},
         {"severity", text(st, 4)},
         {"state", text(st, 5)},
         {"message", text(st, 6)},
         {"value", value},
         {"raised_at", timeCol(st, 9)},
         {"acked_at", timeCol(st, 10)},
         {"acked_by", textOrNull(st, 11)},
         {"cleared_at", timeCol(st, 13)}};
  j["ack_note"] = textOrNull(st, 12);
  j["source_ts"] =
      sqlite3_column_type(st, 8) == SQLITE_NULL ? Json(nullptr) : Json(sqlite3_column_int64(st, 8));
  j["escalation_level"] = sqlite3_column_int64(st, 14);
  return j;
}

void bindOpt(sqlite3_stmt* st, int idx, const std::string& v) {
  if (v.empty()) {
    sqlite3_bind_null(st, idx);
  } else {
    sqlite3_bind_text(st, idx, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
}

} // namespace

AlertStore::AlertStore(std::string db_path) : path_(std::move(db_path)) {
}

AlertStore::~AlertStore() {
  for (auto* db : idle_) {
    sqlite3_close_v2(db);
  }
}

sqlite3* AlertStore::acquire(std::string* error) const {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      sqlite3* db = idle_.back();
      idle_.pop_back();
      return db;
    }
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    if (error != nullptr) {
      *error = std::string("cannot open the database: ") + sqlite3_errstr(rc);
    }
    sqlite3_close_v2(db);
    return nullptr;
  }
  // The writer holds its lock only for short batched commits; WAL readers normally never wait.
  sqlite3_busy_timeout(db, 1000);
  return db;
}

void AlertStore::release(sqlite3* db, bool healthy) const {
  if (db == nullptr) {
    return;
  }
  if (healthy) {
    std::lock_guard lock(mu_);
    if (idle_.size() < kMaxIdle) {
      idle_.push_back(db);
      return;
    }
  }
  sqlite3_close_v2(db);
}

std::optional<Json> AlertStore::list(const AlertQuery& q, std::string* error) const {
  sqlite3* db = acquire(error);
  if (db == nullptr) {
    return std::nullopt;
  }
  std::string sql = std::string(kColumns) +
                    "WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR device = ?2) AND "
                    "(?3 IS NULL OR grid = ?3) ORDER BY raised_at DESC, id DESC LIMIT ?4";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    if (error != nullptr) {
      *error = std::string("alerts query failed: ") + sqlite3_errmsg(db);
    }
    release(db, false);
    return std::nullopt;
  }
  bindOpt(st, 1, q.state);
  bindOpt(st, 2, q.device);
  bindOpt(st, 3, q.grid);
  sqlite3_bind_int(st, 4, q.limit);
  Json out = Json::array();
  int rc = SQLITE_OK;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    out.push_back(row(st));
  }
  bool ok = rc == SQLITE_DONE;
  if (!ok && error != nullptr) {
    *error = std::string("alerts query failed: ") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  release(db, ok);
  if (!ok) {
    return std::nullopt;
  }
  return out;
}

std::optional<Json> AlertStore::get(int64_t id, std::string* error) const {
  sqlite3* db = acquire(error);
  if (db == nullptr) {
    return std::nullopt;
  }
  std::string sql = std::string(kColumns) + "WHERE id = ?1";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    if (error != nullptr) {
      *error = std::string("alerts query failed: ") + sqlite3_errmsg(db);
    }
    release(db, false);
    return std::nullopt;
  }
  sqlite3_bind_int64(st, 1, id);
  int rc = sqlite3_step(st);
  std::optional<Json> out;
  if (rc == SQLITE_ROW) {
    out = row(st);
  } else if (rc == SQLITE_DONE) {
    out = Json(nullptr);
  } else if (error != nullptr) {
    *error = std::string("alerts query failed: ") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  release(db, out.has_value());
  return out;
}

std::map<std::string, int64_t> AlertStore::countByState() const {
  std::map<std::string, int64_t> out;
  sqlite3* db = acquire(nullptr);
  if (db == nullptr) {
    return out;
  }
  sqlite3_stmt* st = nullptr;
  bool ok = sqlite3_prepare_v2(db, "SELECT state, COUNT(*) FROM alerts GROUP BY state", -1, &st,
                               nullptr) == SQLITE_OK;
  if (ok) {
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      out[text(st, 0)] = sqlite3_column_int64(st, 1);
    }
    ok = rc == SQLITE_DONE;
  }
  sqlite3_finalize(st);
  release(db, ok);
  return out;
}

} // namespace hgj::api
