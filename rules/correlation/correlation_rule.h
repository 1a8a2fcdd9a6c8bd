#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::correlation {

/// Keys of a correlation rule besides the common ones: `self` (a predicate on the selected
/// device: point + equals/in/not_in or op+value) and `other` (the same plus `relation`: linked |
/// parent | children_any | children_all). Devices without the related device are skipped.
/// Example: an EV space occupied while its linked pile is not charging, for 15 min.
extern const std::vector<std::string> kKeys;

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule);

/// The family's entry in the rule family table (rules/rule_family.h).
extern const RuleFamily kFamily;

} // namespace hgj::rules::correlation
