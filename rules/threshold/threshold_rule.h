#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::threshold {

/// Keys of a threshold rule besides the common ones: `point`, `op` (> >= < <=), `value`,
/// `clear` (hysteresis: for > the rule clears below `clear`, for < above it).
extern const std::vector<std::string> kKeys;

/// Fills the threshold-specific part of `rule` (whose devices are already selected).
void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule);

/// The family's entry in the rule family table (rules/rule_family.h).
extern const RuleFamily kFamily;

} // namespace hgj::rules::threshold
