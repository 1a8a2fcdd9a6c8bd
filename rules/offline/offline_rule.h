#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::offline {

/// Keys of an offline rule besides the common ones: `after` (silent longer than this; default
/// the device's expected interval) and `never_seen` (default true: a device not heard from
/// within `after` of start-up counts as offline too).
extern const std::vector<std::string> kKeys;

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule);

/// The family's entry in the rule family table (rules/rule_family.h).
extern const RuleFamily kFamily;

} // namespace hgj::rules::offline
