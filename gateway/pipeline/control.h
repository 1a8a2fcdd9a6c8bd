#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "gateway/pipeline/actuator.h"
#include "model/compound.h"
#include "model/reading.h"
#include "model/state_table.h"
#include "rules/action.h"
#include "rules/engine.h"
#include "rules/interlock/interlocks.h"
#include "rules/rules_config.h"

namespace hgj::pipeline {

/// What the control stage tells the rest of the pipeline. Called on the pipeline thread, never
/// from inside the rule engine's own calls.
class ControlOutputs {
public:
  virtual ~ControlOutputs() = default;
  virtual void raiseAlert(const rules::AlertRaise& alert) = 0;
  virtual void clearAlert(const rules::AlertClear& clear) = 0;
  /// A latch was set or cleared: persist it (after the cut that set it has left).
  virtual void latchChanged(const rules::Latch& latch, bool set) = 0;
};

/// The pipeline's control stage: the rule engine, the interlocks and the actuator wired
/// together, so that every decision about a device (a rule's action, an operator's or the
/// platform's command, a re-cut of a latched point found live) takes the same road:
///
///   reading -> state table (pipeline) -> Engine -> writePoint -> Actuator::write
///   command --------------------------------------------------> Actuator::write
///                                       Actuator::dispatch -> Interlocks::admit -> Driver::write
///
/// Outcomes come back through the actuator's completions, run at the end of each call here
/// (never inside an engine call). A reading that shows a safety-latched point live while no
/// write to it is in flight is cut again at once and raises the critical breach alert. A safety
/// rule's first hazardous sample asks the device for a fresh reading (Driver::refresh, at most
/// once per device per `actuation.refresh_min_interval`).
///
/// Pipeline thread only. `compound`, `state`, `journal`, `outputs` outlive it.
class Control final : private rules::ActionSink {
public:
  Control(const model::Compound& compound, const model::StateTable& state,
          std::shared_ptr<const rules::RulesConfig> rules, ActuationJournal& journal,
          ControlOutputs& outputs, core::MetricsRegistry& metrics, const core::Clock& clock,
          bool upstream_override);
  ~Control() override;
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;

  void addDriver(drivers::Driver* driver) { actuator_.addDriver(driver); }

  /// After the state table applied `reading`.
  void onReading(const model::Reading& reading, const model::ApplyResult& applied);
  void onDeviceOnline(model::DeviceIndex device);
  void onDeviceOffline(model::DeviceIndex device);
  void onResult(const drivers::WriteResult& result);
  void onRecorded(uint64_t request_id, bool durable);
  /// Every ~100 ms: actuation timeouts, rule timers, recovery.
  void tick();

  /// An operator's or the platform's write. `origin` is the audit identity. The outcome goes
  /// to `done` (later, on the pipeline thread); an allowed override that is confirmed clears
  /// the latch and re-arms the rule that set it.
  void write(model::DeviceIndex device, model::PointId point, model::Value value,
             rules::Writer writer, std::string origin, bool override_latch,
             std::function<void(const ActuationOutcome&)> done);
  /// The interlocks' verdict for a write whose record would be durable (a quick answer).
  bool admissible(model::DeviceIndex device, model::PointId point, const model::Value& value,
                  rules::Writer writer, bool override_latch, std::string* reason) const;

  // Start-up (before the first tick), in this order: restoreLatch, restoreHolds,
  // restoreActive (from the alert store), beginRecovery.
  void restoreLatch(const rules::Latch& latch) { interlocks_.restore(latch); }
  void restoreHolds(const std::vector<model::Reading>& recent, int64_t now_wall_ms) {
    engine_->restoreHolds(recent, now_wall_ms);
  }
  bool restoreActive(std::string_view rule, model::DeviceIndex device) {
    return engine_->restoreActive(rule, device);
  }
  void beginRecovery() { engine_->beginRecovery(); }
  /// The window of readings restoreHolds() wants.
  core::Millis restorableHold() const { return engine_->restorableHold(); }

  /// SIGHUP: a new engine on `rules`, taking over latches (shared), active alerts and pending
  /// failures.
  void reload(std::shared_ptr<const rules::RulesConfig> rules);

  const rules::Engine& engine() const { return *engine_; }
  const rules::Interlocks& interlocks() const { return interlocks_; }
  const Actuator& actuator() const { return actuator_; }

private:
  // rules::ActionSink: what the rules decided.
  void raiseAlert(const rules::AlertRaise& alert) override;
  void clearAlert(const rules::AlertClear& clear) override;
  void writePoint(const rules::WriteAction& write) override;
  void refresh(model::DeviceIndex device, std::string_view rule) override;

  void checkLatch(const model::Reading& reading);
  /// Runs what the last call left behind: write outcomes, then latch records.
  void settle();
  static rules::InterlockConfig interlockConfig(const rules::RulesConfig& rules,
                                                bool upstream_override);

  const model::Compound& compound_;
  const model::StateTable& state_;
  const core::Clock& clock_;
  ControlOutputs& outputs_;
  bool upstream_override_;
  rules::Interlocks interlocks_;
  Actuator actuator_;
  std::shared_ptr<const rules::RulesConfig> rules_;
  std::unique_ptr<rules::Engine> engine_;
  std::vector<std::pair<rules::Latch, bool>> latch_changes_;
  std::unordered_map<uint64_t, bool> breach_active_;  // point key -> breach alert raised
  std::unordered_map<model::DeviceIndex, core::SteadyTime> last_refresh_;
  core::Counter& breaches_;
  core::Counter& refresh_sent_;
  core::Counter& refresh_limited_;
  core::Counter& refresh_unroutable_;
  core::RateLimitedLog log_;
};

} // namespace hgj::pipeline
