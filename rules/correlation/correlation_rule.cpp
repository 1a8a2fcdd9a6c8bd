#include "rules/correlation/correlation_rule.h"

#include <algorithm>

#include "rules/rule_parse.h"
#include "rules/state/state_rule.h"

namespace hgj::rules::correlation {

namespace {

const std::vector<std::string> kKeys = {"self", "other"};

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule) {
  core::ConfigNode self = node.child("self");
  core::ConfigNode other = node.child("other");
  if (!self.defined()) {
    node.errorAt("self", "required: the condition on the selected device");
    return;
  }
  if (!other.defined()) {
    node.errorAt("other", "required: the condition on the related device (with relation:)");
    return;
  }
  bool ok = self.allowKeys({"point", "op", "value", "equals", "in", "not_in"});
  ok = other.allowKeys({"relation", "point", "op", "value", "equals", "in", "not_in"}) && ok;
  if (!ok) {
    return;
  }
  std::string rel =
      other.choice("relation", "linked", {"linked", "parent", "children_any", "children_all"});
  Relation on = rel == "parent"         ? Relation::Parent
                : rel == "children_any" ? Relation::ChildrenAny
                : rel == "children_all" ? Relation::ChildrenAll
                                        : Relation::Linked;
  // Only devices that have the related device can be correlated.
  rule.devices.erase(std::remove_if(rule.devices.begin(), rule.devices.end(),
                                    [&](model::DeviceIndex d) {
                                      return relatedDevices(compound, d, on).empty();
                                    }),
                     rule.devices.end());
  auto ps = state::parseValuePredicate(self, compound, rule.devices, Relation::Self, true);
  auto po = state::parseValuePredicate(other, compound, rule.devices, on, true);
  if (!ps || !po) {
    return;
  }
  std::string text = comparisonText(*po);
  rule.threshold_text = text;
  rule.when.push_back(*ps);
  rule.when.push_back(*po);
}

} // namespace

const RuleFamily kFamily{.name = "correlation", .keys = &kKeys, .parse = parse,
                         .default_message = "{device} {location}: {point} = {value} while "
                                            "{other} is {other_value}"};

} // namespace hgj::rules::correlation
