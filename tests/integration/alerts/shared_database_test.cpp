#include <catch2/catch.hpp>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/alerts/alert_manager.h"
#include "gateway/storage/store.h"
#include "tests/unit/alerts/alerts_fixture.h"

using namespace hgj;
using namespace hgj::alerts;
using namespace hgj::alerts::testing;
using namespace std::chrono_literals;

namespace {

int64_t count(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

} // namespace

TEST_CASE("alerts storage: the alert manager and the readings store share one database file in "
          "either start order",
          "[alerts][storage]") {
  TempDir dir;
  auto compound = makeCompound({}, {});
  compound->internPoint("temp_c");
  core::MetricsRegistry metrics;
  core::SystemClock& clock = core::SystemClock::instance();
  RecordingListener listener;
  AlertsConfig cfg = defaultAlertsConfig();
  config::StorageConfig scfg;
  scfg.path = dir.db();
  bool alerts_first = GENERATE(false, true);

  std::unique_ptr<AlertManager> manager;
  if (alerts_first) {
    manager = std::make_unique<AlertManager>(cfg, compound, dir.db(), clock, metrics, listener);
  }
  storage::Store store(scfg, compound, metrics, clock);
  store.open();
  store.start();
  if (!alerts_first) {
    manager = std::make_unique<AlertManager>(cfg, compound, dir.db(), clock, metrics, listener);
  }
  model::Reading r;
  r.device = compound->deviceIndex("S03/P07");
  r.point = *compound->pointId("temp_c");
  r.value = 75.0;
  r.source_ms = clock.wallMs();
  r.ingest_ms = r.source_ms;
  std::vector<model::Reading> batch(200, r);
  REQUIRE(store.submitReadings(std::move(batch)));
  AlertRaise a;
  a.rule = "port_over_temp";
  a.device = r.device;
  a.severity = Severity::Critical;
  a.message = "S03/P07 温度 75°C";
  a.value = 75.0;
  REQUIRE(manager->raise(a).ok);
  REQUIRE(store.flush(5s));
  store.stop();
  CHECK(count(dir.db(), "SELECT COUNT(*) FROM readings") == 200);
  CHECK(count(dir.db(), "SELECT COUNT(*) FROM alerts WHERE state='active'") == 1);
  CHECK(count(dir.db(), "SELECT COUNT(*) FROM schema_versions") >= 2);
}

TEST_CASE("alerts storage: with the store's flush as the before-write hook an alert commits "
          "without waiting for the store's commit tick",
          "[alerts][storage]") {
  TempDir dir;
  auto compound = makeCompound({}, {});
  compound->internPoint("temp_c");
  core::MetricsRegistry metrics;
  core::SystemClock& clock = core::SystemClock::instance();
  RecordingListener listener;
  AlertsConfig cfg = defaultAlertsConfig();
  config::StorageConfig scfg;
  scfg.path = dir.db();
  scfg.commit_interval_ms = 10'000;  // the store holds its transaction open for 10 s
  storage::Store store(scfg, compound, metrics, clock);
  store.open();
  store.start();
  AlertManager manager(cfg, compound, dir.db(), clock, metrics, listener);
  manager.setBeforeWrite([&] { store.flush(2s); });

  model::Reading r;
  r.device = compound->deviceIndex("S03/P07");
  r.point = *compound->pointId("temp_c");
  r.value = 75.0;
  r.source_ms = clock.wallMs();
  r.ingest_ms = r.source_ms;
  REQUIRE(store.submitReadings(std::vector<model::Reading>(10, r)));
  // Wait until the store's open transaction holds the write lock.
  sqlite3* probe = nullptr;
  REQUIRE(sqlite3_open(dir.db().c_str(), &probe) == SQLITE_OK);
  REQUIRE(waitUntil([&] {
    if (sqlite3_exec(probe, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_BUSY) {
      return true;
    }
    sqlite3_exec(probe, "ROLLBACK", nullptr, nullptr, nullptr);
    return false;
  }));
  sqlite3_close(probe);

  AlertRaise a;
  a.rule = "port_over_temp";
  a.device = r.device;
  a.severity = Severity::Critical;
  a.message = "S03/P07 温度 75°C";
  a.value = 75.0;
  const auto t0 = std::chrono::steady_clock::now();
  manager.beginBatch();
  REQUIRE(manager.raise(a).ok);
  REQUIRE(manager.commitBatch());
  // Without the hook the alert would wait for the store's tick (10 s) or its busy timeout (5 s).
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  CHECK(count(dir.db(), "SELECT COUNT(*) FROM alerts WHERE state='active'") == 1);
  CHECK(count(dir.db(), "SELECT COUNT(*) FROM readings") == 10);
  store.stop();
}
