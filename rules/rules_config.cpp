#include "rules/rules_config.h"

#include <set>

#include "rules/condition/condition_rule.h"
#include "rules/rule_family.h"
#include "rules/rule_parse.h"

namespace hgj::rules {

namespace {

const std::vector<std::string> kCommonKeys = {
    "name",     "kind",        "description", "enabled", "select",  "severity",
    "alert",    "message",     "for",         "clear_for", "min_samples", "while",
    "escalate_now", "actions", "on_clear"};

void parseRule(const core::ConfigNode& node, model::Compound& compound,
               const std::vector<const RuleFamily*>& families, std::set<std::string>& names,
               std::vector<RuleDef>& out) {
  if (!node.requireMap()) {
    return;
  }
  RuleDef rule;
  rule.name = node.requiredStr("name");
  rule.source = node.file() + ":" + std::to_string(node.location().line);
  std::vector<std::string> kinds;
  for (const auto* f : families) {
    kinds.emplace_back(f->name);
  }
  std::string kind = node.choice("kind", "", kinds);
  if (!node.has("kind")) {
    std::string list;
    for (const auto& k : kinds) {
      list += (list.empty() ? "" : " | ") + k;
    }
    node.errorAt("kind", "required (" + list + ")");
  }
  if (kind.empty()) {
    node.allowKeys(kCommonKeys);  // still report unknown keys
    return;
  }
  for (const auto* f : families) {
    if (f->name == kind) {
      rule.family = f;
    }
  }
  std::vector<std::string> keys = kCommonKeys;
  keys.insert(keys.end(), rule.family->keys->begin(), rule.family->keys->end());
  node.allowKeys(keys);

  if (!rule.name.empty() && !names.insert(rule.name).second) {
    node.errorAt("name", "duplicate rule name \"" + rule.name + "\" (names key the alerts)");
  }
  bool enabled = node.boolean("enabled", true);
  rule.devices = parseSelect(node.child("select"), compound);
  rule.hold = node.duration("for", rule.hold);
  rule.clear_hold = node.duration("clear_for", rule.clear_hold);
  rule.alert = node.boolean("alert", true);
  rule.severity =
      model::parseSeverity(node.choice("severity", "warning", {"info", "warning", "critical"}))
          .value_or(Severity::Warning);
  rule.escalate_now = node.boolean("escalate_now", false);

  rule.family->parse(node, compound, rule);
  if (node.has("while")) {
    rule.guard = condition::compileAt(node, "while", compound, rule.devices);
  }

  // Readings timed by observation need a second confirming sample when the rule has a hold
  // duration, so a single spike never acts; state-timed rules watch sensors that report only on
  // change, where the since-when itself is the evidence.
  bool observed = rule.family->evaluate != nullptr;
  for (const auto& p : rule.when) {
    observed = observed || !p.timedByState();
  }
  int def_samples = (observed && rule.hold.count() > 0) ? 2 : 1;
  rule.min_samples = static_cast<int>(node.integer("min_samples", def_samples, 1, 1000));

  std::string err;
  auto msg = MessageTemplate::parse(
      node.str("message", std::string(rule.family->default_message)), &err);
  if (!msg) {
    node.errorAt("message", err);
  } else {
    rule.message = std::move(*msg);
  }
  rule.on_raise = parseWrites(node.child("actions"), compound, rule.devices);
  rule.on_clear = parseWrites(node.child("on_clear"), compound, rule.devices);
  if (!rule.alert && rule.on_raise.empty() && !rule.devices.empty()) {
    node.errorAt("alert", "a rule with alert: false must have actions (it would do nothing)");
  }
  if (enabled) {
    out.push_back(std::move(rule));
  }
}

} // namespace

RulesConfig parseRulesConfig(const core::ConfigNode& root, model::Compound& compound) {
  return parseRulesConfig(root, compound, builtinRuleFamilies());
}

RulesConfig parseRulesConfig(const core::ConfigNode& root, model::Compound& compound,
                             const std::vector<const RuleFamily*>& families) {
  RulesConfig cfg;
  std::string err;
  cfg.actuation.failed_message = *MessageTemplate::parse(
      "{device} {location}: 自动操作失败 {point}={value} ({other_value})", &err);
  cfg.actuation.breach_message = *MessageTemplate::parse(
      "{device} {location}: 已安全断电的 {point} 被重新接通 (读数 {value})，已再次断电", &err);
  if (!root.defined()) {
    cfg.occupancy = occupancy::parseOccupancyConfig(root.child("occupancy"), compound);
    return cfg;
  }
  cfg.source = root.file();
  root.allowKeys({"rules", "occupancy", "actuation"});
  core::ConfigNode list = root.child("rules");
  std::set<std::string> names;
  if (list.defined() && list.requireSeq()) {
    for (const auto& item : list.items()) {
      parseRule(item, compound, families, names, cfg.rules);
    }
  }
  cfg.occupancy = occupancy::parseOccupancyConfig(root.child("occupancy"), compound);
  core::ConfigNode act = root.child("actuation");
  if (act.defined()) {
    act.allowKeys({"min_interval", "failed_rule", "failed_message", "breach_rule",
                   "breach_message", "shed_power_limit", "shed_power_point",
                   "refresh_min_interval"});
    cfg.actuation.min_interval = act.duration("min_interval", cfg.actuation.min_interval);
    cfg.actuation.failed_rule = act.str("failed_rule", cfg.actuation.failed_rule);
    cfg.actuation.breach_rule = act.str("breach_rule", cfg.actuation.breach_rule);
    for (auto [key, tmpl] : {std::pair{"failed_message", &cfg.actuation.failed_message},
                             std::pair{"breach_message", &cfg.actuation.breach_message}}) {
      if (act.has(key)) {
        auto m = MessageTemplate::parse(act.str(key, ""), &err);
        if (!m) {
          act.errorAt(key, err);
        } else {
          *tmpl = std::move(*m);
        }
      }
    }
    cfg.actuation.shed_power_limit_w =
        act.number("shed_power_limit", cfg.actuation.shed_power_limit_w, 0, 1e7);
    cfg.actuation.shed_power_point = act.str("shed_power_point", cfg.actuation.shed_power_point);
    if (act.has("shed_power_point") && !compound.pointId(cfg.actuation.shed_power_point)) {
      act.errorAt("shed_power_point", "no profile has a point \"" +
                                          cfg.actuation.shed_power_point + "\"");
    }
    cfg.actuation.refresh_min_interval =
        act.duration("refresh_min_interval", cfg.actuation.refresh_min_interval,
                     std::chrono::milliseconds(100), std::chrono::minutes(10));
  }
  for (const auto& t : cfg.occupancy.thresholds) {
    if (!names.insert(t.name).second) {
      root.child("occupancy").error("threshold name \"" + t.name + "\" is also a rule name");
    }
  }
  return cfg;
}

} // namespace hgj::rules
