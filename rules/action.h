#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/compound.h"
#include "model/severity.h"
#include "model/value.h"

namespace hgj::rules {

using model::Severity;
using model::severityName;


/// An alert a rule raises. One active alert per (rule, device): occupancy alerts, which concern a
/// level or zone rather than a device, carry kNoDevice and a rule name that includes the scope
/// ("level_full:B1").
struct AlertRaise {
  std::string_view rule;
  model::DeviceIndex device = model::kNoDevice;
  Severity severity = Severity::Warning;
  std::string message;       ///< rendered from the rule's template
  std::string value;         ///< the value that triggered it, as text ("75.2", "Available")
  std::string scope;         ///< "B1", "B1/A" for occupancy alerts, empty otherwise
  int64_t source_ms = 0;     ///< source time of the triggering reading (Unix ms); 0 = none
  std::string actions_taken; ///< what the box already did, e.g. "已自动断电"
  bool escalate_now = false; ///< notify grid staff and escalation contacts at once (smoke)
};

/// The condition of an active alert ended (on good data).
struct AlertClear {
  std::string_view rule;
  model::DeviceIndex device = model::kNoDevice;
  std::string reason;  ///< "temp_c 52 below 55", "device back online", ...
  int64_t source_ms = 0;
};

/// A point write a rule decided. The sink turns it into a driver WriteRequest with origin
/// "rule:<rule>" and reports the outcome back through Engine::onWriteResult.
struct WriteAction {
  std::string_view rule;
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  bool safety = false;  ///< a safety cut: latched, re-enabling needs an operator
  std::string reason;   ///< "temp_c 75 > 60 for 10s"
  int64_t source_ms = 0;
};

/// The outcome of a write, as the pipeline got it from the driver.
struct WriteOutcome {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  bool ok = false;
  /// Not a failure of the device: a newer write to the same point replaced it before it was
  /// confirmed (its retries are cancelled).
  bool superseded = false;
  /// Not a failure of the device: the interlocks refused it on its way out (a latch set or the
  /// shed over its power limit since the rule decided).
  bool refused = false;
  std::string error;
  int64_t ts_ms = 0;
};

/// What rules act through; implemented by the pipeline. Called on the pipeline thread only, from
/// inside Engine calls. Implementations must not call back into the Engine.
class ActionSink {
public:
  virtual ~ActionSink() = default;
  virtual void raiseAlert(const AlertRaise& alert) = 0;
  virtual void clearAlert(const AlertClear& clear) = 0;
  virtual void writePoint(const WriteAction& write) = 0;
  /// A safety rule with a hold saw a first hazardous sample of `device` (or its time is up
  /// without the confirming one): ask the device for a fresh reading now instead of waiting for
  /// its next report. Best effort; the sink rate-limits it per device.
  virtual void refresh(model::DeviceIndex /*device*/, std::string_view /*rule*/) {}
};

} // namespace hgj::rules
