#include "tools/sim/compound_source.h"

#include "gateway/config/config.h"

namespace hgj::sim {

namespace {

bool isLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

} // namespace

GatewayView loadGateway(const std::string& gateway_path) {
  core::Diagnostics diag;
  auto cfg = config::loadConfig(gateway_path, {}, diag);
  if (!diag.ok() || !cfg.compound) {
    throw core::ConfigError(std::move(diag));
  }
  GatewayView view;
  view.compound = cfg.compound;
  // Only the line endpoints matter here; the Modbus driver's parser validates the section.
  if (cfg.modbus && cfg.modbus->defined()) {
    const YAML::Node& lines = cfg.modbus->yaml()["lines"];
    if (lines.IsDefined() && lines.IsSequence()) {
      for (const auto& line : lines) {
        if (!line.IsMap()) {
          continue;
        }
        std::string id = line["id"].as<std::string>("");
        std::string type = line["type"].as<std::string>("tcp");
        std::string host = line["host"].as<std::string>("");
        int port = line["port"].as<int>(502);
        if (!id.empty() && type == "tcp" && isLoopback(host)) {
          view.tcp_lines[id] = port;
        }
      }
    }
  }
  return view;
}

void adoptGatewayLines(Scenario& scenario, const GatewayView& gateway) {
  for (const auto& [line, port] : gateway.tcp_lines) {
    scenario.modbus.lines.emplace(line, port);
  }
}

} // namespace hgj::sim
