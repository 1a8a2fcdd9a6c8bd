#pragma once

// A small compound for the daemon-level safety tests: the real hgj-gateway on its own config
// (an MQTT shed S01 with 3 ports, a Modbus 12-port shed M01 on a free loopback port, parking
// space P-01, the shipped profiles, alerts routed to a robot stand-in), a real mosquitto, and
// either the simulator or the test itself playing the devices.
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"
#include "tools/sim/simulator.h"

namespace hgj::safety_test {

/// Stands in for the WeCom and DingTalk robots and the webhook: records every POST.
class RobotServer {
public:
  RobotServer();
  ~RobotServer();
  int port() const { return port_; }
  std::vector<std::string> bodies() const;
  /// Whether a body on `path_part` mentions all of `words`.
  bool saw(const std::string& path_part, const std::vector<std::string>& words) const;

private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> bodies_;
};

/// The operator token the site's gateway reads from its token file; write() sends it.
inline constexpr const char* kOperatorToken = "operator-token-safety-site-0123456789";

struct SiteOptions {
  std::string port_hold = "10s";  ///< port_over_temperature `for:`
  std::string zombie_hold = "7d"; ///< zombie_vehicle `for:`
  bool uplink = false;            ///< uplink to the same broker, commands on for S01/P*.relay
  bool allow_override = false;    ///< uplink.commands.allow_override
};

/// The config files in a temporary directory and the processes around them.
class Site {
public:
  explicit Site(SiteOptions options = {});
  ~Site();

  /// Starts (or restarts) the gateway on the same database; waits until it is ready. `env`:
  /// extra environment (HGJ_FAULTS, WATCHDOG_USEC) for this run only.
  void startGateway(std::vector<std::string> extra_sets = {},
                    std::vector<std::pair<std::string, std::string>> env = {});
  /// kill -9, reaped.
  void killGateway();
  void stopGateway();

  /// The simulator on this site's config with `events` (YAML list items) and `behaviour`
  /// (YAML mapping body, may be empty), started.
  void startSim(const std::string& events, const std::string& behaviour = "");

  /// POST /api/v1/devices/{device}/points/{point}: status and body.
  std::pair<int, nlohmann::json> write(const std::string& device, const std::string& point,
                                       const nlohmann::json& body) const;

  long long q(const std::string& sql) const { return hgj::test::queryInt(db, sql); }
  std::vector<std::string> rows(const std::string& sql) const {
    return hgj::test::queryRows(db, sql);
  }

  SiteOptions options;
  hgj::test::Broker broker{false};
  hgj::test::TempDir dir;
  RobotServer robots;
  std::string db;
  std::string config;
  int modbus_port = 0;
  std::unique_ptr<hgj::test::GatewayProcess> gw;
  std::unique_ptr<hgj::sim::Simulator> sim;
  int runs = 0;
};

/// A test client playing an MQTT port: publishes its telemetry, sees the gateway's commands.
class PlayedPort {
public:
  PlayedPort(const std::string& broker_url, std::string id);
  /// Publishes {"relay":..,"temp_c":..,"power_w":..,"current_a":..,"ts":now}.
  void report(bool relay, double temp_c);
  /// Payloads the gateway sent on the port's /set topic, oldest first.
  std::vector<nlohmann::json> commands() const;
  /// How many refresh requests (/get) the gateway sent.
  size_t refreshes() const;
  size_t countCommands(bool relay) const;

  std::string id;

private:
  hgj::test::TestClient client_;
};

std::string readText(const std::string& path);

} // namespace hgj::safety_test
