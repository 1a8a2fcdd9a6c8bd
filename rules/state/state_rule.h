#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::state {

/// Keys of a state rule besides the common ones: `point` and one of `equals`, `in`, `not_in`
/// (smoke == true; optionally held `for` a duration, timed from the point's since-when).
extern const std::vector<std::string> kKeys;

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule);

/// The family's entry in the rule family table (rules/rule_family.h).
extern const RuleFamily kFamily;

/// The `point` + equals/in/not_in predicate on `on`-related devices (shared with held and
/// correlation rules).
std::optional<Predicate> parseValuePredicate(const core::ConfigNode& node,
                                             const model::Compound& compound,
                                             const std::vector<model::DeviceIndex>& devices,
                                             Relation on, bool allow_numeric);

} // namespace hgj::rules::state
