#include "gateway/history/rollups.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <set>

namespace hgj::history {

namespace {

constexpr int64_t kQuarterMs = 15 * 60'000;
constexpr int64_t kHourMs = 60 * 60'000;
constexpr int64_t kDayMs = 24 * kHourMs;
constexpr int kSchemaVersion = 1;
// History never walks more than this in one step: a reading whose clock is wrong by months
// (plausible to the decoder, which accepts anything after 2001) must not make it emit a row for
// every quarter in between. The span is skipped instead (no rows: no data).
constexpr int64_t kMaxWalkMs = kDayMs;
// A device clock ahead of the box is trusted this far at most (as the decoder's limit is a day,
// one fast clock would otherwise make every later reading "late").
constexpr int64_t kMaxAheadOfIngestMs = 60'000;

// The schema (docs/storage.md, "History"). Upserts keep the last figures of a bucket.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS history_occupancy(
  step_s INTEGER NOT NULL,
  bucket_ms INTEGER NOT NULL,
  scope TEXT NOT NULL,
  total INTEGER NOT NULL,
  mean_occupied REAL NOT NULL,
  peak_occupied INTEGER NOT NULL,
  min_free INTEGER NOT NULL,
  minutes_full REAL NOT NULL,
  PRIMARY KEY(step_s, scope, bucket_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_day(
  day TEXT NOT NULL,
  metric TEXT NOT NULL,
  key TEXT NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY(metric, key, day)) WITHOUT ROWID;
)sql";

int64_t floorTo(int64_t t, int64_t step) {
  return t >= 0 ? t - t % step : t - ((t % step) + step) % step;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

} // namespace

HistoryConfig parseHistoryConfig(const core::ConfigNode& node) {
  HistoryConfig c;
  if (!node.defined()) {
    return c;
  }
  node.allowKeys({"enabled", "hour_retention", "day_retention", "utc_offset", "max_power_gap"});
  c.enabled = node.boolean("enabled", c.enabled);
  c.hour_retention = node.duration("hour_retention", c.hour_retention, std::chrono::hours(24),
                                   std::chrono::hours(24 * 3660));
  c.day_retention = node.duration("day_retention", c.day_retention, std::chrono::hours(24),
                                  std::chrono::hours(24 * 3660));
  c.max_power_gap = node.duration("max_power_gap", c.max_power_gap, std::chrono::seconds(1),
                                  std::chrono::hours(24));
  std::string off = node.str("utc_offset", "+08:00");
  int h = 0;
  int m = 0;
  char sign = 0;
  if (std::sscanf(off.c_str(), "%c%d:%d", &sign, &h, &m) == 3 && (sign == '+' || sign == '-') &&
      h >= 0 && h <= 14 && m >= 0 && m < 60 && off.size() == 6) {
    c.utc_offset_minutes = (sign == '-' ? -1 : 1) * (h * 60 + m);
  } else {
    node.errorAt("utc_offset", "expected an offset such as +08:00, got \"" + off + "\"");
  }
  return c;
}

void createHistorySchema(storage::Database& db, int64_t now_ms) {
  storage::createSchema(db, "history", kSchema, kSchemaVersion, storage::Durability::Process,
                        now_ms);
}

Rollups::Rollups(const HistoryConfig& config, std::shared_ptr<const model::Compound> compound)
    : config_(config), compound_(std::move(compound)) {
  const model::Compound& c = *compound_;
  auto pid = [&](const char* name, model::PointId* id, bool* has) {
    if (auto p = c.pointId(name)) {
      *id = *p;
      *has = true;
    }
  };
  pid("occupied", &occupied_, &has_occupied_);
  pid("energy_kwh", &energy_, &has_energy_);
  pid("state", &state_, &has_state_);
  pid("power_w", &power_w_, &has_power_);
  const size_t n = c.devices.size();
  space_of_.assign(n, -1);
  kind_.assign(n, 0);
  last_kwh_.assign(n, std::numeric_limits<double>::quiet_NaN());
  charging_.assign(n, 0);
  last_power_.assign(n, 0);
  last_power_at_.assign(n, 0);

  std::map<std::string, uint16_t> scope_idx;
  auto scope = [&](const std::string& name) {
    auto it = scope_idx.find(name);
    if (it != scope_idx.end()) {
      return it->second;
    }
    auto i = static_cast<uint16_t>(scopes_.size());
    scopes_.push_back(Scope{name});
    scope_idx[name] = i;
    return i;
  };
  scope("site");
  for (const auto& d : c.devices) {
    if (d.type() == "parking_sensor" && has_occupied_ && d.profile->point(occupied_) != nullptr) {
      kind_[d.index] = 1;
      Space s;
      s.device = d.index;
      s.scopes = {scope("site"), scope("level:" + d.location.level),
                  scope("zone:" + d.location.level + "/" + d.location.zone)};
      if (!d.category.empty()) {
        s.scopes.push_back(scope("category:" + d.category));
      }
      for (auto i : s.scopes) {
        scopes_[i].total++;
        scopes_[i].unknown++;
      }
      space_of_[d.index] = static_cast<int32_t>(spaces_.size());
      spaces_.push_back(std::move(s));
    } else if (d.type() == "ev_pile") {
      kind_[d.index] = 2;
    } else if (d.type() == "ebike_port" && d.parent != model::kNoDevice) {
      kind_[d.index] = 3;
    }
  }
}

std::string Rollups::dayOf(int64_t unix_ms) const {
  std::time_t t = static_cast<std::time_t>(
      floorTo(unix_ms + int64_t{config_.utc_offset_minutes} * 60'000, 1000) / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

bool Rollups::full(const Scope& s) {
  // As the "level full" threshold judges by default: no free space, at most 20 % unknown.
  return s.total > 0 && s.free == 0 && s.unknown * 5 <= s.total;
}

void Rollups::openBucket(Scope& s, Bucket& b, int64_t start) {
  b = Bucket{};
  b.start = start;
  b.peak = s.occupied;
  b.min_free = s.free;
}

void Rollups::closeBucket(Scope& s, Bucket& b, int step_s) {
  OccupancyRow row;
  row.step_s = step_s;
  row.bucket_ms = b.start;
  row.scope = s.name;
  row.total = s.total;
  const double len = step_s * 1000.0;
  row.mean_occupied = b.occupied_ms / len;
  row.peak_occupied = b.peak;
  row.min_free = b.min_free;
  row.minutes_full = b.full_ms / 60'000.0;
  closed_.push_back(std::move(row));
}

void Rollups::integrateTo(int64_t t) {
  if (now_ms_ == 0) {
    // History begins with the first event; the part of its bucket before it had no known space.
    now_ms_ = t;
    for (auto& s : scopes_) {
      openBucket(s, s.quarter, floorTo(t, kQuarterMs));
      openBucket(s, s.hour, floorTo(t, kHourMs));
      s.quarter.min_free = s.hour.min_free = s.free;
    }
    return;
  }
  if (t - now_ms_ > kMaxWalkMs) {
    // Close the current hour as it stands, then start again at t.
    integrateTo(floorTo(now_ms_, kHourMs) + kHourMs);
    now_ms_ = t;
    for (auto& s : scopes_) {
      openBucket(s, s.quarter, floorTo(t, kQuarterMs));
      openBucket(s, s.hour, floorTo(t, kHourMs));
    }
    return;
  }
  while (t > now_ms_) {
    const int64_t boundary = floorTo(now_ms_, kQuarterMs) + kQuarterMs;
    const int64_t end = std::min(t, boundary);
    const double dt = static_cast<double>(end - now_ms_);
    for (auto& s : scopes_) {
      const bool is_full = full(s);
      for (Bucket* b : {&s.quarter, &s.hour}) {
        b->occupied_ms += s.occupied * dt;
        if (is_full) {
          b->full_ms += dt;
        }
      }
    }
    now_ms_ = end;
    if (end == boundary) {
      for (auto& s : scopes_) {
        closeBucket(s, s.quarter, 900);
        openBucket(s, s.quarter, boundary);
        if (boundary % kHourMs == 0) {
          closeBucket(s, s.hour, 3600);
          openBucket(s, s.hour, boundary);
        }
      }
    }
  }
}

void Rollups::setSpace(model::DeviceIndex d, SpaceState to, int64_t at) {
  (void)at;
  Space& sp = spaces_[static_cast<size_t>(space_of_[d])];
  sp.pending = false;
  if (sp.counted == to) {
    return;
  }
  auto slot = [](Scope& s, SpaceState st) -> int& {
    return st == SpaceState::Free ? s.free : st == SpaceState::Occupied ? s.occupied : s.unknown;
  };
  for (auto i : sp.scopes) {
    Scope& s = scopes_[i];
    slot(s, sp.counted)--;
    slot(s, to)++;
    for (Bucket* b : {&s.quarter, &s.hour}) {
      b->peak = std::max(b->peak, s.occupied);
      b->min_free = std::min(b->min_free, s.free);
    }
  }
  sp.counted = to;
}

void Rollups::commitDue(int64_t upto) {
  if (pending_.empty()) {
    return;
  }
  const int64_t deb = config_.debounce.count();
  std::vector<std::pair<int64_t, uint32_t>> due;
  for (size_t i = 0; i < pending_.size();) {
    Space& sp = spaces_[pending_[i]];
    if (!sp.pending) {
      pending_[i] = pending_.back();
      pending_.pop_back();
      continue;
    }
    if (sp.candidate_since + deb <= upto) {
      due.emplace_back(sp.candidate_since + deb, pending_[i]);
      pending_[i] = pending_.back();
      pending_.pop_back();
      continue;
    }
    ++i;
  }
  std::sort(due.begin(), due.end());
  for (auto [when, idx] : due) {
    integrateTo(when);
    Space& sp = spaces_[idx];
    // Counted from the moment the debounce passed, as the live tracker counts it.
    setSpace(sp.device, sp.candidate, when);
  }
}

void Rollups::advanceTo(int64_t now_ms) {
  if (now_ms_ == 0 || now_ms <= now_ms_) {
    return;
  }
  commitDue(now_ms);
  integrateTo(now_ms);
}

void Rollups::addDay(const std::string& metric, const std::string& key, int64_t at_ms, double v) {
  auto k = std::make_tuple(dayOf(at_ms), metric, key);
  double& total = days_[k];
  total += v;
  dirty_days_[k] = total;
}

void Rollups::onReading(const model::Reading& r) {
  if (r.device >= kind_.size() || kind_[r.device] == 0) {
    return;
  }
  const int64_t t = r.ingest_ms > 0 ? std::min(r.source_ms, r.ingest_ms + kMaxAheadOfIngestMs)
                                     : r.source_ms;
  const model::Device& dev = compound_->devices[r.device];
  switch (kind_[r.device]) {
  case 1: {
    if (r.point != occupied_) {
      return;
    }
    commitDue(t);
    integrateTo(t);
    SpaceState obs = SpaceState::Unknown;
    if (r.quality == model::Quality::Good) {
      if (auto b = model::asBool(r.value)) {
        obs = *b ? SpaceState::Occupied : SpaceState::Free;
      }
    }
    Space& sp = spaces_[static_cast<size_t>(space_of_[r.device])];
    if (obs == sp.counted) {
      sp.pending = false;
      return;
    }
    if (obs == SpaceState::Unknown || sp.counted == SpaceState::Unknown ||
        config_.debounce.count() == 0) {
      setSpace(r.device, obs, t);
      return;
    }
    if (sp.pending && sp.candidate == obs) {
      return;  // still waiting; the change began at candidate_since
    }
    sp.candidate = obs;
    sp.candidate_since = t;
    if (!sp.pending) {
      sp.pending = true;
      pending_.push_back(static_cast<uint32_t>(space_of_[r.device]));
    }
    return;
  }
  case 2: {
    if (now_ms_ < t) {
      commitDue(t);
      integrateTo(t);
    }
    if (has_energy_ && r.point == energy_ && r.quality == model::Quality::Good) {
      auto v = model::asNumber(r.value);
      if (!v) {
        return;
      }
      double& last = last_kwh_[r.device];
      if (!std::isnan(last)) {
        double step = *v - last;
        // A drop means the session counter restarted: it delivered *v since.
        double delivered = step >= 0 ? step : *v;
        if (delivered > 0) {
          addDay("energy_kwh_pile", dev.id, t, delivered);
        }
      }
      last = *v;
    } else if (has_state_ && r.point == state_ && r.quality == model::Quality::Good) {
      bool charging = lower(model::toText(r.value)) == "charging";
      if (charging && charging_[r.device] == 0) {
        addDay("sessions_pile", dev.id, t, 1);
      }
      charging_[r.device] = charging ? 1 : 0;
    }
    return;
  }
  case 3: {
    if (now_ms_ < t) {
      commitDue(t);
      integrateTo(t);
    }
    if (!has_power_ || r.point != power_w_) {
      return;
    }
    auto v = model::asNumber(r.value);
    int64_t& last_at = last_power_at_[r.device];
    double& last = last_power_[r.device];
    if (last_at != 0 && t > last_at && t - last_at <= config_.max_power_gap.count() && last > 0) {
      // The interval is credited to the day it began in.
      addDay("energy_kwh_shed", compound_->devices[dev.parent].id, last_at,
             last * static_cast<double>(t - last_at) / 3'600'000'000.0);
    }
    if (r.quality == model::Quality::Good && v) {
      last = std::max(0.0, *v);
      last_at = t;
    } else {
      last_at = 0;
    }
    return;
  }
  default:
    return;
  }
}

void Rollups::onAlertRaised(const std::string& rule, const std::string& device_id,
                            const std::string& grid, int64_t at_ms) {
  // Occupancy alerts carry their scope in the rule name ("level_full:B1"): the kind is the rule.
  std::string kind = rule.substr(0, rule.find(':'));
  addDay("alerts_kind", kind, at_ms, 1);
  addDay("alerts_grid", grid.empty() ? "-" : grid, at_ms, 1);
  const model::Device* d = compound_->device(device_id);
  if (d != nullptr) {
    const model::Device* shed = nullptr;
    if (d->type() == "ebike_shed") {
      shed = d;
    } else if (d->type() == "ebike_port" && d->parent != model::kNoDevice) {
      shed = &compound_->devices[d->parent];
    }
    if (shed != nullptr) {
      addDay("alerts_shed", shed->id, at_ms, 1);
    }
  }
}

std::vector<OccupancyRow> Rollups::takeOccupancyRows() {
  std::vector<OccupancyRow> out;
  out.swap(closed_);
  return out;
}

std::vector<DayRow> Rollups::takeDayRows() {
  std::vector<DayRow> out;
  out.reserve(dirty_days_.size());
  for (const auto& [k, v] : dirty_days_) {
    out.push_back(DayRow{std::get<0>(k), std::get<1>(k), std::get<2>(k), v});
  }
  dirty_days_.clear();
  // Only the last few days can still grow; older totals are on disk.
  if (days_.size() > 4096 && now_ms_ > 0) {
    std::string keep_from = dayOf(now_ms_ - 2 * kDayMs);
    for (auto it = days_.begin(); it != days_.end();) {
      it = std::get<0>(it->first) < keep_from ? days_.erase(it) : std::next(it);
    }
  }
  return out;
}

std::optional<storage::DurableWrite> Rollups::takeWrite() {
  auto occ = takeOccupancyRows();
  auto days = takeDayRows();
  std::string today = now_ms_ > 0 ? dayOf(now_ms_) : std::string();
  bool retention = !today.empty() && today != last_retention_day_;
  if (occ.empty() && days.empty() && !retention) {
    return std::nullopt;
  }
  int64_t occ_cutoff = 0;
  std::string day_cutoff;
  if (retention) {
    last_retention_day_ = today;
    occ_cutoff = now_ms_ - config_.hour_retention.count();
    day_cutoff = dayOf(now_ms_ - config_.day_retention.count());
  }
  size_t bytes = 64 + occ.size() * 96 + days.size() * 96;
  storage::DurableWrite w;
  w.bytes = bytes;
  w.apply = [occ = std::move(occ), days = std::move(days), retention, occ_cutoff,
             day_cutoff](storage::Database& db) {
    writeRows(db, occ, days);
    if (retention) {
      db.cached("DELETE FROM history_occupancy WHERE bucket_ms < ?").bind(1, occ_cutoff).run();
      db.cached("DELETE FROM history_day WHERE day < ?").bind(1, day_cutoff).run();
    }
  };
  return w;
}

void writeRows(storage::Database& db, const std::vector<OccupancyRow>& occ,
               const std::vector<DayRow>& days) {
  if (!occ.empty()) {
    auto& st = db.cached(
        "INSERT INTO history_occupancy(step_s, bucket_ms, scope, total, mean_occupied, "
        "peak_occupied, min_free, minutes_full) VALUES(?,?,?,?,?,?,?,?) "
        "ON CONFLICT(step_s, scope, bucket_ms) DO UPDATE SET total=excluded.total, "
        "mean_occupied=excluded.mean_occupied, peak_occupied=excluded.peak_occupied, "
        "min_free=excluded.min_free, minutes_full=excluded.minutes_full");
    for (const auto& r : occ) {
      st.bindAll(r.step_s, r.bucket_ms, r.scope, r.total, r.mean_occupied, r.peak_occupied,
                 r.min_free, r.minutes_full)
          .run();
    }
  }
  if (!days.empty()) {
    auto& st = db.cached("INSERT INTO history_day(day, metric, key, value) VALUES(?,?,?,?) "
                         "ON CONFLICT(metric, key, day) DO UPDATE SET value=excluded.value");
    for (const auto& r : days) {
      st.bind(1, r.day).bind(2, r.metric).bind(3, r.key).bind(4, r.value).run();
    }
  }
}

void Rollups::restoreDays(storage::Database& db) {
  // The newest two local days may still be growing.
  storage::Statement q = db.prepare(
      "SELECT day, metric, key, value FROM history_day WHERE day >= (SELECT MAX(day) FROM "
      "history_day WHERE metric LIKE 'energy%' OR metric LIKE 'sessions%' OR metric LIKE "
      "'alerts%') AND day IS NOT NULL");
  storage::Statement::Scope scope(q);
  while (q.step()) {
    days_[std::make_tuple(q.columnText(0), q.columnText(1), q.columnText(2))] =
        q.columnDouble(3);
  }
}

RebuildResult rebuildFrom(storage::Database& db, const HistoryConfig& config,
                          std::shared_ptr<const model::Compound> compound,
                          std::optional<int64_t> from_ms) {
  Rollups r(config, compound);
  const model::Compound& c = *compound;
  RebuildResult out;
  {
    storage::Statement q = db.prepare(
        "SELECT device, point, value, quality, ts_ms, ingest_ms FROM readings ORDER BY ts_ms, id");
    storage::Statement::Scope scope(q);
    while (q.step()) {
      model::Reading rd;
      rd.source_ms = q.columnInt(4);
      if (out.readings == 0 || rd.source_ms < out.oldest_ms) {
        out.oldest_ms = rd.source_ms;
      }
      out.newest_ms = std::max(out.newest_ms, rd.source_ms);
      ++out.readings;
      rd.device = c.deviceIndex(q.columnText(0));
      auto pid = c.pointId(q.columnText(1));
      if (rd.device == model::kNoDevice || !pid) {
        continue;
      }
      rd.point = *pid;
      rd.value = q.columnValue(2);
      // A boolean point is stored as 0/1.
      const model::PointDef* def = c.devices[rd.device].profile->point(rd.point);
      if (def != nullptr && def->type == model::PointType::Bool) {
        if (auto num = model::asNumber(rd.value)) {
          rd.value = model::Value(*num != 0);
        }
      }
      std::string ql = q.columnText(3);
      rd.quality = ql == "good" ? model::Quality::Good
                   : ql == "bad" ? model::Quality::Bad
                                 : model::Quality::Stale;
      rd.ingest_ms = q.columnInt(5);
      r.onReading(rd);
    }
  }
  bool alerts = db.scalarInt("SELECT count(*) FROM sqlite_master WHERE name='alerts'") > 0;
  if (alerts) {
    storage::Statement q =
        db.prepare("SELECT rule, device, COALESCE(grid, ''), raised_at FROM alerts");
    storage::Statement::Scope scope(q);
    while (q.step()) {
      r.onAlertRaised(q.columnText(0), q.columnText(1), q.columnText(2), q.columnInt(3));
      ++out.alerts;
    }
  }
  std::vector<OccupancyRow> occ = r.takeOccupancyRows();
  std::vector<DayRow> days = r.takeDayRows();
  if (from_ms) {
    // Day rows are named by their local day; "YYYY-MM-DD" strings order like the days.
    const std::string from_day = r.dayOf(*from_ms);
    const size_t before = occ.size() + days.size();
    std::erase_if(occ, [&](const OccupancyRow& o) { return o.bucket_ms < *from_ms; });
    std::erase_if(days, [&](const DayRow& d) { return d.day < from_day; });
    out.skipped_rows = static_cast<int64_t>(before - occ.size() - days.size());
  }
  out.occupancy_rows = static_cast<int64_t>(occ.size());
  out.day_rows = static_cast<int64_t>(days.size());
  storage::Transaction tx(db, storage::Durability::Process);
  writeRows(db, occ, days);
  tx.commit();
  return out;
}

int64_t rebuild(storage::Database& db, const HistoryConfig& config,
                std::shared_ptr<const model::Compound> compound) {
  return rebuildFrom(db, config, std::move(compound), std::nullopt).readings;
}

std::optional<int64_t> localMidnight(const std::string& day, int utc_offset_minutes) {
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  char tail = 0;
  if (day.size() != 10 || std::sscanf(day.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) != 3) {
    return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(m), std::chrono::day(d)};
  if (!ymd.ok()) {
    return std::nullopt;
  }
  const int64_t days = std::chrono::sys_days(ymd).time_since_epoch().count();
  return days * 86'400'000 - int64_t{utc_offset_minutes} * 60'000;
}

std::optional<int64_t> defaultRebuildFrom(storage::Database& db, const HistoryConfig& config) {
  if (db.scalarInt("SELECT count(*) FROM readings") == 0) {
    return std::nullopt;
  }
  const int64_t oldest = db.scalarInt("SELECT MIN(ts_ms) FROM readings");
  // The first local midnight at or after the oldest reading: the first whole day.
  constexpr int64_t kDayMs = 86'400'000;
  const int64_t offset = int64_t{config.utc_offset_minutes} * 60'000;
  const int64_t local = oldest + offset;
  const int64_t floor_day = (local >= 0 ? local : local - kDayMs + 1) / kDayMs * kDayMs;
  const int64_t first_whole = (floor_day == local ? floor_day : floor_day + kDayMs) - offset;
  storage::Statement older_occ =
      db.prepare("SELECT count(*) FROM history_occupancy WHERE bucket_ms < ?");
  older_occ.bind(1, first_whole);
  bool older = older_occ.step() && older_occ.columnInt(0) > 0;
  older_occ.reset();
  if (!older) {
    // first_whole is a local midnight: its UTC date, shifted by the offset, names the day.
    std::time_t t = static_cast<std::time_t>((first_whole + offset) / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char day[48];
    std::snprintf(day, sizeof day, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    storage::Statement older_day = db.prepare("SELECT count(*) FROM history_day WHERE day < ?");
    older_day.bind(1, std::string(day));
    older = older_day.step() && older_day.columnInt(0) > 0;
    older_day.reset();
  }
  return older ? std::optional<int64_t>(first_whole) : std::nullopt;
}

} // namespace hgj::history
