#pragma once

#include <string>

#include "core/config_node.h"
#include "model/compound.h"

namespace hgj::drivers::profiles {

/// Loads one profile file (`<dir>/<name>.yaml`, name = file stem): the common part (type,
/// transport, points, expected interval, children) and the transport section (`mqtt:` or
/// `modbus:`). Problems go to `diag`. Returns the profile (owned by `compound`) or nullptr.
model::Profile* loadProfile(const std::string& path, model::Compound& compound,
                            core::Diagnostics& diag);

/// Loads every `*.yaml` of a directory, in name order.
void loadProfileDir(const std::string& dir, model::Compound& compound, core::Diagnostics& diag);

} // namespace hgj::drivers::profiles
