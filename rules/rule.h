#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/compound.h"
#include "model/value.h"
#include "rules/action.h"
#include "rules/message_template.h"

namespace hgj::rules {

class Expression;
struct RuleFamily;

/// Comparison of a point with constants. Gt..Le compare numbers; Eq..NotIn compare values of any
/// type (bool, number, text).
enum class CmpOp : uint8_t { Gt, Ge, Lt, Le, Eq, Ne, In, NotIn };

/// Which device a predicate reads, relative to the rule's device.
enum class Relation : uint8_t {
  Self,
  Linked,       ///< the linked device (parking space <-> EV pile)
  Parent,       ///< the shed of a port
  ChildrenAny,  ///< true when any child satisfies it
  ChildrenAll,  ///< true when every child satisfies it
};

/// One comparison of one point. Equality-style predicates (Eq, Ne, In, NotIn) are "timed by the
/// state": the point has satisfied them since it entered its current value, a since-when the
/// state table persists, so their durations survive restarts. Numeric comparisons are "timed by
/// observation": they count from the first reading that satisfied them.
struct Predicate {
  Relation on = Relation::Self;
  model::PointId point = 0;
  CmpOp op = CmpOp::Gt;
  double number = 0;                ///< Gt..Le
  std::vector<model::Value> values; ///< Eq, Ne (one value), In, NotIn

  bool timedByState() const { return op >= CmpOp::Eq; }
};

/// Which devices a write action addresses, relative to the rule's device.
enum class TargetKind : uint8_t { Self, Parent, Children, Linked, Devices, SameLevel, SameZone };

struct WriteSpec {
  TargetKind target = TargetKind::Self;
  std::vector<model::DeviceIndex> devices;  ///< TargetKind::Devices
  std::string target_type;  ///< SameLevel / SameZone: device type to address ("fan")
  std::string point_name;
  model::PointId point = 0;
  model::Value value;
  bool safety = false;
  std::string note;  ///< what this did, for the alert ("已自动断电")
};

/// A rule as loaded from the rules file: immutable after loading.
struct RuleDef {
  std::string name;
  /// Its family (`kind:`), an entry of the rule family table (rules/rule_family.h); never null
  /// in a loaded rule.
  const RuleFamily* family = nullptr;
  std::string source;  ///< "file:line"
  std::vector<model::DeviceIndex> devices;  ///< the devices it watches

  /// All must hold (threshold: 1; state/held: 1; correlation: 2).
  std::vector<Predicate> when;
  /// Condition kind: the expression over the device's points.
  std::shared_ptr<Expression> expr;
  /// Extra condition that must hold for the rule to fire ("while: current_a > 0.2"); it never
  /// starts or clears the rule on its own.
  std::shared_ptr<Expression> guard;
  /// When set, the alert clears only when these hold (hysteresis); otherwise when `when` fails.
  std::vector<Predicate> clear_when;
  std::shared_ptr<Expression> clear_expr;

  std::chrono::milliseconds hold{0};        ///< "for": how long the condition must hold
  std::chrono::milliseconds clear_hold{0};  ///< "clear_for"
  int min_samples = 1;  ///< readings that must confirm the condition before it acts

  /// Offline kind: silent longer than this (0 = the device's expected interval).
  std::chrono::milliseconds silent_for{0};
  bool never_seen = true;  ///< count devices never heard of since start-up as offline

  bool alert = true;
  Severity severity = Severity::Warning;
  bool escalate_now = false;
  MessageTemplate message;
  std::string threshold_text;  ///< "{threshold}" in messages: "60", "Charging", "8h"

  std::vector<WriteSpec> on_raise;
  std::vector<WriteSpec> on_clear;
};

} // namespace hgj::rules
