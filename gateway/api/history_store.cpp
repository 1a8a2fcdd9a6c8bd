#include "gateway/api/history_store.h"

#include <cmath>
#include <map>

#include <cstdio>
#include <ctime>

#include "core/time_format.h"

namespace hgj::api {

namespace {

// "YYYY-MM-DD" of the Monday of the week holding `day`.
std::string weekOf(const std::string& day) {
  std::tm tm{};
  if (std::sscanf(day.c_str(), "%d-%d-%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3) {
    return day;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t t = timegm(&tm);
  std::tm norm{};
  gmtime_r(&t, &norm);
  int back = (norm.tm_wday + 6) % 7;  // days since Monday
  t -= static_cast<std::time_t>(back) * 86400;
  gmtime_r(&t, &norm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", norm.tm_year + 1900, norm.tm_mon + 1,
                norm.tm_mday);
  return buf;
}

std::string csvField(const Json& v) {
  std::string s = v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
  if (s.find_first_of(",\"\r\n") == std::string::npos) {
    return s;
  }
  std::string out = "\"";
  for (char c : s) {
    out += c;
    if (c == '"') {
      out += '"';
    }
  }
  return out + "\"";
}

} // namespace

HistoryStore::HistoryStore(std::string db_path, int utc_offset_minutes)
    : pool_(std::move(db_path)), utc_offset_minutes_(utc_offset_minutes) {}

std::optional<Json> HistoryStore::occupancy(const OccupancyQuery& q, std::string* error) const {
  Json rows = Json::array();
  const int64_t offset_ms = int64_t{utc_offset_minutes_} * 60'000;
  const int64_t step_ms = q.step_s * 1000;
  // 15-minute rows answer a 15-minute step; everything longer is built from the hour rows
  // (equal lengths: the mean of means is the mean). Days and weeks begin at local midnight,
  // weeks on Monday (1970-01-05 was one).
  const int64_t source = q.step_s == 900 ? 900 : 3600;
  const int64_t origin = q.step_s >= 86400 ? -offset_ms + (q.step_s == 604800 ? 4 * 86'400'000LL : 0)
                                           : 0;
  bool ok = pool_.with(
      [&](storage::Database& db) {
        storage::Statement& st = db.cached(
            "SELECT ((bucket_ms - ?4) / ?5) * ?5 + ?4 AS at, MAX(total), AVG(mean_occupied), "
            "MAX(peak_occupied), MIN(min_free), SUM(minutes_full), COUNT(*) "
            "FROM history_occupancy WHERE step_s = ?1 AND scope = ?2 AND bucket_ms >= ?3 "
            "AND bucket_ms < ?6 GROUP BY at ORDER BY at");
        storage::Statement::Scope scope(st);
        st.bind(1, source).bind(2, q.scope).bind(3, q.from_ms).bind(4, origin).bind(5, step_ms)
            .bind(6, q.to_ms);
        while (st.step()) {
          double mean = st.columnDouble(2);
          rows.push_back(Json::array({core::rfc3339(st.columnInt(0)), st.columnInt(1),
                                      std::round(mean * 1000.0) / 1000.0, st.columnInt(3),
                                      st.columnInt(4),
                                      std::round(st.columnDouble(5) * 1000.0) / 1000.0,
                                      st.columnInt(6)}));
        }
      },
      error);
  if (!ok) {
    return std::nullopt;
  }
  return Json{{"columns", Json::array({"at", "total", "mean_occupied", "peak_occupied",
                                       "min_free", "minutes_full", "buckets"})},
              {"rows", std::move(rows)}};
}

std::optional<Json> HistoryStore::days(const DayQuery& q, std::string* error) const {
  std::map<std::pair<std::string, std::string>, double> grouped;
  bool ok = pool_.with(
      [&](storage::Database& db) {
        storage::Statement& st = db.cached(
            "SELECT day, key, value FROM history_day WHERE metric = ?1 AND "
            "(?2 = '' OR key = ?2) AND day >= ?3 AND day <= ?4 ORDER BY day, key");
        storage::Statement::Scope scope(st);
        st.bind(1, q.metric).bind(2, q.key).bind(3, q.from).bind(4, q.to);
        while (st.step()) {
          std::string day = st.columnText(0);
          grouped[{q.weekly ? weekOf(day) : day, st.columnText(1)}] += st.columnDouble(2);
        }
      },
      error);
  if (!ok) {
    return std::nullopt;
  }
  Json rows = Json::array();
  for (const auto& [k, v] : grouped) {
    rows.push_back(Json::array({k.first, k.second, std::round(v * 1000.0) / 1000.0}));
  }
  return Json{{"columns", Json::array({q.weekly ? "week" : "day", "key", "value"})},
              {"rows", std::move(rows)}};
}

std::optional<Json> HistoryStore::scopes(std::string* error) const {
  Json out = Json::array();
  bool ok = pool_.with(
      [&](storage::Database& db) {
        storage::Statement& st =
            db.cached("SELECT DISTINCT scope FROM history_occupancy WHERE step_s = 3600 "
                      "ORDER BY scope");
        storage::Statement::Scope scope(st);
        while (st.step()) {
          out.push_back(st.columnText(0));
        }
      },
      error);
  if (!ok) {
    return std::nullopt;
  }
  return out;
}

std::string toCsv(const Json& table) {
  std::string out;
  bool first = true;
  for (const auto& c : table["columns"]) {
    if (!first) {
      out += ',';
    }
    out += csvField(c);
    first = false;
  }
  out += "\r\n";
  for (const auto& row : table["rows"]) {
    first = true;
    for (const auto& v : row) {
      if (!first) {
        out += ',';
      }
      out += csvField(v);
      first = false;
    }
    out += "\r\n";
  }
  return out;
}

} // namespace hgj::api
