#include "rules/held/held_rule.h"

#include "rules/message_template.h"
#include "rules/state/state_rule.h"

namespace hgj::rules::held {

namespace {

const std::vector<std::string> kKeys = {"point", "equals", "in", "not_in"};

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule) {
  if (!node.has("for")) {
    node.errorAt("for", "required: how long the point must hold its value (e.g. 7d)");
  }
  auto p = state::parseValuePredicate(node, compound, rule.devices, Relation::Self, false);
  if (!p) {
    return;
  }
  rule.threshold_text = formatDuration(rule.hold.count());
  rule.when.push_back(*p);
}

} // namespace

const RuleFamily kFamily{.name = "held", .keys = &kKeys, .parse = parse,
                         .default_message = "{device} {location}: {point} = {value} for {held}"};

} // namespace hgj::rules::held
