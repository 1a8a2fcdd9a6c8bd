#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/config_node.h"
#include "model/compound.h"
#include "rules/occupancy/occupancy_config.h"
#include "rules/rule.h"

namespace hgj::rules {

struct RuleFamily;

/// Settings of actuation and its interlocks (`actuation:` in the rules file).
struct ActuationConfig {
  /// A rule writes one point at most once per this interval (a safety cut of a value not yet
  /// written is never held back).
  std::chrono::milliseconds min_interval{10'000};
  /// The rule name of the critical alert a failed actuation raises.
  std::string failed_rule = "actuation_failed";
  MessageTemplate failed_message;
  /// The critical alert (escalated at once) when a reading shows a safety-latched point live
  /// again; the gateway cuts it again at the same moment.
  std::string breach_rule = "safety_latch_breach";
  MessageTemplate breach_message;
  /// Enabling a port is refused while its shed draws more than this (W; 0 = no limit), read
  /// from the shed's `shed_power_point` (or the sum of its ports' readings of it).
  double shed_power_limit_w = 8000;
  std::string shed_power_point = "power_w";
  /// At most one refresh request (an out-of-cycle read asked by a safety rule) per device per
  /// this interval.
  std::chrono::milliseconds refresh_min_interval{1000};
};

/// The whole rules file, parsed and resolved against the compound: immutable after loading and
/// read by the Engine built from it (pipeline thread). Expressions inside are compiled once here.
struct RulesConfig {
  std::vector<RuleDef> rules;
  occupancy::OccupancyConfig occupancy;
  ActuationConfig actuation;
  std::string source;  ///< the rules file
};

/// Parses the rules file's root mapping: `rules:` (the list of rules), `occupancy:` and
/// `actuation:`. Point names are resolved with `compound.pointId`; unknown keys, points, device
/// types and bad expressions are reported to `rules_file_root.diag()` as
/// `FILE:LINE: key.path: message` with a "did you mean". An undefined root gives no rules and the
/// default occupancy settings. Config loading only (single-threaded).
RulesConfig parseRulesConfig(const core::ConfigNode& rules_file_root, model::Compound& compound);
/// The same with another rule family table than builtinRuleFamilies() (a test's own family).
RulesConfig parseRulesConfig(const core::ConfigNode& rules_file_root, model::Compound& compound,
                             const std::vector<const RuleFamily*>& families);

} // namespace hgj::rules
