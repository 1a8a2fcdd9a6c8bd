#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_node.h"
#include "model/compound.h"
#include "model/state_table.h"

namespace hgj::rules {

struct RuleDef;

/// One rule family (`kind:` in the rules file): everything that differs between families, in the
/// family's own folder (rules/<family>/). The rules loader and the engine reach a family only
/// through this table entry; what every family shares (selection, `for`/`clear_for`,
/// `min_samples`, `while`, actions, latches, interlocks) stays in the loader and the engine.
/// Entries are constants with static storage; RuleDef::family points at one.
struct RuleFamily {
  /// The `kind:` value.
  std::string_view name;
  /// Its keys besides the common ones (unknown keys are rejected).
  const std::vector<std::string>* keys = nullptr;
  /// Fills the family's part of `rule`, whose devices are already selected; reports problems
  /// to `node` (FILE:LINE: key.path: message). Config loading only.
  void (*parse)(const core::ConfigNode& node, const model::Compound& compound,
                RuleDef& rule) = nullptr;
  /// The alert message when the rule sets none.
  std::string_view default_message;

  /// Evaluation. nullptr: the rule's condition is `rule.when`, all of its predicates (the
  /// engine evaluates them: equality timed by the state, comparisons by observation). Else the
  /// family's own condition over the device's points, timed by observation; nullopt while it
  /// cannot be decided. Pipeline thread, read-only.
  std::optional<bool> (*evaluate)(const RuleDef& rule, const model::StateTable& state,
                                  model::DeviceIndex device) = nullptr;
  /// The value an alert quotes. nullptr: the first predicate's point.
  std::string (*value_text)(const RuleDef& rule, const model::Compound& compound,
                            const model::StateTable& state, model::DeviceIndex device) = nullptr;
  /// True for a family raised by a device's silence, not by its readings (offline): the engine
  /// times it from the device's last reading and raises it when the device goes offline.
  bool on_silence = false;
  /// True when a held comparison of one of the device's own points may be restored from recent
  /// readings after a restart (threshold): its hold need not start again from zero.
  bool restorable_hold = false;
};

/// The shipped families, in the order the rules file's error messages list them:
/// threshold, condition, state, offline, held, correlation. The one registration point: a new
/// family is a folder rules/<family>/ and one line in rule_families.cpp. A caller (a test) may
/// copy the list and add its own before loading a rules file.
const std::vector<const RuleFamily*>& builtinRuleFamilies();

} // namespace hgj::rules
