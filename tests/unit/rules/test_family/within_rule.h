#pragma once

// A rule family that exists only in the tests: it proves that a new `kind:` is one folder and
// one registration line (the family's entry added to the table the rules are loaded with).

#include <string>
#include <vector>

#include "core/config_node.h"
#include "rules/rule.h"
#include "rules/rule_family.h"

namespace hgj::rules::within {

/// Keys of a `within` rule besides the common ones: `point`, `from`, `to`: it holds while the
/// point's value is strictly between the two.
extern const std::vector<std::string> kKeys;

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule);

extern const RuleFamily kFamily;

} // namespace hgj::rules::within
