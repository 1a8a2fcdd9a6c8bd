#pragma once

#include <memory>
#include <string>

#include "model/compound.h"

namespace hgj::sim {

/// The compound the gateway config at `gateway_path` describes (its devices, profiles and
/// grids), read with the gateway's own loader so the simulator plays exactly what the gateway
/// expects. Throws core::ConfigError with the gateway config's problems.
std::shared_ptr<const model::Compound> loadCompound(const std::string& gateway_path);

} // namespace hgj::sim
