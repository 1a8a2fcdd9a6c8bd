#include <atomic>
#include <cstdio>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/integration/modbus/modbus_rig.h"

using namespace hgj;
using namespace hgj::test_modbus;
using drivers::profiles::RegisterTable;
using std::chrono::milliseconds;

namespace {

constexpr int kDevices = 100;

const char* const kTwentyRegisters = R"(
type: meter
transport: modbus
points:
  r00: {type: number}
  r01: {type: number}
  r02: {type: number}
  r03: {type: number}
  r04: {type: number}
  r05: {type: number}
  r06: {type: number}
  r07: {type: number}
  r08: {type: number}
  r09: {type: number}
  r10: {type: number}
  r11: {type: number}
  r12: {type: number}
  r13: {type: number}
  r14: {type: number}
  r15: {type: number}
  r16: {type: number}
  r17: {type: number}
  r18: {type: number}
  r19: {type: number}
modbus:
  registers:
    - {point: r00, table: holding, address: 0}
    - {point: r01, table: holding, address: 1}
    - {point: r02, table: holding, address: 2}
    - {point: r03, table: holding, address: 3}
    - {point: r04, table: holding, address: 4}
    - {point: r05, table: holding, address: 5}
    - {point: r06, table: holding, address: 6}
    - {point: r07, table: holding, address: 7}
    - {point: r08, table: holding, address: 8}
    - {point: r09, table: holding, address: 9}
    - {point: r10, table: holding, address: 10}
    - {point: r11, table: holding, address: 11}
    - {point: r12, table: holding, address: 12}
    - {point: r13, table: holding, address: 13}
    - {point: r14, table: holding, address: 14}
    - {point: r15, table: holding, address: 15}
    - {point: r16, table: holding, address: 16}
    - {point: r17, table: holding, address: 17}
    - {point: r18, table: holding, address: 18}
    - {point: r19, table: holding, address: 19}
)";

/// Counts readings without keeping them: the benchmark measures the driver, not a test sink.
class CountingSink : public drivers::SampleSink {
public:
  bool deliver(drivers::Sample&& s) override {
    if (const auto* b = std::get_if<drivers::ReadingBatch>(&s)) {
      readings.fetch_add(b->readings.size());
      batches.fetch_add(1);
      seen[b->device].store(true);
    }
    return true;
  }
  std::atomic<uint64_t> readings{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<bool> seen[kDevices]{};
};

/// The devices' server runs in a child process, so the parent's CPU time is the driver's alone.
class ForkedServer {
public:
  ForkedServer() {
    int port_pipe[2];
    int stop_pipe[2];
    REQUIRE(::pipe(port_pipe) == 0);
    REQUIRE(::pipe(stop_pipe) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(port_pipe[0]);
      ::close(stop_pipe[1]);
      auto slave = sim::ModbusSlave::tcp();
      for (int u = 1; u <= kDevices; ++u) {
        slave->addUnit(u, sim::UnitLayout::of({0, 0}, {0, 0}, {0, 32}, {0, 0}));
        for (uint16_t a = 0; a < 20; ++a) {
          slave->setRegister(u, RegisterTable::Holding, a, static_cast<uint16_t>(u * 100 + a));
        }
      }
      slave->start();
      int port = slave->port();
      (void)!::write(port_pipe[1], &port, sizeof port);
      char c;
      while (::read(stop_pipe[0], &c, 1) > 0) {
      }
      slave->stop();
      ::_exit(0);
    }
    ::close(port_pipe[1]);
    ::close(stop_pipe[0]);
    stop_fd_ = stop_pipe[1];
    REQUIRE(::read(port_pipe[0], &port_, sizeof port_) == sizeof port_);
    ::close(port_pipe[0]);
  }
  ~ForkedServer() {
    ::close(stop_fd_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  int port() const { return port_; }

private:
  pid_t pid_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
};

double cpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// "l" + std::to_string(n), appended: GCC 12's Release build reports a false -Wrestrict on a literal
// prepended to a temporary string (GCC bug 105329).
std::string named(const char* prefix, int n) {
  std::string s = prefix;
  s += std::to_string(n);
  return s;
}

double measure(bool one_line_per_device, int seconds) {
  ForkedServer server;
  model::Compound compound;
  loadProfileText(compound, "twenty", kTwentyRegisters);
  drivers::modbus::ModbusConfig config;
  int lines = one_line_per_device ? kDevices : 1;
  for (int l = 0; l < lines; ++l) {
    drivers::modbus::LineConfig line;
    line.id = named("l", l);
    line.port = server.port();
    line.timeout_ms = 500;
    config.lines.push_back(line);
  }
  for (int d = 1; d <= kDevices; ++d) {
    std::string line = one_line_per_device ? named("l", d - 1) : "l0";
    addDevice(compound, named("D", d), "twenty", binding(line, d, 1000, 500));
  }
  compound.buildIndexes();
  CountingSink sink;
  core::MetricsRegistry metrics;
  drivers::modbus::ModbusDriver driver(config, compound, sink, metrics,
                                       core::SystemClock::instance());
  driver.start();
  REQUIRE(test::waitFor(
      [&] {
        for (const auto& s : sink.seen) {
          if (!s.load()) {
            return false;
          }
        }
        return true;
      },
      milliseconds(5000)));
  uint64_t readings0 = sink.readings.load();
  double cpu0 = cpuSeconds();
  auto t0 = std::chrono::steady_clock::now();
  // The measurement window itself: nothing to wait for, the driver runs on its own threads.
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = cpuSeconds() - cpu0;
  uint64_t readings = sink.readings.load() - readings0;
  driver.stop();
  double percent = 100.0 * cpu / wall;
  std::printf("modbus bench: %d TCP devices x 20 registers at 1 s on %d line(s): %.0f readings/s, "
              "CPU %.2f%% of one core (%.1f us per device poll)\n",
              kDevices, lines, static_cast<double>(readings) / wall, percent,
              1e6 * cpu / (static_cast<double>(readings) / 20.0));
  // On a loaded machine one line's round trips can fall slightly behind 100 polls per second;
  // the figure that matters is the CPU per poll.
  CHECK(static_cast<double>(readings) / wall >= 0.85 * kDevices * 20);
  return percent;
}

} // namespace

TEST_CASE("modbus bench: 100 TCP devices x 20 registers at 1 s cost under 10% of a core",
          "[.bench][modbus]") {
  CHECK(measure(true, 10) < 10.0);
  CHECK(measure(false, 10) < 10.0);
}
