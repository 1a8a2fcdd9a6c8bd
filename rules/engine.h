#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "model/compound.h"
#include "model/reading.h"
#include "model/state_table.h"
#include "rules/action.h"
#include "rules/interlock/interlocks.h"
#include "rules/occupancy/occupancy.h"
#include "rules/rules_config.h"

namespace hgj::rules {

/// Counters of the engine's work (read by the pipeline for /metrics; pipeline thread only).
struct EngineStats {
  uint64_t readings = 0;       ///< readings seen by onReading
  uint64_t visits = 0;         ///< rule instances evaluated for those readings
  uint64_t raised = 0;
  uint64_t cleared = 0;
  uint64_t writes = 0;         ///< writes handed to the sink
  uint64_t writes_refused = 0; ///< refused by a safety latch
  uint64_t writes_rate_limited = 0;
  uint64_t write_failures = 0;
  uint64_t refreshes = 0;        ///< refresh requests handed to the sink
  uint64_t holds_restored = 0;   ///< pending holds continued from before a restart
  uint64_t latches_rebuilt = 0;  ///< latches rebuilt at start-up from read-back and readings
};

/// Runs the rules of a RulesConfig against the live state. Built once per loaded config (a reload
/// builds a new Engine; carry latches() and the active alerts over with restoreLatch() and
/// restoreActive()). Everything runs on the pipeline thread: no locks, and the sink is called
/// synchronously from inside these calls.
///
/// At construction every rule is expanded into one instance per selected device and indexed by
/// (device, point), so a reading visits only the instances that read that point of that device
/// (including correlated devices: a pile's state reaches the rule of its linked space). The
/// common case (a reading that changes nothing) allocates nothing.
///
/// Durations are measured on the steady clock. Equality-style conditions are timed from the
/// point's since_steady (restored from the persisted since-when, so a 7-day timer survives a
/// restart); numeric conditions from the first reading that satisfied them. Stale data
/// (quality != Good) never raises, clears or acts; with a hold duration a single sample never acts.
class Engine {
public:
  /// `config` and `compound` must outlive the engine. `interlocks` (the pipeline's, which
  /// outlives a reload) must outlive it too; null: the engine keeps its own (tests, benches).
  Engine(const RulesConfig& config, const model::Compound& compound, const core::Clock& clock,
         Interlocks* interlocks = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// After the state table applied `reading` (hot path).
  void onReading(const model::Reading& reading, const model::ApplyResult& applied,
                 const model::StateTable& state, ActionSink& sink);
  /// After the state table marked a device online / offline.
  void onDeviceOnline(model::DeviceIndex device, const model::StateTable& state, ActionSink& sink);
  void onDeviceOffline(model::DeviceIndex device, const model::StateTable& state,
                       ActionSink& sink);
  /// Every ~200 ms: hold durations, held-value timers, offline detection, occupancy debounce,
  /// thresholds and displays. The first call also evaluates every instance once (start-up, with
  /// a restored state table).
  void tick(const model::StateTable& state, ActionSink& sink);
  /// The outcome of a write; a failed rule write raises a critical alert.
  void onWriteResult(const WriteOutcome& outcome, ActionSink& sink);

  /// The interlocks' verdict for an operator's write whose record is durable (a quick answer
  /// for callers; the actuator asks the interlocks again before the write leaves). A point cut
  /// by a safety rule accepts only its safe value unless `operator_override`; after an
  /// overriding write succeeds, call clearLatch().
  bool mayWrite(model::DeviceIndex device, model::PointId point, const model::Value& value,
                bool operator_override, std::string* reason) const;
  /// Removes a latch (an allowed override was confirmed) and re-arms the rule that set it: if
  /// the danger is still there, the rule cuts again after its hold. False when not latched.
  bool clearLatch(model::DeviceIndex device, model::PointId point);
  /// The latch set, for persistence (the pipeline stores it in SQLite and restores it at start).
  std::vector<Latch> latches() const { return interlocks_.latches(); }
  /// Restores a persisted latch (start-up; the interlocks' listener is not told).
  void restoreLatch(const Latch& latch) { interlocks_.restore(latch); }
  Interlocks& interlocks() { return interlocks_; }
  const Interlocks& interlocks() const { return interlocks_; }

  /// Start-up after a restart (not a reload). Until each safety rule instance has seen good
  /// data: when its condition holds and a target point reads its safe value, the latch is
  /// rebuilt (its record may have been lost with the process); when the rule's alert was
  /// restored active and a target reads live, the cut is issued again at once. Call after
  /// restoreActive() and before the first tick().
  void beginRecovery();
  /// Continues the holds of numeric single-point rules that were pending when the gateway
  /// stopped: `recent` are the last readings committed before (oldest first, the window of the
  /// longest hold), `now_wall_ms` the wall clock now. A run of readings satisfying the
  /// condition up to the last one counts as held since its first, if the first good reading
  /// after the restart still satisfies it.
  void restoreHolds(const std::vector<model::Reading>& recent, int64_t now_wall_ms);
  /// The longest hold of the rules restoreHolds() can continue (0 = none).
  core::Millis restorableHold() const;
  /// Whether a safety rule cut any point of the device (DeviceView::safety_cut).
  bool safetyCut(model::DeviceIndex device) const;

  /// Marks (rule, device) active without raising (alerts still active in the store after a
  /// restart or reload), so that the rule clears it when its condition ends. False when the
  /// rule does not watch that device.
  bool restoreActive(std::string_view rule, model::DeviceIndex device);
  /// Takes over from the engine of the previous config (SIGHUP reload): its latches, its active
  /// alerts whose rule and device this config still has (they clear when their condition ends)
  /// and its pending actuation failures. Active alerts of rules the new config no longer has (or
  /// that no longer select the device) are cleared through `sink`.
  void adopt(const Engine& previous, ActionSink& sink);
  /// The (rule, device) pairs active now.
  std::vector<std::pair<std::string, model::DeviceIndex>> activeAlerts() const;

  const occupancy::Tracker& occupancy() const { return occupancy_; }
  const EngineStats& stats() const { return stats_; }
  size_t instanceCount() const { return instances_.size(); }
  const RulesConfig& config() const { return config_; }

private:
  enum class Tri : uint8_t { False, True, Unknown };
  struct Cond {
    Tri tri = Tri::Unknown;
    bool observed = false;          ///< some part is timed by observation
    bool has_state_since = false;   ///< some part is timed by the state's since-when
    core::SteadyTime state_since{};
  };
  struct Instance {
    uint32_t rule = 0;
    model::DeviceIndex device = model::kNoDevice;
    bool active = false;
    bool pending = false;
    bool clearing = false;
    bool timed = false;  ///< in timed_
    uint16_t samples = 0;
    uint16_t restored_samples = 0;    ///< restoreHolds(): samples of the run before the restart
    int64_t restored_start_wall = 0;  ///< restoreHolds(): wall ms of the run's first reading
    core::SteadyTime observed_start{};
    core::SteadyTime start{};
    core::SteadyTime clear_start{};
    core::SteadyTime deadline{};
  };
  struct IndexEntry {
    model::PointId point;
    uint32_t instance;
  };
  static constexpr model::PointId kAnyPoint = std::numeric_limits<model::PointId>::max();

  Tri evalPredicate(const Predicate& p, model::DeviceIndex device, const model::StateTable& state,
                    core::SteadyTime* since) const;
  /// `definite`: tell False from Unknown (needed to clear); otherwise stop at the first part
  /// that is not true.
  Cond evalAll(const std::vector<Predicate>& preds, model::DeviceIndex device,
               const model::StateTable& state, bool definite) const;
  Cond evalWhen(const RuleDef& rule, model::DeviceIndex device, const model::StateTable& state,
                bool definite) const;
  Tri evalClear(const RuleDef& rule, model::DeviceIndex device, const Cond& when,
                const model::StateTable& state) const;

  void step(Instance& inst, const model::StateTable& state, core::SteadyTime now,
            bool from_reading, ActionSink& sink);
  void stepOffline(Instance& inst, const model::StateTable& state, core::SteadyTime now,
                   ActionSink& sink);
  void schedule(Instance& inst, core::SteadyTime deadline);
  /// Writes the rule's actions first (so the alert can say what was done), then raises.
  void raise(Instance& inst, const model::StateTable& state, core::SteadyTime now,
             ActionSink& sink);
  void clear(Instance& inst, const model::StateTable& state, std::string reason,
             ActionSink& sink);
  /// Issues one rule write through the interlocks; true when written (or already in flight).
  /// A cut (a safety action, or a de-energizing value) is never rate-limited or deferred.
  bool write(const RuleDef& rule, model::DeviceIndex target, const WriteSpec& spec,
             const std::string& reason, int64_t source_ms, core::SteadyTime now,
             const model::StateTable* state, ActionSink& sink);
  enum class Admit : uint8_t { Write, Duplicate, RateLimited };
  /// Rate limit of energizing rule writes per point: a write within `min_interval` of the
  /// previous one to the point is held back; the same value again is a duplicate.
  Admit admitRuleWrite(model::DeviceIndex device, model::PointId point,
                       const model::Value& value, core::SteadyTime now);
  void recover(const model::StateTable& state, core::SteadyTime now, ActionSink& sink);
  bool holdRestorable(const RuleDef& rule) const;
  int64_t sourceMs(const RuleDef& rule, model::DeviceIndex device,
                   const model::StateTable& state) const;
  std::string valueText(const RuleDef& rule, model::DeviceIndex device,
                        const model::StateTable& state) const;

  const RulesConfig& config_;
  const model::Compound& compound_;
  const core::Clock& clock_;
  std::vector<Instance> instances_;
  std::vector<std::vector<uint32_t>> rule_instances_;  ///< instances of each rule
  std::vector<uint32_t> dev_offsets_; ///< entries_ range of each device
  std::vector<IndexEntry> entries_;
  std::vector<uint32_t> offline_instances_;
  std::vector<uint32_t> timed_;
  std::unique_ptr<Interlocks> own_interlocks_;
  Interlocks& interlocks_;
  /// Per rule: it has a safety action (it latches what it cuts).
  std::vector<uint8_t> rule_safety_;
  struct LastWrite {
    model::Value value;
    core::SteadyTime at{};
  };
  std::unordered_map<uint64_t, LastWrite> last_writes_;  ///< rule writes, for the rate limit
  /// Start-up recovery: one entry per (safety instance, safety action) still waiting for good
  /// data of its condition and its targets.
  struct Recovery {
    uint32_t instance = 0;
    const WriteSpec* spec = nullptr;
    std::vector<model::DeviceIndex> targets;  ///< not yet read back
  };
  std::vector<Recovery> recovering_;
  core::SteadyTime recovery_until_{};
  occupancy::Tracker occupancy_;
  /// Rule writes awaiting their outcome: key (device, point) -> rule index.
  std::unordered_map<uint64_t, uint32_t> pending_writes_;
  /// Rule writes held back by the rate limit, retried by tick(): key (device, point). A later
  /// write to the same point replaces or cancels it.
  struct Deferred {
    uint32_t rule = 0;
    model::DeviceIndex target = model::kNoDevice;
    const WriteSpec* spec = nullptr;
    std::string reason;
    int64_t source_ms = 0;
  };
  std::unordered_map<uint64_t, Deferred> deferred_;
  /// Devices with an active actuation-failed alert.
  std::unordered_map<model::DeviceIndex, bool> failed_active_;
  core::SteadyTime started_{};
  core::SteadyTime last_offline_scan_{};
  bool swept_ = false;
  EngineStats stats_;
  core::RateLimitedLog refused_log_;
};

} // namespace hgj::rules
