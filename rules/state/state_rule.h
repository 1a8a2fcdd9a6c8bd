#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::state {

/// The family's entry in the rule family table (rules/rule_family.h): those keys, its parser
/// and its default message.
extern const RuleFamily kFamily;

/// The `point` + equals/in/not_in predicate on `on`-related devices (shared with held and
/// correlation rules).
std::optional<Predicate> parseValuePredicate(const core::ConfigNode& node,
                                             const model::Compound& compound,
                                             const std::vector<model::DeviceIndex>& devices,
                                             Relation on, bool allow_numeric);

} // namespace hgj::rules::state
