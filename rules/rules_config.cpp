#include "rules/rules_config.h"

#include <set>

#include "rules/condition/condition_rule.h"
#include "rules/condition/expression.h"
#include "rules/correlation/correlation_rule.h"
#include "rules/held/held_rule.h"
#include "rules/offline/offline_rule.h"
#include "rules/rule_parse.h"
#include "rules/state/state_rule.h"
#include "rules/threshold/threshold_rule.h"

namespace hgj::rules {

const char* ruleKindName(RuleKind k) {
  switch (k) {
  case RuleKind::Threshold:
    return "threshold";
  case RuleKind::Condition:
    return "condition";
  case RuleKind::State:
    return "state";
  case RuleKind::Offline:
    return "offline";
  case RuleKind::Held:
    return "held";
  case RuleKind::Correlation:
    return "correlation";
  }
  return "?";
}

Severity parseSeverityName(const std::string& s) {
  if (s == "info") {
    return Severity::Info;
  }
  if (s == "critical") {
    return Severity::Critical;
  }
  return Severity::Warning;
}

namespace {

const std::vector<std::string> kCommonKeys = {
    "name",     "kind",        "description", "enabled", "select",  "severity",
    "alert",    "message",     "for",         "clear_for", "min_samples", "while",
    "escalate_now", "actions", "on_clear"};

const char* defaultMessage(RuleKind k) {
  switch (k) {
  case RuleKind::Threshold:
    return "{device} {location}: {point} {value} (limit {threshold})";
  case RuleKind::Condition:
    return "{device} {location}: {threshold}";
  case RuleKind::State:
    return "{device} {location}: {point} = {value}";
  case RuleKind::Offline:
    return "{device} {location}: offline (silent {held})";
  case RuleKind::Held:
    return "{device} {location}: {point} = {value} for {held}";
  case RuleKind::Correlation:
    return "{device} {location}: {point} = {value} while {other} is {other_value}";
  }
  return "{device}: {rule}";
}

void parseRule(const core::ConfigNode& node, model::Compound& compound,
               std::set<std::string>& names, std::vector<RuleDef>& out) {
  if (!node.requireMap()) {
    return;
  }
  RuleDef rule;
  rule.name = node.requiredStr("name");
  rule.source = node.file() + ":" + std::to_string(node.location().line);
  std::string kind = node.choice(
      "kind", "", {"threshold", "condition", "state", "offline", "held", "correlation"});
  if (!node.has("kind")) {
    node.errorAt("kind", "required (threshold | condition | state | offline | held | correlation)");
  }
  if (kind.empty()) {
    node.allowKeys(kCommonKeys);  // still report unknown keys
    return;
  }
  std::vector<std::string> keys = kCommonKeys;
  const std::vector<std::string>* extra = nullptr;
  if (kind == "threshold") {
    rule.kind = RuleKind::Threshold;
    extra = &threshold::kKeys;
  } else if (kind == "condition") {
    rule.kind = RuleKind::Condition;
    extra = &condition::kKeys;
  } else if (kind == "state") {
    rule.kind = RuleKind::State;
    extra = &state::kKeys;
  } else if (kind == "offline") {
    rule.kind = RuleKind::Offline;
    extra = &offline::kKeys;
  } else if (kind == "held") {
    rule.kind = RuleKind::Held;
    extra = &held::kKeys;
  } else {
    rule.kind = RuleKind::Correlation;
    extra = &correlation::kKeys;
  }
  keys.insert(keys.end(), extra->begin(), extra->end());
  node.allowKeys(keys);

  if (!rule.name.empty() && !names.insert(rule.name).second) {
    node.errorAt("name", "duplicate rule name \"" + rule.name + "\" (names key the alerts)");
  }
  bool enabled = node.boolean("enabled", true);
  rule.devices = parseSelect(node.child("select"), compound);
  rule.hold = node.duration("for", rule.hold);
  rule.clear_hold = node.duration("clear_for", rule.clear_hold);
  rule.alert = node.boolean("alert", true);
  rule.severity = parseSeverityName(node.choice("severity", "warning", {"info", "warning", "critical"}));
  rule.escalate_now = node.boolean("escalate_now", false);

  switch (rule.kind) {
  case RuleKind::Threshold:
    threshold::parse(node, compound, rule);
    break;
  case RuleKind::Condition:
    condition::parse(node, compound, rule);
    break;
  case RuleKind::State:
    state::parse(node, compound, rule);
    break;
  case RuleKind::Offline:
    offline::parse(node, compound, rule);
    break;
  case RuleKind::Held:
    held::parse(node, compound, rule);
    break;
  case RuleKind::Correlation:
    correlation::parse(node, compound, rule);
    break;
  }
  if (node.has("while")) {
    rule.guard = condition::compileAt(node, "while", compound, rule.devices);
  }

  // Readings timed by observation need a second confirming sample when the rule has a hold
  // duration, so a single spike never acts; state-timed rules watch sensors that report only on
  // change, where the since-when itself is the evidence.
  bool observed = rule.kind == RuleKind::Condition;
  for (const auto& p : rule.when) {
    observed = observed || !p.timedByState();
  }
  int def_samples = (observed && rule.hold.count() > 0) ? 2 : 1;
  rule.min_samples = static_cast<int>(node.integer("min_samples", def_samples, 1, 1000));

  std::string err;
  auto msg = MessageTemplate::parse(node.str("message", defaultMessage(rule.kind)), &err);
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
      parseRule(item, compound, names, cfg.rules);
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
