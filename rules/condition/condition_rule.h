#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::condition {

/// Keys of a condition rule besides the common ones: `expr` (muParser syntax over the device's
/// point names: `current_a > 0.5 && temp_c > 55`), `clear_expr` (optional hysteresis).
extern const std::vector<std::string> kKeys;

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule);

/// The family's entry in the rule family table (rules/rule_family.h).
extern const RuleFamily kFamily;

/// Compiles the expression at `node.key` and checks its points exist on every selected device.
std::shared_ptr<Expression> compileAt(const core::ConfigNode& node, std::string_view key,
                                      const model::Compound& compound,
                                      const std::vector<model::DeviceIndex>& devices);

} // namespace hgj::rules::condition
