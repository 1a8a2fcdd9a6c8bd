#include <fstream>

#include <catch2/catch.hpp>

#include "drivers/modbus/modbus_config.h"
#include "gateway/config/config.h"
#include "tests/integration/modbus/modbus_rig.h"
#include "tests/support/test_support.h"

using namespace hgj;
using namespace hgj::test_modbus;
using drivers::profiles::RegisterTable;
using std::chrono::milliseconds;

namespace {

} // namespace

TEST_CASE("modbus config: the driver polls a compound loaded by the gateway's config loader",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  for (int u = 1; u <= 3; ++u) {
    slave->addUnit(u);
  }
  slave->start();
  test::TempDir dir;
  hgj::test::writeFile(dir.file("gateway.yaml"), R"(site: {id: test-site, name: 测试}
include:
  grids: grids.yaml
  devices: devices.yaml
  rules: rules.yaml
  alerts: alerts.yaml
  profiles: )" + std::string(HGJ_SOURCE_DIR) + R"(/conf/profiles
modbus:
  write_min_interval: 200ms
  lines:
    - {id: shed-tcp, type: tcp, host: 127.0.0.1, port: )" + std::to_string(slave->port()) +
                                         R"(, timeout: 200ms, reconnect_min: 50ms}
)");
  hgj::test::writeFile(dir.file("grids.yaml"), R"(grids:
  - id: G1
    name: 测试网格
    staff:
      - {name: 张伟, phone: "13800000001"}
)");
  hgj::test::writeFile(dir.file("devices.yaml"), R"(devices:
  - {id: "M{n:02}", range: [1, 2], profile: hgj_ebike_shed_m12, grid: G1, ports: 12,
     modbus: {line: shed-tcp, unit: 1, poll_interval: 100ms, timeout: 200ms}}
  - {id: DSP-01, profile: led_guidance_display, grid: G1,
     modbus: {line: shed-tcp, unit: 3, poll_interval: 100ms}}
)");
  hgj::test::writeFile(dir.file("rules.yaml"), "rules: []\n");
  hgj::test::writeFile(dir.file("alerts.yaml"), "alerts: {}\n");

  core::Diagnostics diag;
  auto cfg = config::loadConfig(dir.file("gateway.yaml"), {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  model::Compound& compound = *cfg.compound;
  const drivers::modbus::ModbusConfig& modbus = cfg.modbus;
  REQUIRE(modbus.lines.size() == 1);
  CHECK(modbus.write_min_interval_ms == 200);

  // The range gives M01 unit 1 and M02 unit 2.
  const model::Profile& m12 = *compound.profile("hgj_ebike_shed_m12");
  REQUIRE(compound.device("M02")->modbus.unit_id == 2);
  REQUIRE(compound.device("M02/P12") != nullptr);
  slave->setPoint(2, m12, "temp_c", model::Value(61.5), 12);
  slave->setPoint(1, m12, "relay", model::Value(true), 3);

  CollectingSink sink;
  core::MetricsRegistry metrics;
  drivers::modbus::ModbusDriver driver(modbus, compound, sink, metrics,
                                       core::SystemClock::instance());
  driver.start();
  auto p12 = compound.deviceIndex("M02/P12");
  auto temp = *compound.pointId("temp_c");
  REQUIRE(test::waitFor([&] { return sink.last(p12, temp) == model::Value(61.5); },
                    milliseconds(3000)));
  drivers::WriteRequest w;
  w.id = 1;
  w.device = compound.deviceIndex("M01/P03");
  w.point = *compound.pointId("relay");
  w.value = model::Value(false);
  driver.write(w);
  REQUIRE(test::waitFor([&] { return !sink.writeResults().empty(); }, milliseconds(2000)));
  CHECK(sink.writeResults().front().ok);
  CHECK_FALSE(slave->getBit(1, RegisterTable::Coil, 0x12));
  CHECK(driver.handles(*compound.device("M02/P12")));
  driver.stop();
}

TEST_CASE("modbus config: every Modbus device of the example compound can be polled",
          "[modbus][integration]") {
  core::Diagnostics diag;
  auto cfg = config::loadConfig(std::string(HGJ_SOURCE_DIR) + "/conf/gateway.yaml", {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  CollectingSink sink;
  core::MetricsRegistry metrics;
  // Building the driver computes every device's request plan (and throws on a mismatch between
  // devices and profiles); it does not touch the network until start().
  drivers::modbus::ModbusDriver driver(cfg.modbus, *cfg.compound, sink, metrics,
                                       core::SystemClock::instance());
  size_t handled = 0;
  for (const auto& d : cfg.compound->devices) {
    if (d.profile->transport == "modbus") {
      CHECK(driver.handles(d));
      ++handled;
    }
  }
  CHECK(handled >= 4 * 13);
}
