#include <string>

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include "tests/integration/sim/sim_fixture.h"
#include "tests/support/test_support.h"
#include "tools/sim/compound_source.h"
#include "tools/sim/simulator.h"

using namespace hgj::sim;
using namespace hgj::sim::test;

namespace {

/// One number from a query on the gateway's database (0 while it does not exist yet).
double queryNumber(const std::string& db, const std::string& sql) {
  sqlite3* h = nullptr;
  double out = 0;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(h, 1000);
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      out = sqlite3_column_double(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return out;
}

} // namespace

TEST_CASE("sim + gateway: scripted events of the example compound reach the gateway's store",
          "[sim][e2e]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  std::string db = dir.file("hgj.db");
  auto gateway = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"),
                                         {"modbus.enabled=true"});

  auto scenario = scenarioFromText("gateway: " + std::string(HGJ_SOURCE_DIR) +
                                   "/conf/gateway.yaml\n" + R"(
speed: 10
realistic: false
timestamps: wall
mqtt: {client_id: hgj-sim-e2e, url: )" + broker.url() + R"(}
behaviour:
  parking: {heartbeat: 30s}
events:
  - {at: 0s, type: plug_in, device: S03/P07, energy_wh: 900, power_w: 240}
  - {at: 20s, type: port_overheat, device: S03/P07, temp_c: 75, ramp: 10s}
  - {at: 20s, type: smoke, device: S05}
  - {at: 20s, type: fuel_car, device: P-B2-0440}
  - {at: 20s, type: silent, device: P-B1-0042}
)");
  scenario.modbus.lines = gateway->modbusPorts();
  auto view = loadGateway(scenario.gateway);
  adoptGatewayLines(scenario, view);
  Simulator sim(std::move(scenario), view.compound);
  sim.start();
  int64_t t0 = sim.scenarioNowMs();
  auto reach = [&](int64_t ms) {
    return hgj::test::waitFor([&] { return sim.scenarioNowMs() >= t0 + ms; }, std::chrono::seconds(30));
  };

  // Every played device reaches the store, with the simulator's values.
  CHECK(hgj::test::waitFor([&] {
    return queryNumber(db, "SELECT COUNT(DISTINCT device) FROM readings") >= 1400;
  }, std::chrono::seconds(30)));
  CHECK(hgj::test::waitFor([&] {
    return queryNumber(db, "SELECT MAX(value) FROM readings WHERE device='S03/P07' AND "
                           "point='power_w'") > 200;
  }));

  // The port heats to 75 C.
  CHECK(hgj::test::waitFor([&] {
    return queryNumber(db, "SELECT MAX(value) FROM readings WHERE device='S03/P07' AND "
                           "point='temp_c'") >= 74.5;
  }, std::chrono::seconds(20)));
  // Smoke in S05.
  CHECK(hgj::test::waitFor([&] {
    return queryNumber(db, "SELECT COUNT(*) FROM readings WHERE device='S05' AND "
                           "point='smoke' AND value=1") >= 1;
  }));
  // The fuel car: its space is taken and its pile (EV-05) is not charging.
  CHECK(hgj::test::waitFor([&] {
    return queryNumber(db, "SELECT COUNT(*) FROM point_state WHERE device='P-B2-0440' AND "
                           "point='occupied' AND value=1") == 1;
  }, std::chrono::seconds(20)));
  CHECK(queryNumber(db, "SELECT COUNT(*) FROM readings WHERE device='EV-05' AND "
                        "point='state' AND value='Charging'") == 0);
  // The silent sensor: nothing new from it while its neighbour keeps reporting.
  REQUIRE(reach(25'000));
  auto silent_before = queryNumber(db, "SELECT COUNT(*) FROM readings WHERE device='P-B1-0042'");
  auto other_before = queryNumber(db, "SELECT COUNT(*) FROM readings WHERE device='P-B1-0043'");
  REQUIRE(reach(100'000));
  CHECK(hgj::test::waitFor([&] {
    return queryNumber(db, "SELECT COUNT(*) FROM readings WHERE device='P-B1-0043'") >
           other_before;
  }));
  CHECK(queryNumber(db, "SELECT COUNT(*) FROM readings WHERE device='P-B1-0042'") ==
        silent_before);
  // The shipped safety rule (above 60 C held 10 s) cuts the hot port: the gateway publishes the
  // /set command, the simulated port opens its relay and its telemetry confirms it.
  CHECK(hgj::test::waitFor([&] {
    return queryNumber(db, "SELECT COUNT(*) FROM readings WHERE device='S03/P07' AND "
                           "point='relay' AND value=0") >= 1;
  }, std::chrono::seconds(30)));
  sim.inspect([](const World& w) {
    CHECK(w.relay("S03/P07") == false);
    CHECK(w.portPower("S03/P07") == 0.0);
  });
  sim.stop();
}
