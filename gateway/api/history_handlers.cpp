#include "gateway/api/handlers.h"

#include <ctime>

#include "core/time_format.h"
#include "gateway/api/history_store.h"

namespace hgj::api {

namespace {

constexpr int64_t kMaxRows = 20'000;
constexpr int64_t kDayMs = 86'400'000;

// A time given as RFC 3339 or Unix milliseconds.
std::optional<int64_t> parseTime(const std::string& s) {
  if (auto t = core::parseRfc3339(s)) {
    return t;
  }
  if (auto n = parseUnsigned(s)) {
    return static_cast<int64_t>(*n);
  }
  return std::nullopt;
}

bool validDay(const std::string& d) {
  int y = 0;
  int m = 0;
  int day = 0;
  return d.size() == 10 && std::sscanf(d.c_str(), "%4d-%2d-%2d", &y, &m, &day) == 3 && m >= 1 &&
         m <= 12 && day >= 1 && day <= 31;
}

std::string dayText(int64_t unix_ms, int offset_minutes) {
  std::time_t t = static_cast<std::time_t>((unix_ms + int64_t{offset_minutes} * 60'000) / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

bool wantsCsv(const Request& req) {
  auto f = req.param("format");
  if (f) {
    return *f == "csv";
  }
  return req.header("accept").find("text/csv") != std::string::npos;
}

// The table as JSON objects (one per row) or as CSV.
void answer(const Request& req, Response& res, const Json& table, Json meta,
            const std::string& file) {
  if (wantsCsv(req)) {
    res.status = 200;
    res.content_type = "text/csv; charset=utf-8";
    res.setHeader("Content-Disposition", "attachment; filename=\"" + file + ".csv\"");
    res.body = toCsv(table);
    return;
  }
  Json rows = Json::array();
  for (const auto& r : table["rows"]) {
    Json o = Json::object();
    for (size_t i = 0; i < table["columns"].size(); ++i) {
      o[table["columns"][i].get<std::string>()] = r[i];
    }
    rows.push_back(std::move(o));
  }
  meta["rows"] = std::move(rows);
  res.setJson(200, meta);
}

bool storeReady(ApiContext& ctx, Response& res) {
  if (!ctx.history) {
    res.setError(503, "history unavailable");
    return false;
  }
  return true;
}

void unavailable(ApiContext& ctx, Response& res, const std::string& error) {
  ctx.error_log.warn("http: history unavailable: {}", core::printable(error));
  res.setHeader("Retry-After", "5");
  res.setError(503, "history unavailable: " + error);
}

// Answers with a history query's table (as answer() does), or 503 with `error` when it failed.
void answerQuery(ApiContext& ctx, const Request& req, Response& res,
                 const std::optional<Json>& table, const std::string& error, Json meta,
                 const std::string& file) {
  if (!table) {
    unavailable(ctx, res, error);
    return;
  }
  answer(req, res, *table, std::move(meta), file);
}

} // namespace

void getHistoryOccupancy(ApiContext& ctx, const Request& req, Response& res) {
  if (!storeReady(ctx, res)) {
    return;
  }
  OccupancyQuery q;
  q.scope = req.param("scope").value_or("site");
  if (q.scope.empty() || q.scope.size() > kMaxIdLength) {
    res.setError(400, "scope must be site, level:<id>, zone:<level>/<zone> or category:<id>");
    return;
  }
  std::string step = req.param("step").value_or("1h");
  if (step == "15m") {
    q.step_s = 900;
  } else if (step == "1h") {
    q.step_s = 3600;
  } else if (step == "1d") {
    q.step_s = 86400;
  } else if (step == "1w") {
    q.step_s = 604800;
  } else {
    res.setError(400, "step must be 15m, 1h, 1d or 1w");
    return;
  }
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  std::optional<int64_t> to = req.param("to") ? parseTime(*req.param("to")) : now;
  std::optional<int64_t> from = req.param("from")
                                    ? parseTime(*req.param("from"))
                                    : std::optional<int64_t>(to.value_or(now) -
                                                             (q.step_s >= 86400 ? 7 : 1) * kDayMs);
  if (!from || !to || *from >= *to) {
    res.setError(400, "from and to must be RFC 3339 times or Unix ms, from before to");
    return;
  }
  if ((*to - *from) / (q.step_s * 1000) > kMaxRows) {
    res.setError(400, "too many steps in the range (at most " + std::to_string(kMaxRows) + ")");
    return;
  }
  q.from_ms = *from;
  q.to_ms = *to;
  std::string error;
  answerQuery(ctx, req, res, ctx.history->occupancy(q, &error), error,
              Json{{"scope", q.scope}, {"step", step}, {"from", core::rfc3339(q.from_ms)},
                   {"to", core::rfc3339(q.to_ms)}},
              "occupancy");
}

void getHistoryDays(ApiContext& ctx, const Request& req, Response& res) {
  if (!storeReady(ctx, res)) {
    return;
  }
  // /api/v1/history/{energy|sessions|alerts}: which metric `by` picks.
  const std::string& what = req.params.at(0);
  std::string by = req.param("by").value_or(what == "alerts" ? "kind" : "pile");
  DayQuery q;
  if (what == "energy" && (by == "pile" || by == "shed")) {
    q.metric = "energy_kwh_" + by;
  } else if (what == "sessions" && by == "pile") {
    q.metric = "sessions_pile";
  } else if (what == "alerts" && (by == "kind" || by == "shed" || by == "grid")) {
    q.metric = "alerts_" + by;
  } else {
    res.setError(400, what == "alerts" ? "by must be kind, shed or grid"
                      : what == "energy" ? "by must be pile or shed"
                                         : "by must be pile");
    return;
  }
  q.key = req.param("key").value_or("");
  if (q.key.size() > kMaxIdLength) {
    res.setError(400, "key too long");
    return;
  }
  std::string step = req.param("step").value_or("1d");
  if (step != "1d" && step != "1w") {
    res.setError(400, "step must be 1d or 1w");
    return;
  }
  q.weekly = step == "1w";
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  const int off = ctx.history->utcOffsetMinutes();
  q.to = req.param("to").value_or(dayText(now, off));
  q.from = req.param("from").value_or(dayText(now - 6 * kDayMs, off));
  if (!validDay(q.from) || !validDay(q.to) || q.from > q.to) {
    res.setError(400, "from and to must be days (YYYY-MM-DD), from not after to");
    return;
  }
  std::string error;
  answerQuery(ctx, req, res, ctx.history->days(q, &error), error,
              Json{{"metric", q.metric}, {"by", by}, {"step", step}, {"from", q.from},
                   {"to", q.to}},
              what + "-" + by);
}

void getHistoryScopes(ApiContext& ctx, const Request& /*req*/, Response& res) {
  if (!storeReady(ctx, res)) {
    return;
  }
  std::string error;
  auto scopes = ctx.history->scopes(&error);
  if (!scopes) {
    unavailable(ctx, res, error);
    return;
  }
  // The offset tells a client (the dashboard's history page) where the compound's days begin.
  res.setJson(200, Json{{"scopes", std::move(*scopes)},
                        {"utc_offset_minutes", ctx.history->utcOffsetMinutes()}});
}

} // namespace hgj::api
