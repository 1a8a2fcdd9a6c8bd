#pragma once

// The Modbus side of the fault tests: hgj-sim (libmodbus servers) serving the example
// compound's Modbus lines on loopback ports chosen free at run time, and the gateway's
// Prometheus counters read by device.

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace hgj::test {

/// hgj-sim serving the example compound's Modbus lines (shed-bus, meter-bus, garage-bus), with
/// a scenario of the given events. Not thread-safe; owned by the test.
class ModbusSim {
public:
  ModbusSim(const TempDir& dir, const std::string& broker_url, const std::string& events)
      : dir_(dir), broker_url_(broker_url) {
    scenario_ = dir.file("scenario.yaml");
    std::ofstream(scenario_) << "gateway: " << sourcePath("conf/gateway.yaml")
                             << "\nspeed: 1\nrealistic: false\nevents:\n"
                             << events;
    for (const char* line : {"shed-bus", "meter-bus", "garage-bus"}) {
      ports[line] = freePort();
    }
    start();
  }

  /// Starts the simulator on the same ports (again, after kill()); waits until they accept.
  void start() {
    std::vector<std::string> argv{binary("tools/sim/hgj-sim"), "-c", scenario_, "--set",
                                  "mqtt.url=" + broker_url_};
    for (const auto& [line, port] : ports) {
      argv.push_back("--set");
      argv.push_back("modbus.lines." + line + "=" + std::to_string(port));
    }
    process = std::make_unique<Process>(argv, dir_.file("sim" + std::to_string(++runs_) + ".log"));
    for (const auto& [line, port] : ports) {
      const int p = port;
      REQUIRE(waitFor([&] { return portOpen(p); }, std::chrono::seconds(20)));
    }
  }

  /// SIGKILL: every line's server vanishes at once (the TCP-to-RS-485 gateway loses power).
  void kill() {
    process->signal(SIGKILL);
    process->wait(std::chrono::seconds(10));
    process.reset();
  }

  /// The gateway's --set overrides that point its lines at this simulator.
  std::vector<std::string> gatewaySets() const {
    std::vector<std::string> s{"modbus.enabled=true"};
    for (const auto& [line, port] : ports) {
      s.push_back("modbus.lines." + line + ".port=" + std::to_string(port));
    }
    return s;
  }

  std::map<std::string, int> ports;
  std::unique_ptr<Process> process;

private:
  const TempDir& dir_;
  std::string broker_url_;
  std::string scenario_;
  int runs_ = 0;
};

/// The value of a metric sample whose labels include device="<device>" in a /metrics body;
/// -1 when there is none.
/// `also`: another label the sample must carry, e.g. kind="timeout".
inline double deviceMetric(const std::string& metrics, const std::string& name,
                           const std::string& device, const std::string& also = {}) {
  const std::string head = name + "{";
  for (auto at = metrics.find(head); at != std::string::npos; at = metrics.find(head, at + 1)) {
    if (at != 0 && metrics[at - 1] != '\n') {
      continue;
    }
    const auto eol = metrics.find('\n', at);
    const std::string line = metrics.substr(at, eol - at);
    if (line.find("device=\"" + device + "\"") != std::string::npos &&
        (also.empty() || line.find(also) != std::string::npos)) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

} // namespace hgj::test
