// docs/reliability.md row 8: another process holds the database. A writer holding the write
// lock past `storage.busy_timeout` makes commits fail: the daemon keeps its readings (bounded)
// and durable records in memory, keeps cutting ports and sending alerts, says it is degraded,
// and writes everything once the lock is released. A long reader blocks nothing.
#include <string>

#include <catch2/catch.hpp>
#include <signal.h>

#include "tests/faults/storage/storage_fixture.h"
#include "tests/support/fault_disk.h"

using namespace std::chrono_literals;
using hgj::test::DatabaseHolder;
using hgj::test::queryInt;
using hgj::test::waitFor;
using namespace hgj::test::storage;

namespace {

size_t countContaining(const std::vector<hgj::test::TestClient::Message>& msgs,
                       const std::string& text) {
  size_t n = 0;
  for (const auto& m : msgs) {
    n += m.payload.find(text) != std::string::npos ? 1 : 0;
  }
  return n;
}

long long temps(const std::string& db, const std::string& device) {
  return queryInt(db, "SELECT count(*) FROM readings WHERE device='" + device +
                          "' AND point='temp_c'");
}

} // namespace

TEST_CASE("faults storage: a second writer holding the lock past busy_timeout delays the records, "
          "not the cut, the alert or a single reading",
          "[faults][storage][row8]") {
  hgj::test::TempDir dir;
  hgj::test::Broker local(false);
  hgj::test::Broker upstream(false);
  RobotServer robots;
  const std::string db = dir.file("hgj.db");
  hgj::test::TestClient up(upstream.url(), "locked-upstream");
  up.subscribe("hgj/+/alerts");
  hgj::test::TestClient device(local.url(), "locked-devices");
  device.subscribe("compound/ebike/S07/+/set");

  auto gw = hgj::test::startGateway(
      local.url(), db, dir.file("gw.log"),
      {"uplink.enabled=true", "uplink.url=" + upstream.url(), "storage.busy_timeout=1s",
       "include.alerts=" + alertsFileFor(dir, robots.port())});
  device.publish("compound/ebike/S01/P03/telemetry", portReport(30));
  REQUIRE(waitFor([&] { return temps(db, "S01/P03") == 1; }));

  double failures_before = metric(*gw, "hgj_storage_commit_failures_total");
  {
    DatabaseHolder holder(db, DatabaseHolder::Mode::Exclusive);
    // Readings while the writer cannot write: kept in memory (bounded), not dropped.
    constexpr int kReadings = 50;
    for (int i = 1; i <= kReadings; ++i) {
      device.publish("compound/ebike/S01/P03/telemetry", portReport(30 + i * 0.01));
    }
    REQUIRE(waitFor(
        [&] { return metric(*gw, "hgj_storage_commit_failures_total") > failures_before; }, 20s));
    CHECK(waitFor(
        [&] {
          auto h = health(*gw);
          return h.is_object() && h["status"] == "degraded" &&
                 h["storage"].get<std::string>().find("locked") != std::string::npos;
        },
        20s));
    // Smoke in shed S07 (grid G3) while the lock is held: cut, upstream, robots.
    device.publish("compound/ebike/S07/status", R"({"smoke":true,"temp_c":38})");
    CHECK(waitFor([&] { return countContaining(device.messages(), "\"relay\":false") >= 10; },
                  20s));
    CHECK(waitFor([&] { return countContaining(up.messages(), "shed_smoke") >= 1; }, 20s));
    CHECK(waitFor([&] { return robots.count("S07") >= 1; }, 20s));
    CHECK(temps(db, "S01/P03") == 1);
    CHECK(metric(*gw, "hgj_storage_durable_backlog") > 0);
    CHECK(gw->running());
    CHECK(holder.release());
  }
  // Released: everything lands, nothing was dropped.
  CHECK(waitFor([&] { return temps(db, "S01/P03") == 1 + 50; }, 20s));
  CHECK(metric(*gw, "hgj_readings_dropped_total") == 0);
  CHECK(waitFor(
      [&] {
        return queryInt(db, "SELECT count(*) FROM alerts WHERE rule='shed_smoke' AND "
                            "device='S07'") == 1 &&
               queryInt(db, "SELECT count(*) FROM latches WHERE device LIKE 'S07/P%'") == 10 &&
               queryInt(db, "SELECT count(*) FROM alerts WHERE rule='storage_write_failed'") == 1;
      },
      20s));
  CHECK(waitFor([&] { return metric(*gw, "hgj_storage_durable_backlog") == 0; }, 20s));
  CHECK(waitFor(
      [&] {
        auto h = health(*gw);
        return h.is_object() && h["storage"] == "ok";
      },
      20s));
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
}

TEST_CASE("faults storage: a long reader blocks no commit and costs no reading",
          "[faults][storage][row8]") {
  hgj::test::TempDir dir;
  hgj::test::Broker local(false);
  const std::string db = dir.file("hgj.db");
  hgj::test::TestClient device(local.url(), "reader-devices");
  auto gw = hgj::test::startGateway(local.url(), db, dir.file("gw.log"));
  device.publish("compound/ebike/S01/P04/telemetry", portReport(30));
  REQUIRE(waitFor([&] { return temps(db, "S01/P04") == 1; }));

  double failures_before = metric(*gw, "hgj_storage_commit_failures_total");
  {
    DatabaseHolder reader(db, DatabaseHolder::Mode::Reader);
    for (int i = 1; i <= 200; ++i) {
      device.publish("compound/ebike/S01/P04/telemetry", portReport(30 + i * 0.01));
    }
    // Committed while the reader holds its snapshot (seen by a new connection).
    CHECK(waitFor([&] { return temps(db, "S01/P04") == 201; }, 20s));
    CHECK(metric(*gw, "hgj_storage_commit_failures_total") == failures_before);
    CHECK(health(*gw)["storage"] == "ok");
    CHECK(reader.release());
  }
  CHECK(metric(*gw, "hgj_readings_dropped_total") == 0);
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
  CHECK(hgj::test::queryRows(db, "PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}

TEST_CASE("faults storage: behind a held lock the readings kept are bounded by queue_max_rows, "
          "and every reading is either stored or counted as dropped",
          "[faults][storage][row8]") {
  hgj::test::TempDir dir;
  hgj::test::Broker local(false);
  const std::string db = dir.file("hgj.db");
  hgj::test::TestClient device(local.url(), "bounded-devices");
  auto gw = hgj::test::startGateway(local.url(), db, dir.file("gw.log"),
                                    {"storage.busy_timeout=200ms", "storage.queue_max_rows=1000"});
  device.publish("compound/ebike/S01/P05/telemetry", portReport(30));
  REQUIRE(waitFor([&] { return temps(db, "S01/P05") == 1; }));
  const long long per_message =
      queryInt(db, "SELECT count(*) FROM readings WHERE device='S01/P05'");
  REQUIRE(per_message > 0);

  constexpr int kMessages = 1000;  // several times queue_max_rows readings
  {
    DatabaseHolder holder(db, DatabaseHolder::Mode::Exclusive);
    for (int i = 1; i <= kMessages; ++i) {
      device.publish("compound/ebike/S01/P05/telemetry", portReport(30 + i * 0.001));
    }
    REQUIRE(waitFor([&] { return metric(*gw, "hgj_readings_dropped_total") > 0; }, 30s));
    // queue_max_rows, plus one pipeline batch (batch_max 1024 messages), which is let through
    // when nothing else is queued.
    CHECK(metric(*gw, "hgj_storage_queue_rows") <= 1000 + per_message * 1024);
    CHECK(gw->running());
    CHECK(holder.release());
  }
  const double total = static_cast<double>(per_message) * (1 + kMessages);
  CHECK(waitFor(
      [&] {
        return metric(*gw, "hgj_readings_stored_total") +
                   metric(*gw, "hgj_readings_dropped_total") ==
               total;
      },
      30s));
  INFO("stored " << metric(*gw, "hgj_readings_stored_total") << ", dropped "
                 << metric(*gw, "hgj_readings_dropped_total"));
  CHECK(queryInt(db, "SELECT count(*) FROM readings WHERE device='S01/P05'") ==
        static_cast<long long>(metric(*gw, "hgj_readings_stored_total")));
  // What was kept is the bound's worth at least: the writer did not give up on everything.
  CHECK(queryInt(db, "SELECT count(*) FROM readings WHERE device='S01/P05'") >= 1000);
  gw->signal(SIGTERM);
  CHECK(gw->wait() == 0);
}
