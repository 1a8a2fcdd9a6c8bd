// Space categories end to end (issue 17): the real daemon on a real mosquitto, a gate display
// served over Modbus TCP by the simulator's slave, the uplink pointed at the same broker. A
// visitor space changes: the API's category counts, the display's free_visitor register and the
// upstream parking summary all show it, once its debounce has passed.
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"
#include "tools/sim/modbus_slave.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kDisplayUnit = 30;
constexpr uint16_t kFreeTotal = 0x0000;
constexpr uint16_t kFreeVisitor = 0x0030;

/// A compound of 4 visitor spaces at the gate (level G) and 3 leased ones (B1), and the gate
/// display showing free_total and free_visitor.
std::string writeConfig(const fs::path& dir, int modbus_port) {
  fs::create_directories(dir / "profiles");
  for (const auto& e : fs::directory_iterator(hgj::test::sourcePath("conf/profiles"))) {
    fs::copy_file(e.path(), dir / "profiles" / e.path().filename());
  }
  hgj::test::writeFile(dir / "profiles" / "gate_display.yaml", R"(type: display
transport: modbus
description: gate display, visitor spaces
expected_interval: 60s
points:
  free_total:   {type: number, writable: true, min: 0, max: 65535}
  free_visitor: {type: number, writable: true, min: 0, max: 65535}
modbus:
  registers:
    - {point: free_total, table: holding, address: 0x0000}
    - {point: free_visitor, table: holding, address: 0x0030}
)");
  hgj::test::writeFile(dir / "gateway.yaml", R"(site: {id: cat-e2e, name: 分类测试小区}
parking:
  levels: [{id: G, name: 地面访客区}, {id: B1, name: 地下一层}]
include:
  grids: grids.yaml
  devices: devices.yaml
  rules: rules.yaml
  alerts: alerts.yaml
  profiles: profiles
modbus:
  lines:
    - {id: gate-bus, type: tcp, host: 127.0.0.1, port: )" +
                                    std::to_string(modbus_port) + R"(}
)");
  hgj::test::writeFile(dir / "grids.yaml", R"(grids:
  - id: G1
    name: 测试网格
    staff: [{name: 张伟, phone: "13800000001"}]
    channels: [upstream]
)");
  hgj::test::writeFile(dir / "alerts.yaml", "alerts:\n  channels:\n    - {id: upstream, type: upstream}\n");
  hgj::test::writeFile(dir / "devices.yaml", R"(devices:
  - {id: "P-G-{n:04}", range: [1, 4], profile: parking_sensor_mqtt, grid: G1, category: visitor,
     location: {level: G, zone: E, space: "{n:04}"}}
  - {id: "P-B1-{n:04}", range: [1, 3], profile: parking_sensor_mqtt, grid: G1,
     location: {level: B1, zone: A, space: "{n:04}"}}
  - {id: DISP-GATE, profile: gate_display, grid: G1,
     modbus: {line: gate-bus, unit: 30, poll_interval: 200ms}, location: {level: G}}
)");
  hgj::test::writeFile(dir / "rules.yaml", R"(rules: []
occupancy:
  debounce: 1s
  display_type: display
  display_min_interval: 100ms
)");
  return (dir / "gateway.yaml").string();
}

json visitorOf(const json& parking) {
  for (const auto& c : parking.value("categories", json::array())) {
    if (c.value("category", "") == "visitor") {
      return c;
    }
  }
  return json();
}

} // namespace

TEST_CASE("categories end to end: a visitor space change reaches the API's category counts, the gate "
          "display and the upstream summary",
          "[sim][categories][e2e]") {
  hgj::test::TempDir dir;
  hgj::test::Broker broker;
  auto display = hgj::sim::ModbusSlave::tcp("127.0.0.1", 0);
  display->addUnit(kDisplayUnit, hgj::sim::UnitLayout::of({}, {}, {0, 0x0040}, {}));
  display->start();
  // Not a count the gateway could write: a register still at it was never written.
  display->setRegister(kDisplayUnit, hgj::drivers::profiles::RegisterTable::Holding, kFreeVisitor, 0xEEEE);
  const std::string config = writeConfig(fs::path(dir.path()) / "conf", display->port());

  hgj::test::TestClient upstream(broker.url(), "cat-e2e-upstream");
  upstream.subscribe("hgj/cat-e2e/summary/parking");
  auto gw = hgj::test::startGateway(
      broker.url(), dir.path() + "/hgj.db", dir.path() + "/gateway.log",
      {"modbus.enabled=true", "uplink.enabled=true", "uplink.url=" + broker.url(),
       "uplink.summaries.parking=1s",
       // spawnGateway moves loopback lines to free ports unless told the one to use.
       "modbus.lines.gate-bus.port=" + std::to_string(display->port())},
      config);

  hgj::test::TestClient sensors(broker.url(), "cat-e2e-sensors");
  auto report = [&](const std::string& id, bool occupied) {
    sensors.publish("compound/parking/" + id + "/state",
                    std::string("{\"occupied\":") + (occupied ? "true" : "false") + "}");
  };
  for (int n = 1; n <= 4; ++n) {
    report("P-G-000" + std::to_string(n), false);
  }
  for (int n = 1; n <= 3; ++n) {
    report("P-B1-000" + std::to_string(n), true);
  }
  auto parking = [&] {
    auto [status, body] = gw->get("/api/v1/parking");
    return status == 200 ? json::parse(body, nullptr, false) : json();
  };
  auto displayShows = [&](uint16_t reg) {
    return display->getRegister(kDisplayUnit, hgj::drivers::profiles::RegisterTable::Holding, reg);
  };
  auto upstreamVisitorFree = [&](int free) {
    for (const auto& m : upstream.messages()) {
      json j = json::parse(m.payload, nullptr, false);
      json v = j.is_object() ? visitorOf(j) : json();
      if (v.is_object() && v.value("free", -1) == free && v.value("total", -1) == 4) {
        return true;
      }
    }
    return false;
  };

  // Both groups of reports counted (the gate's and B1's arrive separately).
  REQUIRE(hgj::test::waitFor(
      [&] {
        json p = parking();
        return visitorOf(p).value("free", -1) == 4 && p.value("occupied", -1) == 3;
      },
      std::chrono::seconds(20)));
  json p0 = parking();
  CHECK(p0["free"] == 4);
  CHECK(p0["occupied"] == 3);
  CHECK(visitorOf(p0)["total"] == 4);
  CHECK(visitorOf(p0)["name"] == "临时车位");
  CHECK(p0["site_name"] == "分类测试小区");
  CHECK(p0["levels"][0]["level"] == "G");  // the configured order
  CHECK(p0["levels"][0]["name"] == "地面访客区");
  CHECK(hgj::test::waitFor([&] { return displayShows(kFreeVisitor) == 4; },
                           std::chrono::seconds(20)));
  CHECK(hgj::test::waitFor([&] { return upstreamVisitorFree(4); }, std::chrono::seconds(20)));

  // A visitor parks at the gate.
  report("P-G-0002", true);
  REQUIRE(hgj::test::waitFor([&] { return visitorOf(parking()).value("free", -1) == 3; },
                             std::chrono::seconds(20)));
  json p1 = parking();
  CHECK(visitorOf(p1)["occupied"] == 1);
  CHECK(p1["free"] == 3);
  // The leased spaces did not move.
  for (const auto& c : p1["categories"]) {
    if (c["category"] == "leased") {
      CHECK(c["occupied"] == 3);
      CHECK(c["free"] == 0);
    }
  }
  CHECK(hgj::test::waitFor([&] { return displayShows(kFreeVisitor) == 3; },
                           std::chrono::seconds(20)));
  // Each display output is its own write, each held to display_min_interval since its last
  // one: the total may follow the visitor count by a tick, so it is waited for, not sampled.
  CHECK(hgj::test::waitFor([&] { return displayShows(kFreeTotal) == 3; },
                           std::chrono::seconds(20)));
  CHECK(hgj::test::waitFor([&] { return upstreamVisitorFree(3); }, std::chrono::seconds(20)));
  auto [status, body] = gw->get("/api/v1/parking/spaces?category=visitor");
  REQUIRE(status == 200);
  json spaces = json::parse(body);
  CHECK(spaces["count"] == 4);
  bool found = false;
  for (const auto& s : spaces["spaces"]) {
    if (s["id"] == "P-G-0002") {
      found = true;
      CHECK(s["state"] == "occupied");
      CHECK(s["sensor"] == "occupied");
      CHECK(s["category"] == "visitor");
    }
  }
  CHECK(found);
  display->stop();
}
