// Device health that tells the truth (issue 14; docs/reliability.md rows 12 and 14 against the
// daemon): a Modbus device refusing every read is `faulted` with its reason in the API,
// /healthz and the failed-poll metric, never "online with stale points"; with Modbus polling
// off no Modbus device (nor its ports) is reported offline.
#include <csignal>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/faults/modbus/modbus_sim.h"
#include "tests/support/test_support.h"

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

json getJson(hgj::test::GatewayProcess& gw, const std::string& path) {
  auto [code, body] = gw.get(path);
  return code == 200 ? json::parse(body, nullptr, false) : json();
}

} // namespace

TEST_CASE("faults modbus: a device answering exception 02 to every read is faulted with the "
          "reason in the API, /healthz and the failed-poll metric, while the others stay online",
          "[faults][modbus]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  hgj::test::ModbusSim sim(dir, broker.url(),
                "  - {at: 0s, type: modbus_exception, device: M01, code: 2, for: 30m}\n");
  auto gw = hgj::test::startGateway(broker.url(), dir.file("hgj.db"), dir.file("gw.log"),
                                    sim.gatewaySets());
  json m01;
  REQUIRE(hgj::test::waitFor(
      [&] {
        m01 = getJson(*gw, "/api/v1/devices/M01");
        return m01.is_object() && m01.value("faulted", false);
      },
      30s));
  INFO(m01.dump());
  CHECK(m01["online"] == false);
  CHECK(m01["fault"].get<std::string>().find("exception 02 (illegal data address)") !=
        std::string::npos);
  CHECK(m01["fault"].get<std::string>().find("hgj_ebike_shed_m12") != std::string::npos);
  // Its neighbour on the same line answers: online, not faulted.
  REQUIRE(hgj::test::waitFor(
      [&] { return getJson(*gw, "/api/v1/devices/M02").value("online", false); }, 30s));
  CHECK(getJson(*gw, "/api/v1/devices/M02")["faulted"] == false);
  auto health = getJson(*gw, "/healthz");
  INFO(health.dump());
  CHECK(health["status"] == "degraded");
  CHECK(health["modbus"].get<std::string>().find("faulted") != std::string::npos);
  auto [code, metrics] = gw->get("/metrics");
  REQUIRE(code == 200);
  const bool counted =
      hgj::test::deviceMetric(metrics, "hgj_modbus_device_failed_polls_total", "M01") >= 1;
  CHECK(counted);
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}

TEST_CASE("faults modbus: with modbus.enabled false no Modbus device or port goes offline",
          "[faults][modbus]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  const std::string db = dir.file("hgj.db");
  // The shed controllers' expected interval is 30 s; a minute covers two of them.
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"), {});
  // A reading of an MQTT port proves the pipeline runs its checks meanwhile.
  hgj::test::TestClient pub(broker.url());
  const auto until = std::chrono::steady_clock::now() + 65s;
  while (std::chrono::steady_clock::now() < until) {
    pub.publish("compound/ebike/S03/P07/telemetry",
                R"({"current_a":0.0,"power_w":0,"temp_c":25.0})");
    std::this_thread::sleep_for(1s);  // pacing: one report a second, as a port reports
  }
  auto offline = hgj::test::queryRows(
      db, "SELECT DISTINCT device FROM alerts WHERE rule='device_offline' AND "
          "(device LIKE 'M0%' OR device LIKE 'EVM-%' OR device LIKE 'CO-%' OR "
          "device LIKE 'FAN-%' OR device LIKE 'DISP-%')");
  INFO(gw->output());
  CHECK(offline.empty());
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}

TEST_CASE("faults modbus: a device answering busy (06) to everything is retried before each "
          "failed poll, then offline, not faulted",
          "[faults][modbus]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  hgj::test::ModbusSim sim(dir, broker.url(),
                           "  - {at: 0s, type: modbus_exception, device: M02, code: 6, for: 30m}\n");
  auto gw = hgj::test::startGateway(broker.url(), dir.file("hgj.db"), dir.file("gw.log"),
                                    sim.gatewaySets());
  REQUIRE(hgj::test::waitFor(
      [&] {
        const std::string metrics = gw->get("/metrics").second;
        return hgj::test::deviceMetric(metrics, "hgj_modbus_device_failed_polls_total", "M02") >=
               2;
      },
      60s));
  const std::string metrics = gw->get("/metrics").second;
  const double busy =
      hgj::test::deviceMetric(metrics, "hgj_modbus_device_errors_total", "M02", "kind=\"busy\"");
  const double failed =
      hgj::test::deviceMetric(metrics, "hgj_modbus_device_failed_polls_total", "M02");
  INFO(busy << " busy answers, " << failed << " failed polls");
  // Every failed poll was tried more than once: a busy device is retried, not given up at once.
  CHECK(busy > failed);
  json m02 = getJson(*gw, "/api/v1/devices/M02");
  INFO(m02.dump());
  CHECK(m02["online"] == false);
  CHECK(m02["faulted"] == false);
  CHECK(getJson(*gw, "/api/v1/devices/M01")["online"] == true);
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}
