// docs/reliability.md row 14 against the daemon: a Modbus device that stops answering, then the
// whole Modbus side lost (the simulator SIGKILLed: every line's server gone) and back.
#include <csignal>
#include <filesystem>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/faults/modbus/modbus_sim.h"
#include "tests/support/test_support.h"

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

json getJson(hgj::test::GatewayProcess& gw, const std::string& path) {
  auto [code, body] = gw.get(path);
  return code == 200 ? json::parse(body, nullptr, false) : json();
}

bool online(hgj::test::GatewayProcess& gw, const std::string& device) {
  return getJson(gw, "/api/v1/devices/" + device).value("online", false);
}

double metric(hgj::test::GatewayProcess& gw, const std::string& name, const std::string& device,
              const std::string& also = {}) {
  return hgj::test::deviceMetric(gw.get("/metrics").second, name, device, also);
}

size_t openFds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++n;
  }
  return n;
}

std::string fdList(pid_t pid) {
  std::string out;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    out += std::filesystem::read_symlink(e.path(), ec).string() + " ";
  }
  return out;
}

// One device of each line, and M01's neighbour on the shed bus.
const std::vector<std::string> kWatched{"M01", "M02", "EVM-01", "CO-B1-1", "FAN-B1"};

} // namespace

TEST_CASE("faults modbus: a device that stops answering is offline after its timeouts, its "
          "neighbours keep their cadence, everything is back after the whole line was lost, "
          "file descriptors flat",
          "[faults][modbus]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  // M01 (poll 1 s, timeout 300 ms) goes silent 15 s into the run, for 15 s.
  hgj::test::ModbusSim sim(dir, broker.url(),
                           "  - {at: 15s, type: silent, device: M01, for: 15s}\n");
  auto gw = hgj::test::startGateway(broker.url(), dir.file("hgj.db"), dir.file("gw.log"),
                                    sim.gatewaySets());
  for (const auto& d : kWatched) {
    INFO(d);
    REQUIRE(hgj::test::waitFor([&] { return online(*gw, d); }, 30s));
  }

  // M01 goes silent: offline, the reason its timeouts.
  REQUIRE(hgj::test::waitFor([&] { return !online(*gw, "M01"); }, 40s));
  const auto silent_from = std::chrono::steady_clock::now();
  const double m02_polls_at_start = metric(*gw, "hgj_modbus_device_polls_total", "M02");
  CHECK(getJson(*gw, "/api/v1/devices/M01")["faulted"] == false);
  CHECK(metric(*gw, "hgj_modbus_device_errors_total", "M01", "kind=\"timeout\"") >= 1);
  CHECK(metric(*gw, "hgj_modbus_device_failed_polls_total", "M01") >= 1);
  auto health = getJson(*gw, "/healthz");
  INFO(health.dump());
  CHECK(health["modbus"].get<std::string>().find("offline") != std::string::npos);
  // Back when it answers again; M02 was polled all the while.
  REQUIRE(hgj::test::waitFor([&] { return online(*gw, "M01"); }, 40s));
  const double silent_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - silent_from).count();
  const double m02_polls = metric(*gw, "hgj_modbus_device_polls_total", "M02") - m02_polls_at_start;
  INFO("M02 polled " << m02_polls << " times in the " << silent_s << " s M01 was offline");
  CHECK(online(*gw, "M02"));
  // Poll interval 1 s: at least half its polls (a generous bound for a loaded box).
  CHECK(m02_polls >= silent_s / 2);

  // The baseline for the descriptors: after a first offline episode, so that the alert
  // channels' connections (device_offline goes to the robots) are counted in it.
  const size_t fds_before = openFds(gw->pid());
  const std::string fd_list_before = fdList(gw->pid());

  // The whole Modbus side lost: every line's server gone at once.
  sim.kill();
  for (const auto& d : kWatched) {
    INFO(d);
    REQUIRE(hgj::test::waitFor([&] { return !online(*gw, d); }, 40s));
  }
  health = getJson(*gw, "/healthz");
  INFO(health.dump());
  CHECK(health["status"] == "degraded");
  CHECK(health["modbus"].get<std::string>().find("not connected") != std::string::npos);
  // The servers come back on the same ports: the lines reconnect by themselves.
  sim.start();
  for (const auto& d : kWatched) {
    INFO(d);
    REQUIRE(hgj::test::waitFor([&] { return online(*gw, d); }, 60s));
  }
  // Every device of every line, the slow ones (poll 10 s, backed off) too.
  REQUIRE(hgj::test::waitFor([&] { return getJson(*gw, "/healthz")["modbus"] == "ok"; }, 60s));
  // One connection per line, as before: nothing leaked across the reconnects. (Waited for, as
  // the HTTP server closes this test's finished connections on its own schedule.)
  size_t fds_after = 0;
  CHECK(hgj::test::waitFor(
      [&] {
        fds_after = openFds(gw->pid());
        return fds_after <= fds_before;
      },
      10s));
  INFO("fds " << fds_before << " before: " << fd_list_before << "\n" << fds_after
               << " after: " << fdList(gw->pid()));
  CHECK(fds_after <= fds_before);
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}
