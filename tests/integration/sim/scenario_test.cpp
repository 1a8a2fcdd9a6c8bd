#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "tests/integration/sim/sim_fixture.h"
#include "tests/support/test_support.h"
#include "tools/sim/scenario.h"
#include "tools/sim/world.h"

using namespace hgj::sim;
using namespace hgj::sim::test;

namespace {

std::string problemsOf(const std::string& yaml) {
  try {
    scenarioFromText(yaml);
  } catch (const hgj::core::ConfigError& e) {
    return e.diagnostics().format();
  }
  return "";
}

std::string run(const std::string& cmd, int& status) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof(buf), p)) {
    out += buf;
  }
  status = p ? pclose(p) : -1;
  status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

const std::string kSim = std::string(HGJ_BINARY_DIR) + "/tools/sim/hgj-sim";

} // namespace

TEST_CASE("sim scenario: defaults, events sorted by time, relative gateway path", "[sim]") {
  auto s = scenarioFromText(R"(
gateway: ../gateway.yaml
speed: 60
events:
  - {at: 2m, type: smoke, device: S05}
  - {at: 30s, type: port_overheat, device: S03/P07}
  - {at: 1m, type: long_stay, device: P-B1-0100}
)");
  CHECK(s.speed == 60);
  CHECK(s.mqtt.url == "tcp://127.0.0.1:1883");
  CHECK(s.mqtt.qos == 1);
  CHECK(s.gateway == "../gateway.yaml");
  REQUIRE(s.events.size() == 3);
  CHECK(s.events[0].type == EventType::PortOverheat);
  CHECK(s.events[0].at_ms == 30'000);
  CHECK(s.events[0].value == 75);
  CHECK(s.events[1].type == EventType::LongStay);
  CHECK(s.events[1].duration_ms == 20LL * 86'400'000);
  CHECK(s.events[2].type == EventType::Smoke);
}

TEST_CASE("sim scenario: unknown keys and bad values are reported with file, line and path",
          "[sim]") {
  auto p = problemsOf("speed: 10\nmqtt:\n  urll: tcp://x:1\nevents:\n  - {at: 5s, type: smok, "
                      "device: S01}\n  - {at: soon, type: smoke, device: S01}\n");
  CHECK_THAT(p, Catch::Contains("test.yaml:3: mqtt.urll: unknown key"));
  CHECK_THAT(p, Catch::Contains("did you mean \"url\""));
  CHECK_THAT(p, Catch::Contains("test.yaml:5: events[0].type: unknown event type \"smok\" (did "
                                "you mean \"smoke\"?)"));
  CHECK_THAT(p, Catch::Contains("test.yaml:6: events[1].at:"));
  CHECK_THAT(problemsOf("modbus:\n  bind: 0.0.0.0\n"), Catch::Contains("loopback only"));
}

TEST_CASE("sim scenario: --set overrides any value and is validated like the file", "[sim]") {
  hgj::test::TempDir tmp;
  const std::filesystem::path dir = tmp.path();
  auto file = tmp.file("s.yaml");
  std::ofstream(file) << "gateway: ../gateway.yaml\nmqtt:\n  url: tcp://127.0.0.1:1883\n";
  auto s = loadScenario(file, {"mqtt.url=tcp://127.0.0.1:1999", "speed=120", "seed=42",
                               "modbus.lines.garage=1502"});
  CHECK(s.mqtt.url == "tcp://127.0.0.1:1999");
  CHECK(s.speed == 120);
  CHECK(s.seed == 42);
  CHECK(s.modbus.lines.at("garage") == 1502);
  CHECK(s.gateway == (dir.parent_path() / "gateway.yaml").lexically_normal().string());
  try {
    loadScenario(file, {"speed=fast"});
    FAIL("expected a config error");
  } catch (const hgj::core::ConfigError& e) {
    CHECK_THAT(e.diagnostics().format(), Catch::Contains("--set:1: speed:"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("sim world: events naming unknown or unsuitable devices are config errors", "[sim]") {
  auto s = scenarioFromText(R"(
modbus: {lines: {sheds: 0, garage: 0}}
events:
  - {at: 1s, type: smoke, device: S02}
  - {at: 1s, type: port_overheat, device: P-B1-0001}
  - {at: 1s, type: modbus_exception, device: EV-01}
)");
  RecordingPublisher pub;
  ModbusTcpServer sheds("sheds", "127.0.0.1", 0), garage("garage", "127.0.0.1", 0);
  ModbusServers servers{{"sheds", &sheds}, {"garage", &garage}};
  try {
    World w(s, smallCompound(), pub, servers, 1'700'000'000'000);
    FAIL("expected a config error");
  } catch (const hgj::core::ConfigError& e) {
    auto text = e.diagnostics().format();
    CHECK_THAT(text, Catch::Contains("test.yaml:4: events[0].device: no device \"S02\""));
    CHECK_THAT(text, Catch::Contains("did you mean \"S01\""));
    CHECK_THAT(text, Catch::Contains("events[1].device: port_overheat needs a charging port"));
    CHECK_THAT(text, Catch::Contains("events[2].device: modbus_exception needs a Modbus device"));
  }
}

TEST_CASE("sim world: devices on a Modbus line without a server are not played", "[sim]") {
  auto s = scenarioFromText("modbus: {lines: {sheds: 0}}\n");
  RecordingPublisher pub;
  ModbusTcpServer sheds("sheds", "127.0.0.1", 0);
  ModbusServers servers{{"sheds", &sheds}};
  World w(s, smallCompound(), pub, servers, 0);
  auto un = w.unplayed();
  CHECK(std::count(un.begin(), un.end(), "MT-EV-01") == 1);
  CHECK(std::count(un.begin(), un.end(), "DSP-01") == 1);
  CHECK(std::count(un.begin(), un.end(), "M01") == 0);
  CHECK(sheds.hasUnit(1));
}

TEST_CASE("sim world: the same seed replays the same run, another seed does not", "[sim]") {
  auto messagesFor = [](uint64_t seed) {
    auto s = scenarioFromText("seed: " + std::to_string(seed) + R"(
start: "2026-11-27T17:00:00+08:00"
modbus: {lines: {sheds: 0, garage: 0}}
behaviour:
  parking: {mean_cycle: 30m, heartbeat: 10m}
  ebike: {sessions_per_day: 20}
events:
  - {at: 10m, type: port_overheat, device: S01/P01}
)");
    RecordingPublisher pub;
    ModbusTcpServer sheds("sheds", "127.0.0.1", 0), garage("garage", "127.0.0.1", 0);
    ModbusServers servers{{"sheds", &sheds}, {"garage", &garage}};
    int64_t start = *s.start_ms;
    World w(s, smallCompound(), pub, servers, start);
    for (int64_t t = 0; t <= 4 * 3'600'000; t += 7'000) {
      w.step(start + t, 0, 1000);
    }
    std::vector<std::string> out;
    for (const auto& m : pub.messages) {
      out.push_back(m.topic + " " + m.payload);
    }
    return out;
  };
  auto a = messagesFor(7);
  auto b = messagesFor(7);
  auto c = messagesFor(8);
  CHECK(a.size() > 100);
  CHECK(a == b);
  CHECK(a != c);
}

TEST_CASE("sim world: realistic parking follows the time of day", "[sim]") {
  auto s = scenarioFromText(R"(
start: "2026-11-27T12:00:00+08:00"
modbus: {lines: {sheds: 0, garage: 0}}
behaviour:
  parking: {day_occupancy: 0.1, night_occupancy: 0.9, mean_cycle: 20m, flaps_per_day: 0}
)");
  // 200 spaces so the share is meaningful.
  auto c = std::make_shared<hgj::model::Compound>();
  auto p = std::make_unique<hgj::model::Profile>();
  p->name = "parking";
  p->device_type = "parking_sensor";
  p->transport = "mqtt";
  for (int i = 0; i < 200; ++i) {
    hgj::model::Device d;
    d.id = "P-" + std::to_string(i);
    d.profile = p.get();
    c->devices.push_back(d);
  }
  c->profiles.push_back(std::move(p));
  c->buildIndexes();
  RecordingPublisher pub;
  World w(s, c, pub, {}, *s.start_ms);
  auto share = [&] {
    int n = 0;
    for (int i = 0; i < 200; ++i) {
      n += *w.spaceOccupied("P-" + std::to_string(i)) ? 1 : 0;
    }
    return n / 200.0;
  };
  int64_t t0 = *s.start_ms;
  for (int64_t t = 0; t <= 3 * 3'600'000; t += 60'000) {
    w.step(t0 + t, 0, 10'000);
  }
  CHECK(share() < 0.3);  // 15:00: mostly free
  for (int64_t t = 3 * 3'600'000; t <= 12 * 3'600'000; t += 60'000) {
    w.step(t0 + t, 0, 10'000);
  }
  CHECK(share() > 0.7);  // midnight: mostly taken
}

TEST_CASE("sim cli: --help, --version and a bad scenario's exit status", "[sim]") {
  int status = -1;
  auto out = run(kSim + " --help", status);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::Contains("usage: hgj-sim -c"));
  out = run(kSim + " --version", status);
  CHECK(status == 0);
  CHECK_THAT(out, Catch::StartsWith("hgj-sim "));
  hgj::test::TempDir tmp;
  const std::filesystem::path file = tmp.file("bad.yaml");
  std::ofstream(file) << "sped: 2\n";
  out = run(kSim + " --check -c " + file.string(), status);
  CHECK(status == 2);
  CHECK_THAT(out, Catch::Contains(file.string() + ":1: sped: unknown key"));
  out = run(kSim + " --bogus", status);
  CHECK(status == 2);
}

TEST_CASE("sim world: a refresh request on /get brings a port's or shed's report at the next "
          "step, not at its next period", "[sim]") {
  auto s = scenarioFromText(R"(
start: "2026-11-27T12:00:00+08:00"
modbus: {lines: {sheds: 0, garage: 0}}
behaviour:
  ebike: {report: 3m, shed_report: 3m, sessions_per_day: 0}
events:
  - {at: 0s, type: plug_in, device: S01/P02, energy_wh: 800, power_w: 220}
)");
  RecordingPublisher pub;
  ModbusTcpServer sheds("sheds", "127.0.0.1", 0), garage("garage", "127.0.0.1", 0);
  ModbusServers servers{{"sheds", &sheds}, {"garage", &garage}};
  int64_t t0 = *s.start_ms;
  World w(s, smallCompound(), pub, servers, t0);
  // The devices listen on their /get topics as well as the ports' /set.
  auto subs = w.subscriptions();
  CHECK(std::find(subs.begin(), subs.end(), "compound/ebike/+/+/get") != subs.end());
  CHECK(std::find(subs.begin(), subs.end(), "compound/ebike/+/get") != subs.end());
  // Past the first reports: nothing more is due for three minutes.
  for (int64_t t = 0; t <= 60'000; t += 1'000) {
    w.step(t0 + t, 0, 1000);
  }
  auto count = [&](const std::string& topic) {
    return std::count_if(pub.messages.begin(), pub.messages.end(),
                         [&](const Message& m) { return m.topic == topic; });
  };
  const std::string port = "compound/ebike/S01/P02/telemetry";
  const std::string shed = "compound/ebike/S01/status";
  pub.messages.clear();
  w.step(t0 + 61'000, 0, 1000);
  REQUIRE(count(port) == 0);  // the control: no report of its own in this step
  REQUIRE(count(shed) == 0);

  w.handleMessage("compound/ebike/S01/P02/get", "{}");
  w.handleMessage("compound/ebike/S01/get", "{}");
  w.step(t0 + 62'000, 0, 1000);
  CHECK(count(port) == 1);
  CHECK(count(shed) == 1);
  CHECK(w.stats().refreshes == 2);
  auto it = std::find_if(pub.messages.begin(), pub.messages.end(),
                         [&](const Message& m) { return m.topic == port; });
  REQUIRE(it != pub.messages.end());
  auto j = nlohmann::json::parse(it->payload);
  CHECK(j["relay"] == true);
  CHECK(j.contains("temp_c"));

  // A request for something that is not an MQTT shed or port is counted and dropped.
  uint64_t bad = w.stats().bad_messages;
  w.handleMessage("compound/ebike/M01/P01/get", "{}");  // a Modbus port: polled, not asked
  w.handleMessage("compound/ebike/S09/get", "{}");
  CHECK(w.stats().bad_messages == bad + 2);
  CHECK(w.stats().refreshes == 2);
}
