#include <csignal>
#include <cstdlib>
#include <filesystem>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/integration/modbus/modbus_rig.h"

extern char** environ;

using namespace hgj;
using namespace hgj::test_modbus;
using drivers::profiles::RegisterTable;
using std::chrono::milliseconds;

namespace {

/// A pseudo-terminal pair joined by socat: what one end writes the other reads, like two
/// devices on one RS-485 pair. Started and killed by the test.
class PtyPair {
public:
  PtyPair() {
    a_ = dir_.file("gateway");
    b_ = dir_.file("device");
    std::string la = "pty,raw,echo=0,link=" + a_;
    std::string lb = "pty,raw,echo=0,link=" + b_;
    char* argv[] = {const_cast<char*>("socat"), const_cast<char*>(la.c_str()),
                    const_cast<char*>(lb.c_str()), nullptr};
    if (::posix_spawnp(&pid_, "socat", nullptr, nullptr, argv, environ) != 0) {
      throw std::runtime_error("cannot start socat");
    }
    if (!test::waitFor([&] { return std::filesystem::exists(a_) && std::filesystem::exists(b_); },
                   milliseconds(5000))) {
      throw std::runtime_error("socat did not create the pseudo-terminals");
    }
  }
  ~PtyPair() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  const std::string& gatewayEnd() const { return a_; }
  const std::string& deviceEnd() const { return b_; }

private:
  pid_t pid_ = -1;
  test::TempDir dir_;
  std::string a_;
  std::string b_;
};

drivers::modbus::LineConfig rtuLine(const std::string& device) {
  drivers::modbus::LineConfig l;
  l.id = "rs485-1";
  l.kind = drivers::modbus::LineKind::Rtu;
  l.device = device;
  l.baud = 19200;
  l.parity = 'E';
  l.timeout_ms = 100;
  l.byte_timeout_ms = 20;
  l.reconnect_min_ms = 50;
  l.reconnect_max_ms = 200;
  return l;
}

} // namespace

TEST_CASE("modbus rtu: a CO sensor is read and written over a serial line",
          "[modbus][integration][rtu]") {
  PtyPair pty;
  auto slave = sim::ModbusSlave::rtu({pty.deviceEnd(), 19200, 'E', 8, 1});
  slave->addUnit(5, sim::UnitLayout::of({0, 0}, {0, 0}, {0, 32}, {0, 0}));
  Rig rig;
  loadProfile(rig.compound, "garage_co_sensor");
  addDevice(rig.compound, "CO-B1-01", "garage_co_sensor", binding("rs485-1", 5, 100));
  // A second transmitter configured on the bus but absent: nobody answers unit 6.
  addDevice(rig.compound, "CO-B1-02", "garage_co_sensor", binding("rs485-1", 6, 100, 100));
  rig.compound.buildIndexes();
  auto expected = fillDevice(*slave, 5, rig.compound, *rig.compound.device("CO-B1-01"));
  slave->start();
  rig.config.lines.push_back(rtuLine(pty.gatewayEnd()));
  rig.start();

  auto co = rig.dev("CO-B1-01");
  REQUIRE(test::waitFor([&] { return missing(rig.sink, expected) == 0; }, milliseconds(3000)));
  rig.write(1, "CO-B1-01", "alarm_threshold_ppm", model::Value(50.0));
  REQUIRE(test::waitFor([&] { return rig.result(1).has_value(); }, milliseconds(2000)));
  CHECK(rig.result(1)->ok);
  CHECK(slave->getRegister(5, RegisterTable::Holding, 0x10) == 50);

  // The absent unit times out and is marked offline; the present one keeps being read.
  auto absent = rig.dev("CO-B1-02");
  REQUIRE(test::waitFor([&] {
    auto h = rig.sink.health(absent);
    return !h.empty() && !h.back().online;
  }, milliseconds(2000)));
  size_t before = rig.sink.batchTimes(co).size();
  CHECK(test::waitFor([&] { return rig.sink.batchTimes(co).size() >= before + 5; },
                  milliseconds(2000)));
  CHECK(rig.metrics.value("hgj_modbus_errors_total", {{"line", "rs485-1"}, {"kind", "timeout"}}) >=
        1);
}

TEST_CASE("modbus rtu: garbled frames are counted, flushed and survived",
          "[modbus][integration][rtu]") {
  PtyPair pty;
  auto slave = sim::ModbusSlave::rtu({pty.deviceEnd(), 19200, 'E', 8, 1});
  slave->addUnit(5, sim::UnitLayout::of({0, 0}, {0, 0}, {0, 32}, {0, 0}));
  Rig rig;
  loadProfile(rig.compound, "garage_co_sensor");
  addDevice(rig.compound, "CO-B1-01", "garage_co_sensor", binding("rs485-1", 5, 50, 100, 1));
  rig.compound.buildIndexes();
  slave->setRegister(5, RegisterTable::Holding, 0, 12);
  slave->setGarbage(5, true);
  slave->start();
  rig.config.lines.push_back(rtuLine(pty.gatewayEnd()));
  rig.start();
  auto co = rig.dev("CO-B1-01");
  REQUIRE(test::waitFor([&] {
    auto h = rig.sink.health(co);
    return !h.empty() && !h.back().online;
  }, milliseconds(2000)));
  CHECK(rig.sink.batchTimes(co).empty());
  double garbled =
      rig.metrics.value("hgj_modbus_errors_total", {{"line", "rs485-1"}, {"kind", "crc"}}) +
      rig.metrics.value("hgj_modbus_errors_total", {{"line", "rs485-1"}, {"kind", "bad_frame"}}) +
      rig.metrics.value("hgj_modbus_errors_total", {{"line", "rs485-1"}, {"kind", "timeout"}});
  CHECK(garbled >= 2);
  slave->setGarbage(5, false);
  REQUIRE(test::waitFor([&] { return rig.sink.last(co, rig.pt("co_ppm")) == model::Value(12.0); },
                    milliseconds(3000)));
}
