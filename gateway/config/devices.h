#pragma once

// The device list (conf/devices.yaml), for the loader in config.cpp.
#include <string>
#include <vector>

#include "core/config_node.h"
#include "model/compound.h"

namespace hgj::config {

/// Parses the `devices:` list into compound.devices: ranged entries and shed ports expanded, ids
/// checked, then parents, children and linked devices resolved. Problems go to the nodes'
/// diagnostics as FILE:LINE, in file order. Needs the profiles, grids and categories loaded.
void parseDevices(const core::ConfigNode& root, model::Compound& compound);

/// The ids of the compound's space categories (for "did you mean").
std::vector<std::string> categoryIds(const model::Compound& compound);

} // namespace hgj::config
