// kill -9 of the daemon in the middle of a rule's hold and of a held timer: after the restart
// the hold continues from where it was (not from the restart) and a latch set before the kill is
// still in force.
#include <catch2/catch.hpp>

#include "tests/faults/safety/safety_site.h"
#include "tools/sim/world.h"

using namespace std::chrono_literals;
using hgj::safety_test::Site;
using hgj::safety_test::SiteOptions;
using hgj::test::waitFor;

namespace {

long long wallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

TEST_CASE("faults safety: kill -9 during an 8 s hold: after the restart the hold continues and "
          "the cut's latch survives another kill",
          "[faults][safety][daemon][sim][restart]") {
  Site site(SiteOptions{.port_hold = "8s"});
  site.startGateway();
  site.startSim(R"(
  - {at: 0s, type: plug_in, device: M01/P05, energy_wh: 900, power_w: 240}
  - {at: 2s, type: port_overheat, device: M01/P05, temp_c: 75, ramp: 0s}
)");
  auto hot = [&](const char* agg) {
    return site.q(std::string("SELECT ") + agg + "(ingest_ms) FROM readings WHERE "
                  "device='M01/P05' AND point='temp_c' AND value > 60");
  };
  REQUIRE(waitFor([&] { return hot("min") > 0; }, 30s));
  long long first_hot = hot("min");
  // Half the hold has passed (the gateway's own polls show it): kill it.
  REQUIRE(waitFor([&] { return hot("max") - first_hot >= 4'000; }, 20s));
  site.killGateway();
  CHECK(site.q("SELECT count(*) FROM actuations WHERE device='M01/P05'") == 0);
  site.startGateway();
  long long ready = wallNowMs();
  REQUIRE(waitFor([&] {
    return site.q("SELECT count(*) FROM actuations WHERE device='M01/P05' AND "
                  "origin='rule:port_over_temperature'") == 1;
  }, 20s));
  long long cut = site.q("SELECT ts_ms FROM actuations WHERE device='M01/P05'");
  INFO("first hot " << first_hot << ", restarted " << ready << ", cut " << cut);
  CHECK(cut - first_hot >= 8'000);
  // A hold started afresh would cut 8 s after the restart at the earliest.
  CHECK(cut - ready < 5'000);
  REQUIRE(waitFor([&] {
    return site.q("SELECT count(*) FROM latches WHERE device='M01/P05'") == 1;
  }, 10s));
  REQUIRE(waitFor([&] {
    return site.q("SELECT count(*) FROM point_state WHERE device='M01/P05' AND point='relay' "
                  "AND value=0") == 1;
  }, 10s));

  // Killed again: the latch is restored, nobody re-enables the port without an override.
  site.killGateway();
  site.startGateway();
  auto [status, body] = site.write("M01/P05", "relay", {{"value", true}});
  INFO(body.dump());
  CHECK(status == 409);
  CHECK(body.dump().find("cut by safety rule port_over_temperature") != std::string::npos);
  site.sim->inspect([](const hgj::sim::World& w) { CHECK(w.relay("M01/P05") == false); });
  site.stopGateway();
}

TEST_CASE("faults safety: kill -9 during a held timer (zombie_vehicle, 8 s here, 7 d shipped): "
          "the timer runs on from the space's first report",
          "[faults][safety][daemon][restart]") {
  Site site(SiteOptions{.zombie_hold = "8s"});
  site.startGateway();
  hgj::test::TestClient sensor(site.broker.url());
  long long parked = wallNowMs();
  sensor.publish("compound/parking/P-01/state",
                 nlohmann::json{{"occupied", true}, {"ts", parked}}.dump());
  REQUIRE(waitFor([&] {
    return site.q("SELECT count(*) FROM point_state WHERE device='P-01' AND point='occupied' "
                  "AND value=1") == 1;
  }));
  // Half the timer has passed: kill it (observed on the wall clock the timer runs on).
  REQUIRE(waitFor([&] { return wallNowMs() - parked >= 4'000; }, 10s));
  site.killGateway();
  site.startGateway();
  long long ready = wallNowMs();
  // A restored state waits for the device to speak again before rules act on it; the sensor's
  // next heartbeat says the same car is still there, and the timer runs from when it parked.
  sensor.publish("compound/parking/P-01/state",
                 nlohmann::json{{"occupied", true}, {"ts", wallNowMs()}}.dump());
  if (!waitFor([&] {
        return site.q("SELECT count(*) FROM alerts WHERE rule='zombie_vehicle' AND "
                      "device='P-01'") == 1;
      }, 20s)) {
    FAIL(site.gw->output());
  }
  long long raised = site.q("SELECT raised_at FROM alerts WHERE rule='zombie_vehicle'");
  INFO("parked " << parked << ", restarted " << ready << ", raised " << raised);
  CHECK(raised - parked >= 8'000);
  CHECK(raised - ready < 5'000);
  site.stopGateway();
}
