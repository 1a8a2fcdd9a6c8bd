#include "rules/threshold/threshold_rule.h"

#include "rules/rule_parse.h"

namespace hgj::rules::threshold {

namespace {

const std::vector<std::string> kKeys = {"point", "op", "value", "clear"};

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule) {
  auto point = resolvePoint(node, "point", compound, rule.devices, Relation::Self);
  if (!node.has("op")) {
    node.errorAt("op", "required (one of >, >=, <, <=)");
    return;
  }
  if (!point) {
    return;
  }
  Predicate base;
  base.point = *point;
  auto p = parseComparison(node, base, true, false);
  if (!p) {
    return;
  }
  if (p->timedByState()) {
    node.errorAt("op", "a threshold compares numbers (>, >=, <, <=); use kind: state for == and !=");
    return;
  }
  rule.threshold_text = model::toText(model::Value(p->number));
  if (node.has("clear")) {
    double clear = node.number("clear", p->number, -1e12, 1e12);
    bool above = p->op == CmpOp::Gt || p->op == CmpOp::Ge;
    if (above ? clear > p->number : clear < p->number) {
      node.errorAt("clear", std::string("the clear value must be on the safe side of the limit (") +
                                (above ? "at most " : "at least ") +
                                model::toText(model::Value(p->number)) + ", got " +
                                model::toText(model::Value(clear)) + ")");
    }
    Predicate c;
    c.point = *point;
    c.op = above ? CmpOp::Lt : CmpOp::Gt;
    c.number = clear;
    rule.clear_when.push_back(c);
  }
  rule.when.push_back(*p);
}

} // namespace

const RuleFamily kFamily{.name = "threshold", .keys = &kKeys, .parse = parse,
                         .default_message =
                             "{device} {location}: {point} {value} (limit {threshold})",
                         .restorable_hold = true};

} // namespace hgj::rules::threshold
