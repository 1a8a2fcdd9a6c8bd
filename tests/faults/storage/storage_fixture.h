#pragma once

// What the storage fault tests share: a stand-in for the alert robots, the shipped alert
// channels pointed at it, and reads of the daemon's /healthz and /metrics.

#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace hgj::test::storage {

/// Stands in for the WeCom / DingTalk robots and the webhook: answers every POST with success
/// and records it.
class RobotServer {
public:
  RobotServer() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu_);
        bodies_.push_back(req.path + " " + req.body);
      }
      res.set_content(R"({"errcode":0,"errmsg":"ok"})", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~RobotServer() {
    server_.stop();
    thread_.join();
  }
  RobotServer(const RobotServer&) = delete;
  RobotServer& operator=(const RobotServer&) = delete;
  int port() const { return port_; }
  /// How many POSTs so far contained `text`.
  size_t count(const std::string& text) const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& b : bodies_) {
      n += b.find(text) != std::string::npos ? 1 : 0;
    }
    return n;
  }

private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> bodies_;
};

/// The shipped conf/alerts.yaml with every robot URL pointed at `robot_port`; returns the path
/// of the copy in `dir`.
inline std::string alertsFileFor(const TempDir& dir, int robot_port) {
  std::ifstream in(sourcePath("conf/alerts.yaml"));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = std::regex_replace(ss.str(), std::regex("127\\.0\\.0\\.1:1808[0-9]"),
                                        "127.0.0.1:" + std::to_string(robot_port));
  std::string path = dir.file("alerts.yaml");
  std::ofstream(path) << text;
  return path;
}

/// /healthz as JSON (null when it did not answer).
inline nlohmann::json health(const GatewayProcess& gw) {
  auto [status, body] = gw.get("/healthz");
  if (status < 0) {
    return nullptr;
  }
  return nlohmann::json::parse(body, nullptr, false);
}

/// The sum of a metric's samples (all label sets) on /metrics; -1 when it is absent.
inline double metric(const GatewayProcess& gw, const std::string& name) {
  auto [status, body] = gw.get("/metrics");
  if (status != 200) {
    return -1;
  }
  std::istringstream lines(body);
  std::string line;
  double sum = 0;
  bool found = false;
  while (std::getline(lines, line)) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size() ||
        (line[name.size()] != ' ' && line[name.size()] != '{')) {
      continue;
    }
    found = true;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return found ? sum : -1;
}

/// A JSON telemetry report of one e-bike port of the example compound's MQTT sheds.
inline std::string portReport(double temp_c, bool relay = true) {
  std::ostringstream o;
  o << R"({"current_a":1.2,"power_w":260,"temp_c":)" << temp_c
    << R"(,"relay":)" << (relay ? "true" : "false") << "}";
  return o.str();
}

} // namespace hgj::test::storage
