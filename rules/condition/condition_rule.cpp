#include "rules/condition/condition_rule.h"

#include <set>

#include "rules/condition/expression.h"

namespace hgj::rules::condition {

namespace {

const std::vector<std::string> kKeys = {"expr", "clear_expr"};

} // namespace

std::shared_ptr<Expression> compileAt(const core::ConfigNode& node, std::string_view key,
                                      const model::Compound& compound,
                                      const std::vector<model::DeviceIndex>& devices) {
  std::string text = node.requiredStr(key);
  if (text.empty() || devices.empty()) {
    // With no device selected there is no profile to resolve the expression's points against.
    return nullptr;
  }
  std::string err;
  auto e = Expression::compile(text, compound, &err);
  if (!e) {
    node.errorAt(key, err);
    return nullptr;
  }
  std::set<const model::Profile*> profiles;
  for (auto d : devices) {
    profiles.insert(compound.devices[d].profile);
  }
  for (const auto* prof : profiles) {
    for (auto pid : e->points()) {
      const model::PointDef* pd = prof->point(pid);
      if (pd == nullptr) {
        node.errorAt(key, "profile \"" + prof->name + "\" has no point \"" +
                              compound.pointName(pid) + "\" used in the expression");
        return nullptr;
      }
      if (pd->type == model::PointType::String) {
        node.errorAt(key, "point \"" + pd->name +
                              "\" is text; expressions use number and bool points (use kind: "
                              "state or correlation for text)");
        return nullptr;
      }
    }
  }
  return e;
}

namespace {

void parse(const core::ConfigNode& node, const model::Compound& compound, RuleDef& rule) {
  rule.expr = compileAt(node, "expr", compound, rule.devices);
  if (rule.expr) {
    rule.threshold_text = rule.expr->text();
  }
  if (node.has("clear_expr")) {
    rule.clear_expr = compileAt(node, "clear_expr", compound, rule.devices);
  }
}

std::optional<bool> evaluate(const RuleDef& rule, const model::StateTable& state,
                             model::DeviceIndex device) {
  return rule.expr ? rule.expr->evaluate(state, device) : std::nullopt;
}

// Every point of the expression with its value: "current_a=0.8 temp_c=57".
std::string valueText(const RuleDef& rule, const model::Compound& compound,
                      const model::StateTable& state, model::DeviceIndex device) {
  if (!rule.expr) {
    return "";
  }
  std::string out;
  for (auto p : rule.expr->points()) {
    const model::PointState* ps = state.point(device, p);
    out += (out.empty() ? "" : " ") + compound.pointName(p) + "=" +
           (ps ? model::toText(ps->value) : "");
  }
  return out;
}

} // namespace

const RuleFamily kFamily{.name = "condition", .keys = &kKeys, .parse = parse,
                         .default_message = "{device} {location}: {threshold}",
                         .evaluate = evaluate, .value_text = valueText};

} // namespace hgj::rules::condition
