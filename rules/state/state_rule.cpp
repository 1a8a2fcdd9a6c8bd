#include "rules/state/state_rule.h"

#include "rules/rule_parse.h"

namespace hgj::rules::state {

namespace {

const std::vector<std::string> kKeys = {"point", "equals", "in", "not_in"};

} // namespace

std::optional<Predicate> parseValuePredicate(const core::ConfigNode& node,
                                             const model::Compound& compound,
                                             const std::vector<model::DeviceIndex>& devices,
                                             Relation on, bool allow_numeric) {
  auto point = resolvePoint(node, "point", compound, devices, on);
  if (!point) {
    return std::nullopt;
  }
  Predicate base;
  base.on = on;
  base.point = *point;
  auto p = parseComparison(node, base, allow_numeric, true);
  if (!p) {
    return std::nullopt;
  }
  // Compare in the point's own type, so "equals: 1" on a bool point means true.
  if (p->timedByState()) {
    for (auto d : devices) {
      for (auto r : relatedDevices(compound, d, on)) {
        const model::PointDef* pd = compound.devices[r].profile->point(*point);
        for (auto& v : p->values) {
          auto c = model::coerce(v, pd->type);
          if (!c) {
            node.error(std::string("value \"") + model::toText(v) + "\" does not fit point " +
                       pd->name + " (" + model::pointTypeName(pd->type) + ")");
            return std::nullopt;
          }
          v = *c;
        }
        break;
      }
      break;
    }
  }
  return p;
}

namespace {

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule) {
  auto p = parseValuePredicate(node, compound, rule.devices, Relation::Self, false);
  if (!p) {
    return;
  }
  std::string text = comparisonText(*p);
  rule.threshold_text = text.substr(text.find(' ') + 1);
  rule.when.push_back(*p);
}

} // namespace

const RuleFamily kFamily{.name = "state", .keys = &kKeys, .parse = parse,
                         .default_message = "{device} {location}: {point} = {value}"};

} // namespace hgj::rules::state
