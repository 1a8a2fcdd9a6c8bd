#include <cerrno>
#include <cstring>

#include <catch2/catch.hpp>
#include <modbus/modbus.h>

#include "tests/integration/sim/sim_fixture.h"
#include "tools/sim/register_layouts.h"
#include "tools/sim/simulator.h"

using namespace hgj::sim;
using namespace hgj::sim::test;
using nlohmann::json;

namespace {

constexpr int64_t kStart = 1'795'744'800'000;  // 2026-11-27T10:00:00+08:00

/// A scenario on the small compound: scripted behaviour only unless `realistic`, frequent
/// reports, every Modbus line on a free port.
Scenario scenario(const std::string& url, double speed, const std::string& events,
                  const std::string& behaviour = "", bool realistic = false) {
  static int n = 0;
  std::string yaml = "speed: " + std::to_string(speed) + "\nseed: 3\n" +
                     "start: \"2026-11-27T10:00:00+08:00\"\ntick: 20ms\n" +
                     "realistic: " + (realistic ? "true" : "false") + "\n" +
                     "mqtt:\n  url: " + url + "\n  client_id: sim-test-" + std::to_string(++n) +
                     "\nmodbus:\n  lines: {sheds: 0, garage: 0}\n" +
                     "behaviour:\n" +
                     (behaviour.empty() ? std::string(
                                              "  parking: {heartbeat: 10s, flaps_per_day: 0}\n"
                                              "  ev: {report: 10s}\n"
                                              "  ebike: {report: 10s, shed_report: 10s}\n"
                                              "  co: {report: 10s}\n")
                                        : behaviour) +
                     "events:\n" + (events.empty() ? "  []\n" : events);
  return scenarioFromText(yaml);
}

/// A libmodbus client of one unit on a simulator line.
class ModbusClient {
public:
  ModbusClient(int port, int unit) : ctx_(modbus_new_tcp("127.0.0.1", port)) {
    modbus_set_response_timeout(ctx_, 0, 300'000);
    modbus_set_slave(ctx_, unit);
    REQUIRE(modbus_connect(ctx_) == 0);
  }
  ~ModbusClient() {
    modbus_close(ctx_);
    modbus_free(ctx_);
  }
  /// One input register, or -1 with errno.
  int input(int addr) {
    uint16_t v = 0;
    if (modbus_read_input_registers(ctx_, addr, 1, &v) != 1) {
      last_errno = errno;
      modbus_flush(ctx_);
      return -1;
    }
    return v;
  }
  /// float32, high word first (decoded here, independent of the server's encoder).
  float floatAbcd(int addr) {
    uint16_t v[2] = {0, 0};
    REQUIRE(modbus_read_input_registers(ctx_, addr, 2, v) == 2);
    uint32_t bits = (static_cast<uint32_t>(v[0]) << 16) | v[1];
    float f = 0;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }
  /// One holding register, or -1 with errno.
  int holding(int addr) {
    uint16_t v = 0;
    if (modbus_read_registers(ctx_, addr, 1, &v) != 1) {
      last_errno = errno;
      modbus_flush(ctx_);
      return -1;
    }
    return v;
  }
  int coil(int addr) {
    uint8_t b = 0;
    return modbus_read_bits(ctx_, addr, 1, &b) == 1 ? b : -1;
  }
  int discrete(int addr) {
    uint8_t b = 0;
    return modbus_read_input_bits(ctx_, addr, 1, &b) == 1 ? b : -1;
  }
  bool writeCoil(int addr, bool on) { return modbus_write_bit(ctx_, addr, on ? 1 : 0) == 1; }
  bool writeRegisters(int addr, const std::vector<uint16_t>& v) {
    return modbus_write_registers(ctx_, addr, static_cast<int>(v.size()), v.data()) ==
           static_cast<int>(v.size());
  }
  int last_errno = 0;

private:
  modbus_t* ctx_;
};

int portReg(int port, int field) { return shed::kPortBase + (port - 1) * shed::kPortStride + field; }

struct Rig {
  hgj::test::Broker broker{false};
  Recorder rec{broker.url()};
  std::unique_ptr<Simulator> sim;

  void start(Scenario s) {
    sim = std::make_unique<Simulator>(std::move(s), smallCompound());
    sim->start();
    REQUIRE(waitFor([&] { return sim->mqttConnected(); }));
  }
  /// Waits until scenario time has passed `ms` after the start.
  bool reach(int64_t ms, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    return waitFor([&] { return sim->scenarioNowMs() >= kStart + ms; }, timeout);
  }
};

} // namespace

TEST_CASE("sim events: a port heats to 75 C over MQTT and over Modbus", "[sim][mqtt][modbus]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 5s, type: port_overheat, device: S01/P02, temp_c: 75, ramp: 10s}
  - {at: 5s, type: port_overheat, device: M01/P02, temp_c: 75, ramp: 0s}
)"));
  CHECK(rig.rec.waitFor("compound/ebike/S01/P02/telemetry", [](const json& j) {
    return j["temp_c"].get<double>() < 40 && j["relay"] == true;
  }));
  CHECK(rig.rec.waitFor("compound/ebike/S01/P02/telemetry",
                        [](const json& j) { return j["temp_c"].get<double>() >= 74.5; }));
  // The other ports stay cool.
  for (const auto& m : rig.rec.on("compound/ebike/S01/P01/telemetry")) {
    CHECK(m.json()["temp_c"].get<double>() < 40);
  }
  ModbusClient mb(rig.sim->modbusPort("sheds"), 1);
  CHECK(waitFor([&] { return mb.input(portReg(2, shed::kTemp)) >= 745; }));
  CHECK(mb.input(portReg(1, shed::kTemp)) < 400);
}

TEST_CASE("sim events: smoke in a shed shows in its status, its detector and the Modbus "
          "controller",
          "[sim][mqtt][modbus]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 5s, type: smoke, device: S01, for: 20s}
  - {at: 5s, type: smoke, device: SD-S01}
  - {at: 5s, type: smoke, device: M01}
)"));
  CHECK(rig.rec.waitFor("compound/ebike/S01/status", [](const json& j) {
    return j["smoke"] == false && j.contains("temp_c") && j["ts"].get<int64_t>() >= kStart;
  }));
  CHECK(rig.rec.waitFor("compound/ebike/S01/status", [](const json& j) {
    return j["smoke"] == true && j["ts"].get<int64_t>() >= kStart + 5'000;
  }));
  CHECK(rig.rec.waitFor("compound/smoke/SD-S01/state",
                        [](const json& j) { return j["smoke"] == true; }));
  ModbusClient mb(rig.sim->modbusPort("sheds"), 1);
  CHECK(waitFor([&] { return mb.discrete(shed::kSmokeInput) == 1; }));
  // `for: 20s` clears it again.
  CHECK(rig.rec.waitFor("compound/ebike/S01/status", [](const json& j) {
    return j["smoke"] == false && j["ts"].get<int64_t>() >= kStart + 25'000;
  }));
}

TEST_CASE("sim events: a fuel car parks on an EV space and its pile never charges",
          "[sim][mqtt]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 600, R"(
  - {at: 1m, type: fuel_car, device: P-B1-0003}
)",
                     "  parking: {heartbeat: 5m, ev_share: 1.0, flaps_per_day: 0, mean_cycle: "
                     "30m}\n  ev: {report: 2m}\n  ebike: {report: 1h, shed_report: 1h}\n"
                     "  co: {report: 1h}\n",
                     true));
  CHECK(rig.rec.waitFor("compound/parking/P-B1-0003/state", [](const json& j) {
    return j["occupied"] == true && j["ts"].get<int64_t>() >= kStart + 60'000;
  }));
  REQUIRE(rig.reach(3'600'000));
  int64_t parked = INT64_MAX;
  for (const auto& m : rig.rec.on("compound/parking/P-B1-0003/state")) {
    auto j = m.json();
    if (j["ts"].get<int64_t>() >= kStart + 60'000) {
      parked = std::min(parked, j["ts"].get<int64_t>());
      CHECK(j["occupied"] == true);
    }
  }
  int reports = 0;
  for (const auto& m : rig.rec.on("compound/ev/EV-01/status")) {
    auto j = m.json();
    if (j["ts"].get<int64_t>() > parked) {
      ++reports;
      CHECK(j["state"] != "Charging");
      CHECK(j["state"] != "Preparing");
    }
  }
  CHECK(reports >= 10);
  rig.sim->inspect([](const World& w) { CHECK(w.spaceOccupied("P-B1-0003") == true); });
}

TEST_CASE("sim events: a car stays 20 days, then leaves", "[sim][mqtt]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 1'000'000, R"(
  - {at: 1m, type: long_stay, device: P-B1-0005, for: 20d}
)",
                     "  parking: {heartbeat: 6h, flaps_per_day: 0}\n  ev: {report: 1d}\n"
                     "  ebike: {report: 1d, shed_report: 1d}\n  co: {report: 1d}\n"));
  const std::string topic = "compound/parking/P-B1-0005/state";
  CHECK(rig.rec.waitFor(topic, [](const json& j) {
    return j["occupied"] == false && j["ts"].get<int64_t>() >= kStart + 20LL * 86'400'000;
  }, std::chrono::seconds(20)));
  int during = 0;
  for (const auto& m : rig.rec.on(topic)) {
    auto j = m.json();
    int64_t ts = j["ts"].get<int64_t>();
    if (ts >= kStart + 2 * 60'000 && ts < kStart + 20LL * 86'400'000) {
      ++during;
      CHECK(j["occupied"] == true);
    }
  }
  // Heartbeats every ~6 h; coarse steps of accelerated time may merge a few of them.
  CHECK(during >= 20);
}

TEST_CASE("sim events: a sensor goes silent and a Modbus device stops answering",
          "[sim][mqtt][modbus]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 20s, type: silent, device: P-B1-0006}
  - {at: 20s, type: silent, device: CO-B1-02}
)",
                     "  parking: {heartbeat: 2s, flaps_per_day: 0}\n"));
  ModbusClient co(rig.sim->modbusPort("garage"), 20);
  CHECK(co.holding(hgj::sim::co::kPpm) >= 0);
  REQUIRE(rig.reach(45'000));
  int before = 0;
  for (const auto& m : rig.rec.on("compound/parking/P-B1-0006/state")) {
    int64_t ts = m.json()["ts"].get<int64_t>();
    CHECK(ts <= kStart + 21'000);
    ++before;
  }
  CHECK(before >= 2);
  bool others_continue = false;
  for (const auto& m : rig.rec.on("compound/parking/P-B1-0007/state")) {
    others_continue |= m.json()["ts"].get<int64_t>() >= kStart + 35'000;
  }
  CHECK(others_continue);
  CHECK(co.holding(hgj::sim::co::kPpm) == -1);
  CHECK(co.last_errno == ETIMEDOUT);
}

TEST_CASE("sim events: a Modbus device answers with exceptions", "[sim][modbus]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 20s, type: modbus_exception, device: M01, code: 6, for: 10s}
)"));
  ModbusClient mb(rig.sim->modbusPort("sheds"), 1);
  CHECK(mb.input(shed::kFaultCode) == 0);
  CHECK(waitFor([&] { return mb.input(shed::kFaultCode) == -1; }));
  CHECK(mb.last_errno == EMBXSBUSY);
  // `for: 10s` ends the fault.
  CHECK(waitFor([&] { return mb.input(shed::kFaultCode) == 0; }));
  // Unit ids nobody plays get "gateway target failed to respond".
  ModbusClient none(rig.sim->modbusPort("sheds"), 9);
  CHECK(none.input(0) == -1);
  CHECK(none.last_errno == EMBXGTAR);
}

TEST_CASE("sim events: CO rises in the garage", "[sim][mqtt][modbus]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 5s, type: co_rise, device: CO-B1-01, ppm: 120, ramp: 10s}
  - {at: 5s, type: co_rise, device: CO-B1-02, ppm: 110, ramp: 10s}
)"));
  CHECK(rig.rec.waitFor("compound/co/CO-B1-01/state",
                        [](const json& j) { return j["co_ppm"].get<double>() < 20; }));
  CHECK(rig.rec.waitFor("compound/co/CO-B1-01/state",
                        [](const json& j) { return j["co_ppm"].get<double>() >= 118; }));
  ModbusClient co(rig.sim->modbusPort("garage"), 20);
  CHECK(waitFor([&] { return co.holding(hgj::sim::co::kPpm) >= 108; }));
  // The transmitter's own alarm bit follows its (writable) threshold.
  CHECK(co.holding(hgj::sim::co::kThreshold) == hgj::sim::co::kDefaultThreshold);
  CHECK(waitFor([&] { return (co.holding(hgj::sim::co::kStatus) & 2) == 2; }));
}

TEST_CASE("sim closed loop: an MQTT relay command zeroes the port and telemetry confirms it",
          "[sim][mqtt]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 0s, type: plug_in, device: S01/P01, energy_wh: 800, power_w: 220}
)"));
  const std::string topic = "compound/ebike/S01/P01/telemetry";
  REQUIRE(rig.rec.waitFor(topic, [](const json& j) {
    return j["relay"] == true && j["power_w"].get<double>() > 150 &&
           j["current_a"].get<double>() > 0.5;
  }));
  rig.rec.publish("compound/ebike/S01/P01/set", R"({"relay":false,"id":"cmd-1"})");
  CHECK(rig.rec.waitFor(topic, [](const json& j) {
    return j["relay"] == false && j["current_a"].get<double>() == 0 &&
           j["power_w"].get<double>() == 0;
  }, std::chrono::seconds(3)));
  // Every later report stays off until the relay is closed again.
  rig.rec.clear();
  REQUIRE(rig.reach(rig.sim->scenarioNowMs() - kStart + 25'000));
  for (const auto& m : rig.rec.on(topic)) {
    CHECK(m.json()["relay"] == false);
    CHECK(m.json()["power_w"].get<double>() == 0);
  }
  rig.rec.publish("compound/ebike/S01/P01/set", R"({"relay":true,"id":"cmd-2"})");
  CHECK(rig.rec.waitFor(topic, [](const json& j) {
    return j["relay"] == true && j["power_w"].get<double>() > 100;
  }));
  // Garbage on a command topic is counted and dropped.
  rig.rec.publish("compound/ebike/S01/P01/set", "not json");
  rig.rec.publish("compound/ebike/S09/P01/set", R"({"relay":false})");
  CHECK(waitFor([&] { return rig.sim->stats().bad_messages >= 2; }));
  CHECK(rig.sim->stats().commands == 2);
}

TEST_CASE("sim closed loop: opening a Modbus relay coil zeroes that port", "[sim][modbus]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 0s, type: plug_in, device: M01/P01, energy_wh: 800, power_w: 220}
  - {at: 0s, type: plug_in, device: M01/P03, energy_wh: 800, power_w: 180}
  - {at: 0s, type: ignore_commands, device: M01/P02}
)"));
  ModbusClient mb(rig.sim->modbusPort("sheds"), 1);
  const int coil1 = shed::kPortCoilBase;
  REQUIRE(waitFor([&] { return mb.input(portReg(1, shed::kPower)) > 150; }));
  CHECK(mb.input(portReg(1, shed::kCurrent)) > 50);
  CHECK(mb.input(portReg(1, shed::kStatus)) == 1);  // plugged, not full
  CHECK(mb.coil(coil1) == 1);
  CHECK(mb.writeCoil(coil1, false));
  CHECK(mb.coil(coil1) == 0);
  CHECK(waitFor([&] {
    return mb.input(portReg(1, shed::kPower)) == 0 && mb.input(portReg(1, shed::kCurrent)) == 0;
  }));
  CHECK(mb.input(portReg(3, shed::kPower)) > 100);
  rig.sim->inspect([](const World& w) { CHECK(w.relay("M01/P01") == false); });
  // A port that ignores its relay: the write is acknowledged, the read-back shows it stayed on.
  CHECK(mb.writeCoil(coil1 + 1, false));
  CHECK(mb.coil(coil1 + 1) == 1);
  // The shed's main relay cuts every port at once.
  CHECK(mb.writeCoil(shed::kMainRelayCoil, false));
  CHECK(waitFor([&] {
    return mb.input(portReg(3, shed::kPower)) == 0 && mb.input(shed::kTotalPower + 1) == 0;
  }));
  CHECK(mb.writeCoil(shed::kMainRelayCoil, true));
  CHECK(waitFor([&] { return mb.input(portReg(3, shed::kPower)) > 100; }));
}

TEST_CASE("sim devices: EV meter, guidance display and ChirpStack uplinks", "[sim][mqtt][modbus]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, ""));
  ModbusClient meter(rig.sim->modbusPort("garage"), 10);
  CHECK(waitFor([&] { return meter.floatAbcd(sdm120::kVoltage) > 200; }));
  CHECK(meter.floatAbcd(sdm120::kVoltage) < 240);
  CHECK(meter.floatAbcd(sdm120::kFrequency) == Approx(50).margin(0.1));
  CHECK(meter.floatAbcd(sdm120::kImportEnergy) > 100);
  CHECK(meter.floatAbcd(sdm120::kActivePower) == 0);  // EV-01 is idle

  ModbusClient display(rig.sim->modbusPort("garage"), 30);
  CHECK(display.writeRegisters(0, {120, 37, 55}));
  CHECK(waitFor([&] {
    std::vector<uint16_t> regs;
    rig.sim->inspect([&](const World& w) { regs = w.displayRegisters("DSP-01"); });
    return regs.size() >= 3 && regs[0] == 120 && regs[1] == 37 && regs[2] == 55;
  }));

  std::string topic = "application/" + rig.sim->scenario().mqtt.chirpstack_application +
                      "/device/a84041000181c0de/event/up";
  CHECK(rig.rec.waitFor(topic, [](const json& j) {
    return j["deviceInfo"]["devEui"] == "a84041000181c0de" &&
           j["deviceInfo"]["deviceName"] == "P-B1-0004" && j["object"]["occupied"].is_boolean() &&
           j["time"].get<std::string>().rfind("2026-11-27T02:", 0) == 0 &&
           j["rxInfo"].is_array() && j["rxInfo"][0].contains("rssi") && j["fPort"] == 1;
  }));
  CHECK(rig.rec.on("compound/parking/P-B1-0004/state").empty());
  CHECK(rig.rec.waitFor("compound/ev/EV-02/status", [](const json& j) {
    return j["state"] == "Available" && j["power_kw"] == 0 && j.contains("energy_kwh");
  }));
}

TEST_CASE("sim mqtt: publishing resumes and commands work after the broker restarts",
          "[sim][mqtt]") {
  Rig rig;
  rig.start(scenario(rig.broker.url(), 20, R"(
  - {at: 0s, type: plug_in, device: S01/P03, energy_wh: 800, power_w: 220}
)"));
  REQUIRE(rig.rec.waitFor("compound/ebike/S01/P03/telemetry",
                          [](const json& j) { return j["power_w"].get<double>() > 100; }));
  rig.broker.kill();
  REQUIRE(waitFor([&] { return !rig.sim->mqttConnected(); }));
  rig.broker.start();
  REQUIRE(waitFor([&] { return rig.sim->mqttConnected() && rig.rec.connected(); },
                    std::chrono::seconds(15)));
  rig.rec.clear();
  CHECK(rig.rec.waitFor("compound/parking/P-B1-0001/state",
                        [](const json& j) { return j.contains("occupied"); }));
  rig.rec.publish("compound/ebike/S01/P03/set", R"({"relay":false,"id":"after-restart"})");
  CHECK(rig.rec.waitFor("compound/ebike/S01/P03/telemetry", [](const json& j) {
    return j["relay"] == false && j["power_w"].get<double>() == 0;
  }));
}
