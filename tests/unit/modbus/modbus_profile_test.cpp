#include <catch2/catch.hpp>

#include "drivers/modbus/device_plan.h"
#include "drivers/modbus/modbus_config.h"
#include "drivers/profiles/modbus_profile.h"
#include "drivers/profiles/profile_loader.h"
#include "tests/unit/modbus/modbus_fixture.h"

using namespace hgj;
using namespace hgj::drivers::profiles;
using hgj::drivers::modbus::buildDevicePlan;
using hgj::test_modbus::loadProfile;
using hgj::test_modbus::loadProfileText;

namespace {

const char* const kShipped[] = {"eastron_sdm120",     "eastron_sdm630",
                                "chint_ddsu666",      "hgj_ebike_port_modbus",
                                "hgj_ebike_shed_m12", "garage_co_sensor",
                                "led_guidance_display", "abb_terra_ac"};

std::string problemsOf(const std::string& yaml, const std::string& child_yaml = "") {
  model::Compound c;
  if (!child_yaml.empty()) {
    loadProfileText(c, "child", child_yaml);
  }
  try {
    loadProfileText(c, "p", yaml);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

const char* const kMeterPoints = R"(
type: meter
transport: modbus
points:
  power_w: {type: number}
  relay: {type: bool, writable: true}
  name: {type: string}
)";

} // namespace

TEST_CASE("modbus profile: every shipped profile parses", "[modbus][profile]") {
  model::Compound c;
  for (const char* name : kShipped) {
    CAPTURE(name);
    model::Profile& p = loadProfile(c, name);
    if (std::string(name) == "hgj_ebike_port_modbus") {
      CHECK_FALSE(p.modbus);
      continue;
    }
    REQUIRE(p.modbus);
    for (const auto& r : hgj::drivers::profiles::modbusSpec(p)->registers) {
      CHECK(p.point(r.point_name) != nullptr);
      CHECK(c.pointName(r.point) == r.point_name);
    }
  }
}

TEST_CASE("modbus profile: the DDSU666 power register is scaled from kW to W",
          "[modbus][profile]") {
  model::Compound c;
  model::Profile& p = loadProfile(c, "chint_ddsu666");
  const RegisterDef* r = hgj::drivers::profiles::modbusSpec(p)->reg(*c.pointId("power_w"));
  REQUIRE(r != nullptr);
  CHECK(r->address == 0x2004);
  CHECK(r->table == RegisterTable::Holding);
  CHECK(r->type == RegisterType::F32);
  CHECK(r->scale == 1000.0);
}

TEST_CASE("modbus profile: the SDM120 map sits in input registers as ABCD floats",
          "[modbus][profile]") {
  model::Compound c;
  model::Profile& p = loadProfile(c, "eastron_sdm120");
  const RegisterDef* e = hgj::drivers::profiles::modbusSpec(p)->reg(*c.pointId("energy_kwh"));
  REQUIRE(e != nullptr);
  CHECK(e->address == 0x0156);
  CHECK(e->table == RegisterTable::Input);
  CHECK(e->order == ByteOrder::ABCD);
  CHECK(e->count == 2);
  CHECK(hgj::drivers::profiles::modbusSpec(p)->max_read_registers == 80);
}

TEST_CASE("modbus profile: unknown points are reported with a suggestion", "[modbus][profile]") {
  std::string err = problemsOf(std::string(kMeterPoints) + R"(
modbus:
  registers:
    - {point: power_ww, table: input, address: 0, type: f32}
)");
  CHECK_THAT(err, Catch::Contains("p.yaml:11: modbus.registers[0].point: unknown point"));
  CHECK_THAT(err, Catch::Contains("did you mean \"power_w\""));
}

TEST_CASE("modbus profile: unknown keys and bad values are reported where they are",
          "[modbus][profile]") {
  std::string err = problemsOf(std::string(kMeterPoints) + R"(
modbus:
  registers:
    - {point: power_w, table: input, adress: 0, type: f32}
    - {point: power_w, table: inputs, address: 0, type: f32}
    - {point: power_w, table: input, address: 70000, type: f32}
    - {point: power_w, table: input, address: 0, type: f33}
    - {point: power_w, table: input, address: 0, type: f32, order: ABDC}
  max_gaps: 3
)");
  CHECK_THAT(err, Catch::Contains("modbus.registers[0].adress: unknown key (did you mean \"address\"?)"));
  CHECK_THAT(err, Catch::Contains("modbus.registers[1].table: expected coil | discrete | holding | input"));
  CHECK_THAT(err, Catch::Contains("modbus.registers[2].address: out of range"));
  CHECK_THAT(err, Catch::Contains("modbus.registers[3].type: expected bool"));
  CHECK_THAT(err, Catch::Contains("modbus.registers[4].order: expected ABCD"));
  CHECK_THAT(err, Catch::Contains("modbus.max_gaps: unknown key (did you mean \"max_gap\"?)"));
}

TEST_CASE("modbus profile: types must fit their table and their point", "[modbus][profile]") {
  std::string err = problemsOf(std::string(kMeterPoints) + R"(
modbus:
  registers:
    - {point: power_w, table: coil, address: 0, type: f32}
    - {point: relay, table: input, address: 1, type: bool}
    - {point: name, table: holding, address: 2, type: string}
)");
  CHECK_THAT(err, Catch::Contains("registers[0].type: a coil holds single bits"));
  CHECK_THAT(err, Catch::Contains("registers[1].table: point relay is writable"));
  CHECK_THAT(err, Catch::Contains("registers[2].count: required for a string"));
  err = problemsOf(std::string(kMeterPoints) + R"(
modbus:
  registers:
    - {point: power_w, table: holding, address: 0, type: string, count: 2}
    - {point: name, table: holding, address: 4, type: u16}
    - {point: relay, table: holding, address: 9, type: bool, bit: 2}
)");
  CHECK_THAT(err, Catch::Contains("registers[0].type: point power_w is a number"));
  CHECK_THAT(err, Catch::Contains("registers[1].type: point name is a string"));
  CHECK_THAT(err, Catch::Contains("registers[2].bit: point relay is writable"));
}

TEST_CASE("modbus profile: masks and value maps are checked", "[modbus][profile]") {
  std::string err = problemsOf(std::string(kMeterPoints) + R"(
modbus:
  registers:
    - {point: power_w, table: input, address: 0, type: f32, mask: 0x7F}
    - {point: power_w, table: input, address: 2, type: u16, values: {1: on}}
    - {point: name, table: input, address: 4, type: u16, values: {1: on}}
)");
  CHECK_THAT(err, Catch::Contains("registers[0].mask: a mask applies to u16, u32 or u64"));
  CHECK_THAT(err, Catch::Contains("registers[1].type: point power_w is a number"));
  CHECK(err.find("registers[2]") == std::string::npos);
}

TEST_CASE("modbus profile: a point mapped twice is refused", "[modbus][profile]") {
  std::string err = problemsOf(std::string(kMeterPoints) + R"(
modbus:
  registers:
    - {point: power_w, table: input, address: 0, type: f32}
    - {point: power_w, table: input, address: 2, type: f32}
)");
  CHECK_THAT(err, Catch::Contains("registers[1].point: point power_w is mapped twice"));
}

TEST_CASE("modbus profile: blocks need children and the child's points", "[modbus][profile]") {
  std::string err = problemsOf(std::string(kMeterPoints) + R"(
modbus:
  blocks:
    - {base: 16, stride: 1, count: 4, registers: [{point: relay, table: coil, address: 0}]}
)");
  CHECK_THAT(err, Catch::Contains("modbus.blocks: blocks describe child devices"));
  const char* child = R"(
type: port
transport: modbus
points:
  relay: {type: bool, writable: true}
)";
  err = problemsOf(std::string(kMeterPoints) + R"(
children: {profile: child, id: "{parent}/P{n:02}"}
modbus:
  blocks:
    - {base: 16, stride: 1, count: 4, registers: [{point: rely, table: coil, address: 0}]}
    - {base: 65000, stride: 600, count: 4, registers: [{point: relay, table: coil, address: 0}]}
)",
                   child);
  CHECK_THAT(err, Catch::Contains("unknown point \"rely\" (not in the points of profile child)"));
  CHECK_THAT(err, Catch::Contains("modbus.blocks[1].count: child 4's relay runs past register 65535"));
}

TEST_CASE("modbus profile: blocks parsed before their child profile are checked later",
          "[modbus][profile]") {
  model::Compound c;
  model::Profile& shed = loadProfile(c, "hgj_ebike_shed_m12");
  REQUIRE(shed.modbus);
  CHECK_FALSE(hgj::drivers::profiles::modbusSpec(shed)->blocks[0].checked);
  core::Diagnostics missing;
  CHECK_FALSE(checkModbusBlocks(shed, c, missing));  // the child profile is still missing
  CHECK_THAT(missing.format(), Catch::Contains("hgj_ebike_shed_m12.yaml:50: "
                                               "modbus.blocks[0].registers[0].point: the blocks "
                                               "read children of profile \"hgj_ebike_port_modbus\""));
  loadProfile(c, "hgj_ebike_port_modbus");
  core::Diagnostics fine;
  CHECK(checkModbusBlocks(shed, c, fine));
  CHECK(fine.ok());
}

TEST_CASE("modbus profile: a 12-port shed expands into 12 child blocks in 5 reads",
          "[modbus][profile][plan]") {
  model::Compound c;
  loadProfile(c, "hgj_ebike_port_modbus");
  loadProfile(c, "hgj_ebike_shed_m12");
  test_modbus::addDevice(c, "M01", "hgj_ebike_shed_m12", test_modbus::binding("l", 1), 12);
  c.buildIndexes();
  auto plan = buildDevicePlan(c, *c.device("M01"));
  REQUIRE(plan.devices.size() == 13);
  CHECK(plan.values.size() == 5 + 12 * 8);
  // Port 7's relay coil is 0x10 + 6; its temperature 0x100 + 6 * 0x10 + 2.
  model::DeviceIndex p07 = c.deviceIndex("M01/P07");
  model::PointId relay = *c.pointId("relay");
  model::PointId temp = *c.pointId("temp_c");
  uint32_t relay_addr = 0;
  uint32_t temp_addr = 0;
  for (const auto& v : plan.values) {
    if (v.device == p07 && v.point == relay) {
      relay_addr = v.address;
    }
    if (v.device == p07 && v.point == temp) {
      temp_addr = v.address;
    }
  }
  CHECK(relay_addr == 0x16);
  CHECK(temp_addr == 0x162);
  // Coils (main + 12 ports) in one read, the smoke input in one, shed inputs in one, the ports'
  // 12 x 16 registers in two reads of at most 125.
  REQUIRE(plan.reads.size() == 5);
  CHECK(plan.reads[0].table == RegisterTable::Coil);
  CHECK(plan.reads[0].count == 0x1C);
  CHECK(plan.reads[1].table == RegisterTable::Discrete);
  CHECK(plan.reads[2].table == RegisterTable::Input);
  CHECK(plan.reads[2].count == 4);
  CHECK(plan.reads[3].address == 0x100);
  CHECK(plan.reads[3].count == 120);
  CHECK(plan.reads[4].address == 0x180);
  CHECK(plan.reads[4].count == 56);

  // Decoding port 7's temperature out of the second port read.
  std::vector<uint16_t> regs(125, 0);
  regs[0x162 - 0x100] = 655;  // 65.5 C
  std::vector<model::Reading> out;
  int bad = 0;
  drivers::modbus::decodeRead(plan, 3, std::span<const uint16_t>(regs.data(), 120), {}, 1000, out,
                              bad);
  CHECK(bad == 0);
  bool found = false;
  for (const auto& r : out) {
    if (r.device == p07 && r.point == temp) {
      found = true;
      CHECK(std::get<double>(r.value) == Approx(65.5));
    }
  }
  CHECK(found);
}

TEST_CASE("modbus profile: more ports than the blocks describe is a start-up error",
          "[modbus][profile]") {
  model::Compound c;
  loadProfile(c, "hgj_ebike_port_modbus");
  loadProfile(c, "hgj_ebike_shed_m12");
  test_modbus::addDevice(c, "M01", "hgj_ebike_shed_m12", test_modbus::binding("l", 1), 13);
  c.buildIndexes();
  CHECK_THROWS_WITH(buildDevicePlan(c, *c.device("M01")),
                    Catch::Contains("child M01/P13 is number 13"));
}

TEST_CASE("modbus profile: the SDM630 map is read in two requests", "[modbus][plan]") {
  model::Compound c;
  loadProfile(c, "eastron_sdm630");
  test_modbus::addDevice(c, "EM-01", "eastron_sdm630", test_modbus::binding("l", 1));
  c.buildIndexes();
  auto plan = buildDevicePlan(c, *c.device("EM-01"));
  REQUIRE(plan.reads.size() == 2);
  CHECK(plan.reads[0].address == 0);
  CHECK(plan.reads[0].count == 0x4C);
  CHECK(plan.reads[1].address == 0x156);
}

TEST_CASE("modbus config: lines parse with defaults and errors are located",
          "[modbus][config]") {
  core::Diagnostics diag;
  auto root = core::loadYamlText(R"(
modbus:
  write_min_interval: 2s
  lines:
    - {id: garage, type: tcp, host: 10.0.0.5, port: 5020, timeout: 300ms}
    - {id: rs485-1, type: rtu, device: /dev/ttyS1, baud: 19200, parity: even, rs485: true}
)",
                                 "gateway.yaml", diag);
  REQUIRE(root);
  auto cfg = drivers::modbus::parseModbusConfig(root->child("modbus"));
  INFO(diag.format());
  REQUIRE(diag.ok());
  REQUIRE(cfg.lines.size() == 2);
  CHECK(cfg.write_min_interval_ms == 2000);
  CHECK(cfg.lines[0].kind == drivers::modbus::LineKind::Tcp);
  CHECK(cfg.lines[0].port == 5020);
  CHECK(cfg.lines[0].timeout_ms == 300);
  CHECK(cfg.lines[0].reconnect_min_ms == 500);
  CHECK(cfg.lines[1].kind == drivers::modbus::LineKind::Rtu);
  CHECK(cfg.lines[1].parity == 'E');
  CHECK(cfg.lines[1].baud == 19200);
  CHECK(cfg.lines[1].rs485);
  CHECK(cfg.line("garage") == &cfg.lines[0]);

  core::Diagnostics bad;
  auto broken = core::loadYamlText(R"(
modbus:
  lines:
    - {id: a, type: tcp, baud: 9600, prot: 1}
    - {id: a, type: rtu}
    - {id: c, type: udp}
)",
                                   "gateway.yaml", bad);
  REQUIRE(broken);
  drivers::modbus::parseModbusConfig(broken->child("modbus"));
  std::string text = bad.format();
  CHECK_THAT(text, Catch::Contains("gateway.yaml:4: modbus.lines[0].prot: unknown key (did you mean \"port\"?)"));
  CHECK_THAT(text, Catch::Contains("modbus.lines[0].baud: only for type: rtu lines"));
  CHECK_THAT(text, Catch::Contains("modbus.lines[1].device: required"));
  CHECK_THAT(text, Catch::Contains("modbus.lines[1].id: duplicate line id \"a\""));
  CHECK_THAT(text, Catch::Contains("modbus.lines[2].type: expected tcp | rtu"));

  core::Diagnostics none;
  auto empty = core::loadYamlText("site: {id: x}\n", "gateway.yaml", none);
  auto defaults = drivers::modbus::parseModbusConfig(empty->child("modbus"));
  CHECK(none.ok());
  CHECK(defaults.lines.empty());
}

TEST_CASE("modbus profile: the shipped profiles pass the gateway's profile loader",
          "[modbus][profile]") {
  model::Compound c;
  core::Diagnostics diag;
  drivers::profiles::loadProfileDir(std::string(HGJ_SOURCE_DIR) + "/conf/profiles", c, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  for (auto& p : c.profiles) {
    if (p->transport != "modbus" || p->name == "hgj_ebike_port_modbus") {
      continue;
    }
    if (!p->modbus) {
      // The loader does not call parseModbusSpec yet: parse the section here.
      auto root = core::loadYamlFile(p->source, diag);
      REQUIRE(root);
      CHECK(parseModbusSpec(root->child("modbus"), c, *p));
    }
    CHECK(p->modbus);
  }
  for (const char* name : kShipped) {
    CHECK(c.profile(name) != nullptr);
  }
  INFO(diag.format());
  CHECK(diag.ok());
}
