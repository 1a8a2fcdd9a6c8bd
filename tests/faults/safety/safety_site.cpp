#include "tests/faults/safety/safety_site.h"

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <signal.h>

#include "core/config_node.h"
#include "tools/sim/compound_source.h"
#include "tools/sim/scenario.h"

namespace hgj::safety_test {

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RobotServer::RobotServer() {
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

RobotServer::~RobotServer() {
  server_.stop();
  thread_.join();
}

std::vector<std::string> RobotServer::bodies() const {
  std::lock_guard lock(mu_);
  return bodies_;
}

bool RobotServer::saw(const std::string& path_part, const std::vector<std::string>& words) const {
  for (const auto& b : bodies()) {
    if (b.find(path_part) == std::string::npos) {
      continue;
    }
    bool all = true;
    for (const auto& w : words) {
      all = all && b.find(w) != std::string::npos;
    }
    if (all) {
      return true;
    }
  }
  return false;
}

namespace {

void replaceOnce(std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  if (at == std::string::npos) {
    throw std::runtime_error("shipped rules changed: cannot find \"" + from + "\"");
  }
  text.replace(at, from.size(), to);
}

} // namespace

Site::Site(SiteOptions o) : options(std::move(o)) {
  db = dir.file("hgj.db");
  modbus_port = hgj::test::freePort();
  // The shipped rules with the durations this test wants.
  std::string rules = readText(hgj::test::sourcePath("conf/rules.yaml"));
  replaceOnce(rules, "    clear: 55\n    for: 10s", "    clear: 55\n    for: " + options.port_hold);
  replaceOnce(rules, "    equals: true\n    for: 7d",
              "    equals: true\n    for: " + options.zombie_hold);
  std::ofstream(dir.file("rules.yaml")) << rules;
  // The shipped alert channels, pointed at the robot stand-in.
  std::string alerts = readText(hgj::test::sourcePath("conf/alerts.yaml"));
  alerts = std::regex_replace(alerts, std::regex("127\\.0\\.0\\.1:1808[0-9]"),
                              "127.0.0.1:" + std::to_string(robots.port()));
  std::ofstream(dir.file("alerts.yaml")) << alerts;
  std::ofstream(dir.file("devices.yaml"))
      << "devices:\n"
      << "  - {id: P-01, profile: parking_sensor_mqtt, grid: G1}\n"
      << "  - {id: S01, profile: ebike_shed_mqtt, grid: G3, ports: 3}\n"
      << "  - {id: M01, profile: hgj_ebike_shed_m12, grid: G3, ports: 12,\n"
      << "     modbus: {line: shed-bus, unit: 1, poll_interval: 1s, timeout: 300ms}}\n";
  std::ofstream(dir.file("operator.token")) << kOperatorToken << "\n";
  config = dir.file("gateway.yaml");
  std::ofstream(config) << "site: {id: site1}\n"
                        << "include:\n"
                        << "  grids: " << hgj::test::sourcePath("conf/grids.yaml") << "\n"
                        << "  alerts: alerts.yaml\n"
                        << "  devices: devices.yaml\n"
                        << "  rules: rules.yaml\n"
                        << "  profiles: " << hgj::test::sourcePath("conf/profiles") << "\n"
                        << "http: {operator_token_file: " << dir.file("operator.token") << "}\n"
                        << "modbus:\n"
                        << "  lines: [{id: shed-bus, type: tcp, host: 127.0.0.1, port: "
                        << modbus_port << "}]\n"
                        << "uplink:\n"
                        << "  enabled: " << (options.uplink ? "true" : "false") << "\n"
                        << "  url: " << broker.url() << "\n"
                        << "  client_id: platform-link\n"
                        << "  commands: {enabled: true, write_points: ['S01/P*.relay'], "
                        << "allow_override: " << (options.allow_override ? "true" : "false")
                        << "}\n";
}

Site::~Site() {
  if (sim) {
    sim->stop();
  }
  if (gw && gw->running()) {
    gw->signal(SIGKILL);
    gw->wait();
  }
}

void Site::startGateway(std::vector<std::string> extra_sets,
                        std::vector<std::pair<std::string, std::string>> env) {
  // The simulator serves the port this site's config names; the gateway keeps polling it
  // across restarts instead of a fresh free port of its own.
  extra_sets.insert(extra_sets.begin(),
                    {"modbus.enabled=true", "modbus.lines.shed-bus.port=" + std::to_string(modbus_port)});
  // The child inherits this process's environment at fork: set it around the spawn only.
  for (const auto& [k, v] : env) {
    setenv(k.c_str(), v.c_str(), 1);
  }
  gw = hgj::test::spawnGateway(broker.url(), db, dir.file("gw" + std::to_string(++runs) + ".log"),
                               std::move(extra_sets), config);
  for (const auto& [k, v] : env) {
    unsetenv(k.c_str());
  }
  gw->waitReady();
}

void Site::killGateway() {
  gw->signal(SIGKILL);
  gw->wait();
}

void Site::stopGateway() {
  gw->signal(SIGTERM);
  if (gw->wait() != 0) {
    throw std::runtime_error("gateway did not stop cleanly:\n" + gw->output());
  }
}

void Site::startSim(const std::string& events, const std::string& behaviour) {
  std::string yaml =
      "gateway: " + config + "\nspeed: 1\nrealistic: false\ntimestamps: wall\n" +
      "mqtt: {client_id: hgj-sim-safety, url: " + broker.url() + "}\n" +
      (behaviour.empty() ? "" : "behaviour:\n" + behaviour) + "events:\n" + events;
  core::Diagnostics diag;
  auto root = core::loadYamlText(yaml, "scenario.yaml", diag);
  if (!root) {
    throw core::ConfigError(std::move(diag));
  }
  hgj::sim::Scenario scenario = hgj::sim::parseScenario(*root, ".");
  if (!diag.ok()) {
    throw core::ConfigError(std::move(diag));
  }
  auto view = hgj::sim::loadGateway(scenario.gateway);
  hgj::sim::adoptGatewayLines(scenario, view);
  sim = std::make_unique<hgj::sim::Simulator>(std::move(scenario), view.compound);
  sim->start();
}

std::pair<int, nlohmann::json> Site::write(const std::string& device, const std::string& point,
                                           const nlohmann::json& body) const {
  httplib::Client cli("127.0.0.1", gw->httpPort());
  cli.set_read_timeout(30, 0);
  cli.set_bearer_token_auth(kOperatorToken);
  auto res = cli.Post("/api/v1/devices/" + device + "/points/" + point, body.dump(),
                      "application/json");
  if (!res) {
    return {-1, nullptr};
  }
  return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
}

PlayedPort::PlayedPort(const std::string& broker_url, std::string port_id)
    : id(std::move(port_id)), client_(broker_url) {
  client_.subscribe("compound/ebike/" + id + "/set");
  client_.subscribe("compound/ebike/" + id + "/get");
}

void PlayedPort::report(bool relay, double temp_c) {
  nlohmann::json j{{"relay", relay},
                   {"temp_c", temp_c},
                   {"power_w", relay ? 200.0 : 0.0},
                   {"current_a", relay ? 0.9 : 0.0},
                   {"ts", std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count()}};
  client_.publish("compound/ebike/" + id + "/telemetry", j.dump());
}

std::vector<nlohmann::json> PlayedPort::commands() const {
  std::vector<nlohmann::json> out;
  for (const auto& m : client_.messages()) {
    if (m.topic == "compound/ebike/" + id + "/set") {
      out.push_back(nlohmann::json::parse(m.payload, nullptr, false));
    }
  }
  return out;
}

size_t PlayedPort::countCommands(bool relay) const {
  size_t n = 0;
  for (const auto& c : commands()) {
    n += c.is_object() && c.contains("relay") && c["relay"] == relay ? 1 : 0;
  }
  return n;
}

size_t PlayedPort::refreshes() const {
  size_t n = 0;
  for (const auto& m : client_.messages()) {
    n += m.topic == "compound/ebike/" + id + "/get" ? 1 : 0;
  }
  return n;
}

} // namespace hgj::safety_test
