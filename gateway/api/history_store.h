#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "gateway/api/views.h"
#include "gateway/storage/sqlite.h"

namespace hgj::api {

/// One occupancy query: a scope ("site", "level:B2", "zone:B2/A", "category:visitor") over
/// [from_ms, to_ms) in steps of `step_s` (900, 3600, 86400 or 604800; days and weeks are local,
/// built from the hour rows).
struct OccupancyQuery {
  std::string scope = "site";
  int64_t step_s = 3600;
  int64_t from_ms = 0;
  int64_t to_ms = 0;
};

/// One day-metric query: `metric` (energy_kwh_pile, energy_kwh_shed, sessions_pile,
/// alerts_kind, alerts_shed, alerts_grid) for one key or all ("" ), days [from, to]
/// ("YYYY-MM-DD", inclusive), per day or per week (weeks start on Monday).
struct DayQuery {
  std::string metric;
  std::string key;
  std::string from;
  std::string to;
  bool weekly = false;
};

/// Read-only access to the history tables (gateway/history/rollups.h) through the API's own
/// read connections. Thread-safe. Each result is {"columns":[..],"rows":[[..]..]}, which the
/// handlers answer as JSON objects or CSV.
class HistoryStore {
public:
  explicit HistoryStore(std::string db_path, int utc_offset_minutes = 480);

  std::optional<Json> occupancy(const OccupancyQuery& q, std::string* error) const;
  std::optional<Json> days(const DayQuery& q, std::string* error) const;
  /// Scopes that have rows (for pickers).
  std::optional<Json> scopes(std::string* error) const;
  int utcOffsetMinutes() const { return utc_offset_minutes_; }

private:
  storage::ReadPool pool_;
  int utc_offset_minutes_;
};

/// {"columns":[..],"rows":[[..]..]} as CSV (RFC 4180: header line, CRLF, quoted when needed).
std::string toCsv(const Json& table);

} // namespace hgj::api
