// Device health that tells the truth (issue 14; RELIABILITY rows 12 and 14 against the
// daemon): a Modbus device refusing every read is `faulted` with its reason in the API,
// /healthz and the failed-poll metric, never "online with stale points"; with Modbus polling
// off no Modbus device (nor its ports) is reported offline.
#include <csignal>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

/// hgj-sim serving the example compound's Modbus lines on ports chosen free now, with a
/// scenario of the given events.
struct ModbusSim {
  ModbusSim(const hgj::test::TempDir& dir, const std::string& broker_url,
            const std::string& events) {
    const std::string scenario = dir.file("scenario.yaml");
    std::ofstream(scenario) << "gateway: " << hgj::test::sourcePath("conf/gateway.yaml")
                            << "\nspeed: 1\nrealistic: false\nevents:\n"
                            << events;
    std::vector<std::string> argv{hgj::test::binary("tools/sim/hgj-sim"), "-c", scenario,
                                  "--set", "mqtt.url=" + broker_url};
    for (const char* line : {"shed-bus", "meter-bus", "garage-bus"}) {
      ports[line] = hgj::test::freePort();
      argv.push_back("--set");
      argv.push_back(std::string("modbus.lines.") + line + "=" + std::to_string(ports[line]));
    }
    process = std::make_unique<hgj::test::Process>(argv, dir.file("sim.log"));
    for (const auto& [line, port] : ports) {
      const int p = port;
      REQUIRE(hgj::test::waitFor([&] { return hgj::test::portOpen(p); }, 20s));
    }
  }
  std::vector<std::string> gatewaySets() const {
    std::vector<std::string> s{"modbus.enabled=true"};
    for (const auto& [line, port] : ports) {
      s.push_back("modbus.lines." + line + ".port=" + std::to_string(port));
    }
    return s;
  }
  std::map<std::string, int> ports;
  std::unique_ptr<hgj::test::Process> process;
};

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
  ModbusSim sim(dir, broker.url(),
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
  auto at = metrics.find("hgj_modbus_device_failed_polls_total{");
  bool counted = false;
  while (at != std::string::npos) {
    auto eol = metrics.find('\n', at);
    std::string line = metrics.substr(at, eol - at);
    if (line.find("\"M01\"") != std::string::npos) {
      counted = std::stod(line.substr(line.rfind(' ') + 1)) >= 1;
    }
    at = metrics.find("hgj_modbus_device_failed_polls_total{", eol);
  }
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
