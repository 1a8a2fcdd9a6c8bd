#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::held {

/// Keys of a held rule besides the common ones: `point` and one of `equals`, `in`, `not_in`;
/// `for` is required. The duration counts from the point's persisted since-when, so a
/// restart does not reset a 7-day timer (zombie vehicle, e-bike session over 8 h with
/// `while: current_a > 0.2`).
extern const std::vector<std::string> kKeys;

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule);

/// The family's entry in the rule family table (rules/rule_family.h).
extern const RuleFamily kFamily;

} // namespace hgj::rules::held
