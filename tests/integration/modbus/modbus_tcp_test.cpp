#include <algorithm>
#include <filesystem>
#include <cstdio>
#include <numeric>

#include <catch2/catch.hpp>

#include <modbus/modbus.h>

#include "tests/integration/modbus/modbus_rig.h"

using namespace hgj;
using namespace hgj::test_modbus;
using drivers::profiles::RegisterTable;
using sim::UnitLayout;
using std::chrono::milliseconds;

namespace {

const char* const kSimpleProfile = R"(
type: meter
transport: modbus
points:
  a: {type: number}
  b: {type: number}
  c: {type: number}
  d: {type: number}
modbus:
  registers:
    - {point: a, table: holding, address: 0, type: u16}
    - {point: b, table: holding, address: 1, type: u16}
    - {point: c, table: holding, address: 2, type: u16}
    - {point: d, table: holding, address: 3, type: u16}
)";

// Two reads: registers 0 and 0x100 are too far apart to share one.
const char* const kSplitProfile = R"(
type: meter
transport: modbus
points:
  a: {type: number}
  far: {type: number}
modbus:
  registers:
    - {point: a, table: holding, address: 0, type: u16}
    - {point: far, table: holding, address: 0x100, type: u16}
)";

bool online(const CollectingSink& sink, model::DeviceIndex d) {
  auto h = sink.health(d);
  return !h.empty() && h.back().online;
}

bool offline(const CollectingSink& sink, model::DeviceIndex d) {
  auto h = sink.health(d);
  return !h.empty() && !h.back().online;
}

/// It answers, but refuses every read: not online, with the refusal as its fault.
bool faulted(const CollectingSink& sink, model::DeviceIndex d) {
  auto h = sink.health(d);
  return !h.empty() && !h.back().online && !h.back().fault.empty();
}

double metric(const Rig& rig, const std::string& name, const core::Labels& labels) {
  return rig.metrics.value(name, labels);
}

} // namespace

TEST_CASE("modbus tcp: every shipped profile is read and decoded from a real server",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  for (const char* p : {"eastron_sdm120", "eastron_sdm630", "chint_ddsu666",
                        "hgj_ebike_port_modbus", "hgj_ebike_shed_m12", "garage_co_sensor",
                        "led_guidance_display", "abb_terra_ac"}) {
    loadProfile(rig.compound, p);
  }
  const std::pair<const char*, const char*> devices[] = {
      {"EM-01", "eastron_sdm120"}, {"EM-02", "eastron_sdm630"},      {"EM-03", "chint_ddsu666"},
      {"M01", "hgj_ebike_shed_m12"}, {"CO-B1-01", "garage_co_sensor"}, {"DSP-01", "led_guidance_display"},
      {"EV-01", "abb_terra_ac"}};
  int unit = 1;
  for (const auto& [id, profile] : devices) {
    addDevice(rig.compound, id, profile, binding("garage", unit++, 100),
              std::string(profile) == "hgj_ebike_shed_m12" ? 12 : 0);
  }
  rig.compound.buildIndexes();
  Expected expected;
  unit = 1;
  for (const auto& d : devices) {
    slave->addUnit(unit);
    auto e = fillDevice(*slave, unit, rig.compound, *rig.compound.device(d.first));
    expected.insert(e.begin(), e.end());
    ++unit;
  }
  slave->start();
  rig.addTcpLine("garage", slave->port());
  rig.start();

  // The display: 11 free counts of levels and zones, free_visitor, brightness.
  CHECK(expected.size() == 10 + 14 + 5 + (5 + 12 * 8) + 5 + 13 + 3);
  REQUIRE(test::waitFor([&] { return missing(rig.sink, expected) == 0; }, milliseconds(3000)));
  // Spot checks against the profiles' documentation.
  auto p07 = rig.dev("M01/P07");
  CHECK(matches(rig.sink.last(p07, rig.pt("temp_c")),
                expected.at({p07, rig.pt("temp_c")})));
  CHECK(std::holds_alternative<double>(rig.sink.last(rig.dev("EM-03"), rig.pt("power_w"))));
  for (const auto& d : devices) {
    CHECK(online(rig.sink, rig.dev(d.first)));
  }
  CHECK(online(rig.sink, p07));
  CHECK(metric(rig, "hgj_modbus_polls_total", {{"line", "garage"}}) >= 6);
  CHECK(rig.driver->health() == "ok");
}

TEST_CASE("modbus tcp: the test server sets points the way their profile maps them",
          "[modbus][integration][sim]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfile(rig.compound, "hgj_ebike_port_modbus");
  const model::Profile& m12 = loadProfile(rig.compound, "hgj_ebike_shed_m12");
  const model::Profile& abb = loadProfile(rig.compound, "abb_terra_ac");
  addDevice(rig.compound, "M01", "hgj_ebike_shed_m12", binding("bus", 1, 50), 12);
  addDevice(rig.compound, "EV-01", "abb_terra_ac", binding("bus", 2, 50));
  slave->addUnit(1);
  slave->addUnit(2);
  std::string error;
  CHECK(slave->setPoint(1, m12, "temp_c", model::Value(75.0), 7, &error));
  CHECK(slave->setPoint(1, m12, "full", model::Value(true), 7, &error));
  CHECK(slave->setPoint(1, m12, "plugged", model::Value(true), 7, &error));
  CHECK(slave->setPoint(1, m12, "smoke", model::Value(true), 0, &error));
  CHECK(slave->setPoint(2, abb, "state", model::Value(std::string("Charging")), 0, &error));
  CHECK(slave->setPoint(2, abb, "power_kw", model::Value(6.8), 0, &error));
  CHECK_FALSE(slave->setPoint(2, abb, "state", model::Value(std::string("Flying")), 0, &error));
  CHECK_THAT(error, Catch::Contains("not in the value map"));
  CHECK_FALSE(slave->setPoint(1, m12, "nope", model::Value(1.0), 0, &error));
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto p07 = rig.dev("M01/P07");
  auto ev = rig.dev("EV-01");
  REQUIRE(test::waitFor([&] { return !rig.sink.batchTimes(ev).empty() &&
                                 !rig.sink.batchTimes(p07).empty(); },
                    milliseconds(2000)));
  CHECK(rig.sink.last(p07, rig.pt("temp_c")) == model::Value(75.0));
  CHECK(rig.sink.last(p07, rig.pt("full")) == model::Value(true));
  CHECK(rig.sink.last(p07, rig.pt("plugged")) == model::Value(true));
  CHECK(rig.sink.last(rig.dev("M01/P06"), rig.pt("plugged")) == model::Value(false));
  CHECK(rig.sink.last(rig.dev("M01"), rig.pt("smoke")) == model::Value(true));
  CHECK(rig.sink.last(ev, rig.pt("state")) == model::Value(std::string("Charging")));
  CHECK(matches(rig.sink.last(ev, rig.pt("power_kw")), model::Value(6.8)));
}

TEST_CASE("modbus tcp: a device that never answers does not hold up the others",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  for (int u = 1; u <= 3; ++u) {
    slave->addUnit(u, UnitLayout());
    slave->setRegister(u, RegisterTable::Holding, 0, static_cast<uint16_t>(u));
    addDevice(rig.compound, "D" + std::to_string(u), "simple", binding("bus", u, 100, 100, 1));
  }
  slave->setSilent(3, true);
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();

  auto d1 = rig.dev("D1");
  auto d2 = rig.dev("D2");
  auto d3 = rig.dev("D3");
  REQUIRE(test::waitFor([&] { return rig.sink.batchTimes(d1).size() >= 21; }, milliseconds(4000)));
  auto times = rig.sink.batchTimes(d1);
  std::vector<double> gaps;
  for (size_t i = 2; i < times.size(); ++i) {
    gaps.push_back(std::chrono::duration<double, std::milli>(times[i] - times[i - 1]).count());
  }
  double max_gap = *std::max_element(gaps.begin(), gaps.end());
  double mean_gap = std::accumulate(gaps.begin(), gaps.end(), 0.0) / static_cast<double>(gaps.size());
  std::printf("modbus cadence with a dead device on the line: interval 100 ms, timeout 100 ms, "
              "mean %.1f ms, max %.1f ms over %zu polls\n",
              mean_gap, max_gap, gaps.size());
  // The dead device costs the line one timeout per attempt, never more.
  CHECK(max_gap < 100 + 100 + 40);
  CHECK(mean_gap == Approx(100).margin(10));
  CHECK(rig.sink.batchTimes(d2).size() >= 19);
  // Marked offline with the reason, and backed off: far fewer attempts than the healthy ones.
  REQUIRE(offline(rig.sink, d3));
  CHECK(rig.sink.health(d3).back().reason == "timeout");
  CHECK(slave->requests(3) * 2 < slave->requests(1));
  CHECK(metric(rig, "hgj_modbus_errors_total", {{"line", "bus"}, {"kind", "timeout"}}) >= 2);
  CHECK(metric(rig, "hgj_modbus_device_failed_polls_total", {{"device", "D3"}}) >= 1);
  CHECK_THAT(rig.driver->health(), Catch::Contains("1 of 3 devices offline"));

  // When it answers again it comes back by itself (within its back-off).
  slave->setSilent(3, false);
  CHECK(test::waitFor([&] { return online(rig.sink, d3); }, milliseconds(3000)));
}

TEST_CASE("modbus tcp: an illegal data address is counted and the rest is still read",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "split", kSplitProfile);
  // The device has only 16 holding registers: the read of 0x100 gets exception 02.
  slave->addUnit(1, UnitLayout::of({0, 0}, {0, 0}, {0, 16}, {0, 0}));
  slave->setRegister(1, RegisterTable::Holding, 0, 77);
  addDevice(rig.compound, "X", "split", binding("bus", 1, 50));
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto x = rig.dev("X");
  REQUIRE(test::waitFor([&] { return rig.sink.batchTimes(x).size() >= 3; }, milliseconds(2000)));
  CHECK(rig.sink.last(x, rig.pt("a")) == model::Value(77.0));
  CHECK(std::holds_alternative<std::monostate>(rig.sink.last(x, rig.pt("far"))));
  CHECK(online(rig.sink, x));
  CHECK(metric(rig, "hgj_modbus_errors_total", {{"line", "bus"}, {"kind", "illegal_address"}}) >=
        3);
  CHECK(metric(rig, "hgj_modbus_device_errors_total", {{"device", "X"}, {"kind", "illegal_address"}}) >= 3);
}

TEST_CASE("modbus tcp: a busy device is retried after a pause, not marked offline",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  slave->addUnit(1);
  slave->setRegister(1, RegisterTable::Holding, 1, 5);
  slave->setException(1, MODBUS_EXCEPTION_SLAVE_OR_SERVER_BUSY, 1);
  addDevice(rig.compound, "B", "simple", binding("bus", 1, 100, 100, 1));
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto b = rig.dev("B");
  REQUIRE(test::waitFor([&] { return !rig.sink.batchTimes(b).empty(); }, milliseconds(2000)));
  CHECK(rig.sink.last(b, rig.pt("b")) == model::Value(5.0));
  CHECK(metric(rig, "hgj_modbus_errors_total", {{"line", "bus"}, {"kind", "busy"}}) == 1);
  for (const auto& h : rig.sink.health(b)) {
    CHECK(h.online);
  }
}

TEST_CASE("modbus tcp: a device that stays busy or fails goes offline and comes back",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  slave->addUnit(1);
  slave->addUnit(2);
  slave->setException(1, MODBUS_EXCEPTION_SLAVE_OR_SERVER_BUSY);
  slave->setException(2, MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE);
  addDevice(rig.compound, "B", "simple", binding("bus", 1, 100, 100, 1));
  addDevice(rig.compound, "F", "simple", binding("bus", 2, 100, 100, 1));
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto b = rig.dev("B");
  auto f = rig.dev("F");
  REQUIRE(test::waitFor([&] { return offline(rig.sink, b) && offline(rig.sink, f); },
                    milliseconds(2000)));
  CHECK(rig.sink.health(b).back().reason == "exception 06 (slave busy)");
  CHECK(rig.sink.health(f).back().reason == "exception 04 (slave device failure)");
  CHECK(rig.sink.batchTimes(b).empty());
  CHECK(metric(rig, "hgj_modbus_errors_total", {{"line", "bus"}, {"kind", "device_failure"}}) >= 2);
  slave->setException(1, 0);
  slave->setException(2, 0);
  CHECK(test::waitFor([&] { return online(rig.sink, b) && online(rig.sink, f); },
                  milliseconds(3000)));
}

TEST_CASE("modbus tcp: a late reply does not throw the next device out of step",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  slave->addUnit(1);
  slave->addUnit(2);
  slave->setRegister(2, RegisterTable::Holding, 0, 2);
  // Unit 1 answers after its timeout, so its reply arrives while unit 2 waits for its own.
  slave->setDelay(1, milliseconds(150));
  addDevice(rig.compound, "SLOW", "simple", binding("bus", 1, 100, 100, 0));
  addDevice(rig.compound, "OK", "simple", binding("bus", 2, 100, 100, 0));
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto ok = rig.dev("OK");
  REQUIRE(test::waitFor([&] { return rig.sink.batchTimes(ok).size() >= 10; }, milliseconds(4000)));
  for (const auto& h : rig.sink.health(ok)) {
    CHECK(h.online);
  }
  CHECK(rig.sink.last(ok, rig.pt("a")) == model::Value(2.0));
  CHECK(offline(rig.sink, rig.dev("SLOW")));
  CHECK(metric(rig, "hgj_modbus_errors_total", {{"line", "bus"}, {"kind", "bad_frame"}}) >= 1);
}

TEST_CASE("modbus tcp: exception codes 01 to 06 and 0A/0B are classified and counted",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  const std::pair<int, const char*> codes[] = {
      {1, "illegal_function"}, {2, "illegal_address"}, {3, "illegal_value"},
      {4, "device_failure"},   {5, "acknowledge"},     {6, "busy"},
      {10, "gateway_path"},    {11, "gateway_target"}};
  for (const auto& [code, kind] : codes) {
    slave->addUnit(code);
    slave->setException(code, code);
    addDevice(rig.compound, std::string("E") + std::to_string(code), "simple",
              binding("bus", code, 100, 100, 1));
  }
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  REQUIRE(test::waitFor(
      [&] {
        for (const auto& [code, kind] : codes) {
          auto d = rig.dev(std::string("E") + std::to_string(code));
          bool settled = code <= 3 ? faulted(rig.sink, d) : offline(rig.sink, d);
          if (!settled ||
              metric(rig, "hgj_modbus_errors_total", {{"line", "bus"}, {"kind", kind}}) < 1) {
            return false;
          }
        }
        return true;
      },
      milliseconds(3000)));
  // 01-03 mean the profile asks for something the device lacks: refused on every read, the
  // device is faulted (a wrong register table must not pass for a healthy device). The others
  // are the device's trouble: offline with the exception as the reason.
  CHECK(rig.sink.health(rig.dev("E2")).back().fault ==
        "exception 02 (illegal data address) for holding 0+4 (check the profile simple)");
  CHECK(rig.sink.health(rig.dev("E4")).back().fault.empty());
  CHECK(rig.sink.health(rig.dev("E11")).back().reason ==
        "exception 0B (gateway target failed to respond)");
}

TEST_CASE("modbus tcp: file descriptors stay flat across reconnects", "[modbus][integration]") {
  auto countFds = [] {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
      ++n;
    }
    return n;
  };
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  slave->addUnit(1);
  addDevice(rig.compound, "D", "simple", binding("bus", 1, 50));
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto d = rig.dev("D");
  REQUIRE(test::waitFor([&] { return online(rig.sink, d); }, milliseconds(2000)));
  size_t baseline = countFds();
  for (int cycle = 0; cycle < 5; ++cycle) {
    slave->stop();
    REQUIRE(test::waitFor([&] { return offline(rig.sink, d); }, milliseconds(2000)));
    slave->start();
    REQUIRE(test::waitFor([&] { return online(rig.sink, d); }, milliseconds(3000)));
  }
  CHECK(countFds() <= baseline + 1);
}

TEST_CASE("modbus tcp: a write is verified by reading it back", "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfile(rig.compound, "hgj_ebike_port_modbus");
  loadProfile(rig.compound, "hgj_ebike_shed_m12");
  loadProfile(rig.compound, "led_guidance_display");
  addDevice(rig.compound, "M01", "hgj_ebike_shed_m12", binding("bus", 1, 100), 12);
  addDevice(rig.compound, "DSP-01", "led_guidance_display", binding("bus", 2, 100));
  rig.compound.buildIndexes();
  slave->addUnit(1);
  slave->addUnit(2);
  // Port 7 charging at 2.5 A with its relay on; the simulated controller drops the current when
  // its relay opens, as the real one does.
  slave->setBit(1, RegisterTable::Coil, 0x16, true);
  slave->setRegister(1, RegisterTable::Input, 0x160, 250);
  slave->onWrite([&](int unit, RegisterTable table, uint16_t address, uint16_t) {
    if (unit == 1 && table == RegisterTable::Coil && address == 0x16 &&
        !slave->getBit(1, RegisterTable::Coil, 0x16)) {
      slave->setRegister(1, RegisterTable::Input, 0x160, 0);
    }
  });
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto p07 = rig.dev("M01/P07");
  REQUIRE(test::waitFor([&] { return rig.sink.last(p07, rig.pt("current_a")) == model::Value(2.5); },
                    milliseconds(2000)));

  rig.write(1, "M01/P07", "relay", model::Value(false));
  rig.write(2, "DSP-01", "free_B1_A", model::Value(42.0));
  REQUIRE(test::waitFor([&] { return rig.result(1) && rig.result(2); }, milliseconds(2000)));
  auto r1 = *rig.result(1);
  CHECK(r1.ok);
  CHECK(r1.attempts == 1);
  CHECK(r1.error.empty());
  CHECK(r1.device == p07);
  CHECK_FALSE(slave->getBit(1, RegisterTable::Coil, 0x16));
  // Other ports untouched.
  CHECK_FALSE(slave->getBit(1, RegisterTable::Coil, 0x15));
  auto r2 = *rig.result(2);
  CHECK(r2.ok);
  CHECK(slave->getRegister(2, RegisterTable::Holding, 0x10) == 42);
  CHECK(rig.sink.last(rig.dev("DSP-01"), rig.pt("free_B1_A")) == model::Value(42.0));
  CHECK(test::waitFor([&] { return rig.sink.last(p07, rig.pt("current_a")) == model::Value(0.0); },
                  milliseconds(2000)));
  CHECK(metric(rig, "hgj_modbus_writes_total", {{"line", "bus"}, {"result", "ok"}}) == 2);
}

TEST_CASE("modbus tcp: a write the device ignores is retried once and reported failed",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfile(rig.compound, "led_guidance_display");
  addDevice(rig.compound, "DSP-01", "led_guidance_display", binding("bus", 1, 100));
  slave->addUnit(1);
  slave->setRegister(1, RegisterTable::Holding, 0x0001, 17);
  slave->setIgnoreWrites(1, true);
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  rig.write(7, "DSP-01", "free_B1", model::Value(16.0));
  REQUIRE(test::waitFor([&] { return rig.result(7).has_value(); }, milliseconds(2000)));
  auto r = *rig.result(7);
  CHECK_FALSE(r.ok);
  CHECK(r.attempts == 2);
  CHECK(r.error == "read-back mismatch (wrote 16, read 17)");
  CHECK(slave->getRegister(1, RegisterTable::Holding, 0x0001) == 17);
  CHECK(slave->writes(1) == 0);
  CHECK(metric(rig, "hgj_modbus_writes_total", {{"line", "bus"}, {"result", "failed"}}) == 1);
}

TEST_CASE("modbus tcp: writes are refused unless the point is writable and the value fits",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfile(rig.compound, "hgj_ebike_port_modbus");
  loadProfile(rig.compound, "hgj_ebike_shed_m12");
  loadProfile(rig.compound, "led_guidance_display");
  addDevice(rig.compound, "M01", "hgj_ebike_shed_m12", binding("bus", 1, 100), 12);
  addDevice(rig.compound, "DSP-01", "led_guidance_display", binding("bus", 2, 100));
  slave->addUnit(1);
  slave->addUnit(2);
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  rig.write(1, "M01/P03", "current_a", model::Value(0.0));
  rig.write(2, "DSP-01", "brightness", model::Value(150.0));
  rig.write(3, "DSP-01", "free_B2", model::Value(std::string("many")));
  REQUIRE(test::waitFor([&] { return rig.result(1) && rig.result(2) && rig.result(3); },
                    milliseconds(2000)));
  CHECK(rig.result(1)->error == "point current_a of M01/P03 is not writable");
  CHECK(rig.result(2)->error == "value 150 outside the range of point brightness");
  CHECK_THAT(rig.result(3)->error, Catch::Contains("does not fit point free_B2"));
  CHECK(slave->writes(1) == 0);
  CHECK(slave->writes(2) == 0);
  CHECK(rig.driver->handles(*rig.compound.device("M01/P03")));
  drivers::WriteRequest stray;
  stray.id = 9;
  stray.device = 12345;
  rig.driver->write(stray);
  REQUIRE(test::waitFor([&] { return rig.result(9).has_value(); }, milliseconds(2000)));
  CHECK(rig.result(9)->error == "not a modbus device");
}

TEST_CASE("modbus tcp: writes to one point are rate-limited and coalesced",
          "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  rig.config.write_min_interval_ms = 300;
  loadProfile(rig.compound, "led_guidance_display");
  addDevice(rig.compound, "DSP-01", "led_guidance_display", binding("bus", 1, 100));
  slave->addUnit(1);
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  rig.write(1, "DSP-01", "free_B2", model::Value(10.0));
  REQUIRE(test::waitFor([&] { return rig.result(1).has_value(); }, milliseconds(2000)));
  auto t1 = std::chrono::steady_clock::now();
  rig.write(2, "DSP-01", "free_B2", model::Value(11.0));
  rig.write(3, "DSP-01", "free_B2", model::Value(12.0));
  rig.write(4, "DSP-01", "free_B1", model::Value(5.0));  // another point: not held back
  REQUIRE(test::waitFor([&] { return rig.result(4).has_value(); }, milliseconds(2000)));
  REQUIRE(test::waitFor([&] { return rig.result(3).has_value(); }, milliseconds(2000)));
  auto t3 = std::chrono::steady_clock::now();
  CHECK(t3 - t1 >= milliseconds(200));
  // The other point's write is not held back: it completes before the held one (an ordering,
  // not a wall-clock bound, which a loaded machine would break).
  std::vector<uint64_t> order;
  for (const auto& r : rig.sink.writeResults()) {
    order.push_back(r.request_id);
  }
  auto at = [&](uint64_t id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  CHECK(at(4) < at(3));
  CHECK(rig.result(1)->ok);
  REQUIRE(rig.result(2));
  CHECK_FALSE(rig.result(2)->ok);
  CHECK(rig.result(2)->error == "superseded by write 3");
  CHECK(rig.result(3)->ok);
  CHECK(slave->getRegister(1, RegisterTable::Holding, 0x0002) == 12);
  CHECK(slave->writes(1) == 3);
}

TEST_CASE("modbus tcp: a lost connection is reopened with back-off", "[modbus][integration]") {
  auto slave = sim::ModbusSlave::tcp();
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  slave->addUnit(1);
  addDevice(rig.compound, "D", "simple", binding("bus", 1, 50));
  slave->start();
  rig.addTcpLine("bus", slave->port());
  rig.start();
  auto d = rig.dev("D");
  REQUIRE(test::waitFor([&] { return online(rig.sink, d); }, milliseconds(2000)));
  slave->stop();
  REQUIRE(test::waitFor([&] { return offline(rig.sink, d); }, milliseconds(2000)));
  CHECK_THAT(rig.sink.health(d).back().reason, Catch::Contains("refused"));
  CHECK_THAT(rig.driver->health(), Catch::Contains("line bus not connected"));
  slave->start();
  REQUIRE(test::waitFor([&] { return online(rig.sink, d); }, milliseconds(3000)));
  CHECK(metric(rig, "hgj_modbus_reconnects_total", {{"line", "bus"}}) >= 2);
  CHECK(metric(rig, "hgj_modbus_errors_total", {{"line", "bus"}, {"kind", "connection"}}) >= 1);
  CHECK(rig.driver->health() == "ok");
  std::string text = rig.metrics.render();
  CHECK_THAT(text, Catch::Contains("hgj_modbus_polls_total{line=\"bus\"}"));
  CHECK_THAT(text, Catch::Contains("hgj_modbus_poll_duration_seconds_bucket{device=\"D\""));
}

TEST_CASE("modbus tcp: a device on an unknown line is a start-up error", "[modbus][integration]") {
  Rig rig;
  loadProfileText(rig.compound, "simple", kSimpleProfile);
  addDevice(rig.compound, "D", "simple", binding("nowhere", 1));
  rig.compound.buildIndexes();
  CHECK_THROWS_WITH(drivers::modbus::ModbusDriver(rig.config, rig.compound, rig.sink, rig.metrics,
                                                  core::SystemClock::instance()),
                    Catch::Contains("unknown modbus line \"nowhere\""));
}
