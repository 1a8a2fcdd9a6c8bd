#pragma once

#include <map>
#include <memory>
#include <string>

#include "model/compound.h"
#include "tools/sim/scenario.h"

namespace hgj::sim {

/// What the simulator takes from the gateway config it plays against.
struct GatewayView {
  std::shared_ptr<const model::Compound> compound;
  /// Modbus TCP lines of the gateway config on a loopback host: line id -> port. The simulator
  /// serves each of them unless the scenario gives the line another port.
  std::map<std::string, int> tcp_lines;
};

/// Reads the gateway config at `gateway_path` with the gateway's own loader, so the simulator
/// plays exactly the devices, profiles and lines the gateway expects. Throws core::ConfigError
/// with the gateway config's problems.
GatewayView loadGateway(const std::string& gateway_path);

/// Adds the gateway's loopback TCP lines that the scenario does not set itself.
void adoptGatewayLines(Scenario& scenario, const GatewayView& gateway);

} // namespace hgj::sim
