#pragma once

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::offline {

/// The family's entry in the rule family table (rules/rule_family.h): those keys, its parser
/// and its default message.
extern const RuleFamily kFamily;

} // namespace hgj::rules::offline
