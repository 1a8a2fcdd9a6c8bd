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
  storage::StorageConfig scfg;
  scfg.path = dir.file("gateway.db");
  bool alerts_first = GENERATE(false, true);

  std::unique_ptr<AlertManager> manager;
  if (alerts_first) {
    manager = std::make_unique<AlertManager>(cfg, compound, dir.file("gateway.db"), clock, metrics, listener);
  }
  storage::Store store(scfg, compound, metrics, clock);
  store.open();
  store.start();
  if (!alerts_first) {
    manager = std::make_unique<AlertManager>(cfg, compound, dir.file("gateway.db"), clock, metrics, listener);
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
  CHECK(count(dir.file("gateway.db"), "SELECT COUNT(*) FROM readings") == 200);
  CHECK(count(dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts WHERE state='active'") == 1);
  CHECK(count(dir.file("gateway.db"), "SELECT COUNT(*) FROM schema_versions") >= 2);
}

namespace {

struct StoreEnv {
  TempDir dir;
  std::shared_ptr<model::Compound> compound = makeCompound({}, {});
  core::MetricsRegistry metrics;
  core::SystemClock& clock = core::SystemClock::instance();
  RecordingListener listener;
  AlertsConfig cfg = defaultAlertsConfig();
  storage::StorageConfig scfg;
  std::unique_ptr<storage::Store> store;

  explicit StoreEnv(int64_t commit_interval_ms = 100) {
    compound->internPoint("temp_c");
    scfg.path = dir.file("gateway.db");
    scfg.commit_interval_ms = commit_interval_ms;
    store = std::make_unique<storage::Store>(scfg, compound, metrics, clock);
    store->open();
    store->start();
  }
  model::Reading reading() const {
    model::Reading r;
    r.device = compound->deviceIndex("S03/P07");
    r.point = *compound->pointId("temp_c");
    r.value = 75.0;
    r.source_ms = clock.wallMs();
    r.ingest_ms = r.source_ms;
    return r;
  }
  AlertRaise overTemp() const {
    AlertRaise a;
    a.rule = "port_over_temp";
    a.device = compound->deviceIndex("S03/P07");
    a.severity = Severity::Critical;
    a.message = "S03/P07 温度 75°C";
    a.value = 75.0;
    return a;
  }
};

/// Whether another connection can take the write lock right now.
bool writeLockFree(const std::string& path) {
  sqlite3* probe = nullptr;
  sqlite3_open(path.c_str(), &probe);
  sqlite3_busy_timeout(probe, 0);
  bool free = sqlite3_exec(probe, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  sqlite3_exec(probe, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(probe);
  return free;
}

} // namespace

TEST_CASE("alerts storage: the readings writer holds no lock between commits, and an alert "
          "written through it does not wait for its commit tick",
          "[alerts][storage]") {
  StoreEnv env(10'000);  // readings are committed every 10 s
  AlertManager manager(env.cfg, env.compound, env.dir.file("gateway.db"), *env.store, env.clock, env.metrics,
                       env.listener);
  REQUIRE(env.store->submitReadings(std::vector<model::Reading>(10, env.reading())));
  // Buffered in memory, not in an open transaction: any other writer gets the lock.
  REQUIRE(waitFor([&] { return env.store->queuedRows() == 0; }));
  CHECK(writeLockFree(env.dir.file("gateway.db")));

  manager.beginBatch();
  REQUIRE(manager.raise(env.overTemp()).ok);
  REQUIRE(manager.commitBatch());
  // Committed at once with the readings it found buffered, long before the 10 s tick.
  CHECK(waitFor([&] {
    return count(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts WHERE state='active'") == 1;
  }, 5s));
  CHECK(count(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM readings") == 10);
  env.store->stop();
}

TEST_CASE("alerts storage: raise() never waits for the database, with the write lock held "
          "elsewhere the alert is announced and queued for the robots, and its rows land once "
          "the lock is released",
          "[alerts][storage]") {
  StoreEnv env;
  AlertManager manager(env.cfg, env.compound, env.dir.file("gateway.db"), *env.store, env.clock, env.metrics,
                       env.listener);
  sqlite3* holder = nullptr;
  REQUIRE(sqlite3_open(env.dir.file("gateway.db").c_str(), &holder) == SQLITE_OK);
  REQUIRE(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  // If raise() waited for the lock this thread (which holds it) would never get past it.
  auto res = manager.raise(env.overTemp());
  REQUIRE(res.ok);
  REQUIRE(env.listener.events.size() == 1);
  CHECK(env.listener.events[0].kind == AlertEventKind::Raised);
  CHECK(count(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts") == 0);
  CHECK(env.store->durableBacklog() > 0);

  REQUIRE(sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(holder);
  CHECK(waitFor([&] { return count(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts") == 1; }, 10s));
  CHECK(waitFor([&] { return env.store->durableBacklog() == 0; }, 10s));
  CHECK(count(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_events") == 1);
  env.store->stop();
}
