#include "gateway/api/alert_store.h"

#include "core/time_format.h"

namespace hgj::api {

namespace {

using storage::Statement;

constexpr const char* kColumns =
    "SELECT id, rule, device, grid, severity, state, message, value, source_ts, raised_at, "
    "acked_at, acked_by, ack_note, cleared_at, escalation_level FROM alerts ";

Json textOrNull(const Statement& st, int col) {
  return st.columnNull(col) ? Json(nullptr) : Json(st.columnText(col));
}

Json timeCol(const Statement& st, int col) {
  return st.columnNull(col) ? Json(nullptr) : timeOrNull(st.columnInt(col));
}

Json row(const Statement& st) {
  Json value = nullptr;
  if (!st.columnNull(7)) {
    std::string v = st.columnText(7);
    auto parsed = nlohmann::json::parse(v, nullptr, false);
    value = parsed.is_discarded() || parsed.is_structured() ? Json(v) : Json::parse(v);
  }
  Json j{{"id", st.columnInt(0)},
         {"rule", st.columnText(1)},
         {"device", st.columnText(2)},
         {"grid", st.columnText(3)},
         {"severity", st.columnText(4)},
         {"state", st.columnText(5)},
         {"message", st.columnText(6)},
         {"value", value},
         {"raised_at", timeCol(st, 9)},
         {"acked_at", timeCol(st, 10)},
         {"acked_by", textOrNull(st, 11)},
         {"cleared_at", timeCol(st, 13)}};
  j["ack_note"] = textOrNull(st, 12);
  j["source_ts"] = st.columnNull(8) ? Json(nullptr) : Json(st.columnInt(8));
  j["escalation_level"] = st.columnInt(14);
  return j;
}

} // namespace

AlertStore::AlertStore(std::string db_path) : pool_(std::move(db_path)) {}

AlertStore::~AlertStore() = default;

std::optional<Json> AlertStore::list(const AlertQuery& q, std::string* error) const {
  Json out = Json::array();
  bool ok = pool_.with(
      [&](storage::Database& db) {
        Statement& st = db.cached(
            std::string(kColumns) +
            "WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR device = ?2) AND "
            "(?3 IS NULL OR grid = ?3) ORDER BY raised_at DESC, id DESC LIMIT ?4");
        Statement::Scope scope(st);
        st.bindOpt(1, q.state).bindOpt(2, q.device).bindOpt(3, q.grid).bind(4, q.limit);
        while (st.step()) {
          out.push_back(row(st));
        }
      },
      error);
  if (!ok) {
    if (error != nullptr) {
      *error = "alerts query failed: " + *error;
    }
    return std::nullopt;
  }
  return out;
}

std::optional<Json> AlertStore::get(int64_t id, std::string* error) const {
  Json out = nullptr;
  bool ok = pool_.with(
      [&](storage::Database& db) {
        Statement& st = db.cached(std::string(kColumns) + "WHERE id = ?1");
        Statement::Scope scope(st);
        st.bind(1, id);
        if (st.step()) {
          out = row(st);
        }
      },
      error);
  if (!ok) {
    if (error != nullptr) {
      *error = "alerts query failed: " + *error;
    }
    return std::nullopt;
  }
  return out;
}

std::map<std::string, int64_t> AlertStore::countByState() const {
  std::map<std::string, int64_t> out;
  bool ok = pool_.with(
      [&](storage::Database& db) {
        Statement& st = db.cached("SELECT state, COUNT(*) FROM alerts GROUP BY state");
        Statement::Scope scope(st);
        while (st.step()) {
          out[st.columnText(0)] = st.columnInt(1);
        }
      },
      nullptr);
  return ok ? out : std::map<std::string, int64_t>{};
}

} // namespace hgj::api
