#include <catch2/catch.hpp>

#include "gateway/history/rollups.h"

using hgj::history::HistoryConfig;
using hgj::history::Rollups;
using hgj::model::Value;

namespace {

constexpr int64_t kT0 = 1'764'000'000'000 - 1'764'000'000'000 % 3'600'000;  // an hour start

struct Rig {
  std::shared_ptr<hgj::model::Compound> c = std::make_shared<hgj::model::Compound>();
  hgj::model::Profile space_p;
  hgj::model::Profile pile_p;
  std::unique_ptr<Rollups> r;

  Rig() {
    auto occ = c->internPoint("occupied");
    auto state = c->internPoint("state");
    auto energy = c->internPoint("energy_kwh");
    c->internPoint("power_w");
    space_p.device_type = "parking_sensor";
    space_p.points = {{occ, "occupied", hgj::model::PointType::Bool}};
    pile_p.device_type = "ev_pile";
    pile_p.points = {{state, "state", hgj::model::PointType::String},
                     {energy, "energy_kwh", hgj::model::PointType::Number}};
    for (int i = 1; i <= 2; ++i) {
      hgj::model::Device d;
      d.id = "P-B2-000" + std::to_string(i);
      d.profile = &space_p;
      d.location.level = "B2";
      d.location.zone = "A";
      d.category = "visitor";
      d.index = static_cast<hgj::model::DeviceIndex>(c->devices.size());
      c->devices.push_back(d);
    }
    hgj::model::Device p;
    p.id = "EV-01";
    p.profile = &pile_p;
    p.index = static_cast<hgj::model::DeviceIndex>(c->devices.size());
    c->devices.push_back(p);
    c->buildIndexes();
    HistoryConfig cfg;
    cfg.debounce = std::chrono::seconds(5);
    r = std::make_unique<Rollups>(cfg, c);
  }
  void feed(const std::string& id, const std::string& point, Value v, int64_t t) {
    hgj::model::Reading rd;
    rd.device = c->deviceIndex(id);
    rd.point = *c->pointId(point);
    rd.value = std::move(v);
    rd.source_ms = t;
    r->onReading(rd);
  }
  const hgj::history::OccupancyRow* row(const std::vector<hgj::history::OccupancyRow>& rows,
                                        int step, const std::string& scope, int64_t at) {
    for (const auto& x : rows) {
      if (x.step_s == step && x.scope == scope && x.bucket_ms == at) {
        return &x;
      }
    }
    return nullptr;
  }
};

} // namespace

TEST_CASE("history rollups: time-weighted mean, peak and minutes full, and flaps shorter than the "
          "debounce are not counted",
          "[history][unit]") {
  Rig rig;
  rig.feed("P-B2-0001", "occupied", Value(false), kT0);
  rig.feed("P-B2-0002", "occupied", Value(false), kT0);
  // Space 1 occupied from minute 15 (+5 s debounce) to the end; a 2 s flap of space 2 at
  // minute 20 does not count; space 2 occupied from minute 45 (+5 s): full for 15 min - 5 s.
  rig.feed("P-B2-0001", "occupied", Value(true), kT0 + 15 * 60'000);
  rig.feed("P-B2-0002", "occupied", Value(true), kT0 + 20 * 60'000);
  rig.feed("P-B2-0002", "occupied", Value(false), kT0 + 20 * 60'000 + 2000);
  rig.feed("P-B2-0002", "occupied", Value(true), kT0 + 45 * 60'000);
  rig.r->advanceTo(kT0 + 60 * 60'000);
  auto rows = rig.r->takeOccupancyRows();
  const auto* h = rig.row(rows, 3600, "level:B2", kT0);
  REQUIRE(h != nullptr);
  const double occ1 = 45 * 60'000 - 5000;  // space 1's occupied ms in the hour
  const double occ2 = 15 * 60'000 - 5000;
  CHECK(h->mean_occupied == Approx((occ1 + occ2) / 3'600'000.0).epsilon(1e-12));
  CHECK(h->peak_occupied == 2);
  CHECK(h->min_free == 0);
  CHECK(h->minutes_full == Approx((15 * 60'000 - 5000) / 60'000.0).epsilon(1e-12));
  const auto* q2 = rig.row(rows, 900, "category:visitor", kT0 + 15 * 60'000);
  REQUIRE(q2 != nullptr);
  CHECK(q2->peak_occupied == 1);  // the flap never counted
  CHECK(rig.row(rows, 900, "zone:B2/A", kT0 + 45 * 60'000) != nullptr);
  CHECK(rig.row(rows, 3600, "site", kT0)->total == 2);
}

TEST_CASE("history rollups: pile energy by steps (a drop is a new session), sessions, alerts by "
          "kind without the occupancy scope",
          "[history][unit]") {
  Rig rig;
  const int64_t t = kT0;
  rig.feed("EV-01", "state", Value(std::string("Charging")), t);
  rig.feed("EV-01", "energy_kwh", Value(1.0), t);
  rig.feed("EV-01", "energy_kwh", Value(4.5), t + 60'000);
  rig.feed("EV-01", "state", Value(std::string("Available")), t + 120'000);
  rig.feed("EV-01", "state", Value(std::string("Charging")), t + 180'000);
  rig.feed("EV-01", "energy_kwh", Value(2.0), t + 240'000);  // new session: +2
  rig.r->onAlertRaised("level_full:B2", "B2", "", t);
  rig.r->onAlertRaised("device_offline", "EV-01", "G5", t);
  double energy = 0;
  double sessions = 0;
  int kinds = 0;
  for (const auto& d : rig.r->takeDayRows()) {
    if (d.metric == "energy_kwh_pile") {
      energy += d.value;
    } else if (d.metric == "sessions_pile") {
      sessions += d.value;
    } else if (d.metric == "alerts_kind") {
      CHECK((d.key == "level_full" || d.key == "device_offline"));
      ++kinds;
    }
  }
  CHECK(energy == Approx(5.5));
  CHECK(sessions == 2);
  CHECK(kinds == 2);
  CHECK(rig.r->dayOf(1'764'000'000'000) == "2025-11-25");  // 00:00 local (+08:00) that day
}

TEST_CASE("history rollups: a device clock off by a year or a day ahead neither floods the "
          "history with empty buckets nor pushes it into the future",
          "[history][unit]") {
  Rig rig;
  // The soak found it: one reading stamped a year ago came first; walking quarter by quarter to
  // now would have made ~35,000 rows per scope.
  hgj::model::Reading old;
  old.device = rig.c->deviceIndex("P-B2-0001");
  old.point = *rig.c->pointId("occupied");
  old.value = Value(true);
  old.source_ms = kT0 - 365LL * 86'400'000;
  old.ingest_ms = kT0;
  rig.r->onReading(old);
  rig.feed("P-B2-0002", "occupied", Value(false), kT0);
  CHECK(rig.r->takeOccupancyRows().size() <= 4 * 5 + 5);  // at most one hour's rows per scope
  // A clock a day ahead counts at the box's time (ingest + 1 min at most).
  hgj::model::Reading ahead = old;
  ahead.source_ms = kT0 + 86'000'000;
  ahead.ingest_ms = kT0 + 1000;
  rig.r->onReading(ahead);
  CHECK(rig.r->time() <= kT0 + 61'000);
}

TEST_CASE("history rebuild: local midnights of days, and where a rebuild begins by default",
          "[history]") {
  using hgj::history::localMidnight;
  // 2026-12-05 00:00 at +08:00 is 2026-12-04T16:00Z.
  CHECK(localMidnight("2026-12-05", 480) == 1'796'400'000'000LL);
  CHECK(localMidnight("1970-01-01", 0) == 0);
  CHECK(localMidnight("2026-12-05", -300) == 1'796'446'800'000LL);  // 05:00Z
  CHECK_FALSE(localMidnight("2026-02-30", 480));
  CHECK_FALSE(localMidnight("2026-13-01", 480));
  CHECK_FALSE(localMidnight("2026-12-5", 480));
  CHECK_FALSE(localMidnight("2026-12-05x", 480));

  hgj::storage::Database db(":memory:");
  db.exec("CREATE TABLE readings(id INTEGER PRIMARY KEY, device TEXT, point TEXT, value, "
          "quality TEXT, ts_ms INTEGER, ingest_ms INTEGER)");
  hgj::history::createHistorySchema(db, 0);
  hgj::history::HistoryConfig cfg;  // +08:00
  const int64_t day = *localMidnight("2026-12-05", 480);
  CHECK_FALSE(hgj::history::defaultRebuildFrom(db, cfg));  // no readings: everything
  // Readings from 10:00 on 12-05: nothing stored before the next midnight, so everything.
  db.exec("INSERT INTO readings(device, point, value, quality, ts_ms, ingest_ms) VALUES "
          "('P-1', 'occupied', 1, 'good', " + std::to_string(day + 36'000'000) + ", 0)");
  CHECK_FALSE(hgj::history::defaultRebuildFrom(db, cfg));
  // History of 12-05 computed while its morning's readings existed: keep that day.
  db.exec("INSERT INTO history_day(day, metric, key, value) VALUES ('2026-12-05', "
          "'energy_kwh_pile', 'EV-01', 3)");
  CHECK(hgj::history::defaultRebuildFrom(db, cfg) == day + 86'400'000);
  db.exec("DELETE FROM history_day");
  db.exec("INSERT INTO history_occupancy(step_s, bucket_ms, scope, total, mean_occupied, "
          "peak_occupied, min_free, minutes_full) VALUES (3600, " + std::to_string(day) +
          ", 'site', 1, 0, 0, 1, 0)");
  CHECK(hgj::history::defaultRebuildFrom(db, cfg) == day + 86'400'000);
  // The readings begin exactly at a midnight: that day is whole.
  db.exec("UPDATE readings SET ts_ms = " + std::to_string(day));
  CHECK(hgj::history::defaultRebuildFrom(db, cfg) == std::nullopt);
}
