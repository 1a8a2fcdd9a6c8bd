#include "tests/unit/rules/test_family/within_rule.h"

#include "rules/rule_parse.h"

namespace hgj::rules::within {

const std::vector<std::string> kKeys = {"point", "from", "to"};

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule) {
  auto point = resolvePoint(node, "point", compound, rule.devices, Relation::Self);
  if (!point) {
    return;
  }
  const double from = node.number("from", 0, -1e12, 1e12);
  const double to = node.number("to", 0, -1e12, 1e12);
  if (to <= from) {
    node.errorAt("to", "must be above from");
  }
  Predicate above;
  above.point = *point;
  above.op = CmpOp::Gt;
  above.number = from;
  Predicate below = above;
  below.op = CmpOp::Lt;
  below.number = to;
  rule.when = {above, below};
  rule.threshold_text = model::toText(model::Value(from)) + ".." + model::toText(model::Value(to));
}

const RuleFamily kFamily{
    .name = "within",
    .keys = &kKeys,
    .parse = parse,
    .default_message = "{device}: {point} {value} within {threshold}",
};

} // namespace hgj::rules::within
