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
  for (const auto& line : cfg.modbus.lines) {
    if (line.kind == drivers::modbus::LineKind::Tcp && isLoopback(line.host)) {
      view.tcp_lines[line.id] = line.port;
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
