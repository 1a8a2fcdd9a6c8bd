#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "core/bounded_queue.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/profiles/mqtt_decoder.h"
#include "gateway/alerts/alert_manager.h"
#include "core/heartbeat.h"
#include "gateway/pipeline/actuator.h"
#include "gateway/pipeline/control.h"
#include "gateway/pipeline/pipeline_config.h"
#include "gateway/pipeline/commands.h"
#include "gateway/pipeline/read_model.h"
#include "gateway/storage/store.h"
#include "model/state_table.h"
#include "rules/action.h"
#include "rules/engine.h"
#include "gateway/history/rollups.h"
#include "rules/rules_config.h"

namespace hgj::pipeline {

/// The gateway's one pipeline thread: it owns the live state and is the only place where the
/// stages meet. Reading run() top to bottom is the data flow:
///
///   drivers -> bounded queue -> decode (profiles) -> state table -> rules -> actions
///                                                        |-> storage (batched)
///                                                        \-> read model (snapshots, live events)
///
/// Driver threads call deliver() (blocking while the queue is full: backpressure); the HTTP API
/// and the uplink call submit(). Everything else is the pipeline's work, done under `work_mu_`:
/// on the pipeline thread, or, for the last message of an MQTT read while the pipeline is idle,
/// on the ingest thread itself (handleNow), which saves a thread wake-up per message at the
/// rates devices really send. Work is taken from the queue only under the lock and inline only
/// while the queue is empty, so a message is never handled before one queued ahead of it.
class Pipeline final : public drivers::SampleSink,
                       public CommandSink,
                       public alerts::AlertListener,
                       private ControlOutputs,
                       private ActuationJournal {
public:
  Pipeline(PipelineSettings cfg, std::shared_ptr<const model::Compound> compound,
           const rules::RulesConfig& rules, storage::Store& store, ReadModel& read_model,
           core::MetricsRegistry& metrics, const core::Clock& clock);
  ~Pipeline() override;

  void addDriver(drivers::Driver* driver);
  /// The alert manager (owned by the App, created once the database is open). Before start().
  void setAlerts(alerts::AlertManager* alerts);
  /// Where alert events go besides the live view (the uplink's outbox). Before start().
  void setAlertForward(std::function<void(const alerts::AlertEvent&)> forward) {
    alert_forward_ = std::move(forward);
  }

  /// The uplink's outbox dropped messages of `kind` (`total` so far). Any thread; the pipeline
  /// raises an alert for it on its next tick.
  void noteOutboxDrop(const std::string& kind, uint64_t total);

  /// alerts::AlertListener: every committed alert change (pipeline thread).
  void onAlertEvent(const alerts::AlertEvent& event) override;
  /// Restores persisted point states (since-when survives restarts). Before start().
  void restore(const std::vector<storage::StoredPoint>& points,
               const std::vector<storage::LatchRecord>& latches);
  /// The history's day totals stored before a restart (before start(); `db` is a connection of
  /// the caller's, used only during the call).
  void restoreHistory(storage::Database& db);

  /// Registers the pipeline thread's heartbeat (the systemd watchdog feed). Before start().
  void setLiveness(core::Liveness& liveness) { heartbeat_ = &liveness.add("pipeline"); }

  void start();
  /// Drains what is queued, flushes state to the store and joins the thread.
  void stop();

  /// Replaces the rules (SIGHUP) on the pipeline thread, keeping latches and active alerts.
  /// `rules` must have been parsed against a compound identical to this one. The future holds
  /// "ok" or why nothing changed.
  std::future<std::string> reloadRules(rules::RulesConfig rules);

  bool deliver(drivers::Sample&& sample) override;
  Delivery deliverFor(drivers::Sample& sample, std::chrono::milliseconds timeout) override;
  /// Takes an MQTT message on the caller's thread when the pipeline is idle (not busy with a
  /// backlog, nothing queued, the work lock free); false otherwise, and never blocks.
  bool handleNow(drivers::Sample& sample) override;
  /// Never blocks: results jump the readings queue (BoundedQueue::pushUrgent).
  void deliverResult(std::shared_ptr<const drivers::WriteResult> result) override;
  std::future<CommandResult> submit(Command command) override;

  /// MQTT subscription filters that cover every profile's topics.
  std::vector<std::string> subscriptions() const { return decoder_.subscriptions(); }
  size_t queueDepth() const { return queue_.size(); }
  /// "ok" or what is wrong with the pipeline thread.
  std::string health() const;

private:
  struct CommandEnvelope {
    Command command;
    std::shared_ptr<std::promise<CommandResult>> promise;
  };
  struct RulesReload {
    std::shared_ptr<rules::RulesConfig> rules;
    std::shared_ptr<std::promise<std::string>> done;
  };
  // The rare kinds are boxed so that a queue slot is the size of a sample, not of a command:
  // the queue holds thousands of them under a burst.
  /// The store's answer for an energizing write's record (ActuationJournal::recordFirst).
  struct Recorded {
    uint64_t request_id = 0;
    bool durable = false;
  };
  using Event = std::variant<drivers::Sample, std::unique_ptr<CommandEnvelope>,
                             std::unique_ptr<RulesReload>, Recorded>;
  void handleReload(RulesReload& r);

  void run();
  void handleSample(drivers::Sample& sample);
  void handleMessage(const drivers::MqttMessage& m);
  void applyReading(model::Reading& r);
  /// A number outside its profile's plausibility range becomes a bad reading (counted).
  void checkPlausible(model::Reading& r, const model::PointDef& def);
  void restoreHolds();
  void handOverReadings();
  void handleCommand(CommandEnvelope& env);
  void tick();
  void checkOffline();
  void flushStore(bool all_state);
  void publishSnapshot();
  void noteDrop(drivers::profiles::DropReason reason, std::string_view topic);
  void deviceOffline(model::DeviceIndex device);

  // ControlOutputs: what the control stage decided.
  void raiseAlert(const rules::AlertRaise& alert) override;
  void clearAlert(const rules::AlertClear& clear) override;
  void latchChanged(const rules::Latch& latch, bool set) override;
  // ActuationJournal: actuation records in the store.
  void record(storage::ActuationRecord record) override;
  void recordFirst(storage::ActuationRecord record) override;
  void update(uint64_t request_id, std::string state, std::string error) override;

  const PipelineSettings cfg_;
  std::shared_ptr<const model::Compound> compound_;
  storage::Store& store_;
  ReadModel& read_model_;
  const core::Clock& clock_;
  core::BoundedQueue<Event> queue_;
  drivers::profiles::MqttDecoder decoder_;
  model::StateTable state_;
  std::shared_ptr<const rules::RulesConfig> rules_;
  Control control_;
  alerts::AlertManager* alerts_ = nullptr;
  std::function<void(const alerts::AlertEvent&)> alert_forward_;
  core::SteadyTime next_alert_tick_{};
  void handleStorageEvents();
  std::atomic<uint64_t> outbox_dropped_{0};
  uint64_t outbox_dropped_alerted_ = 0;
  core::Counter& rule_visits_;
  core::Counter& rule_raises_;
  uint64_t visits_seen_ = 0;
  std::vector<drivers::Driver*> drivers_;

  core::Counter& received_;
  std::vector<core::Counter*> dropped_;  // by DropReason
  core::Counter& bad_fields_;
  core::Counter& suspect_ts_;
  core::Counter& batches_;
  core::Counter& implausible_low_;
  core::Counter& implausible_high_;
  core::RateLimitedLog implausible_log_;
  core::Heartbeat* heartbeat_ = nullptr;
  core::RateLimitedLog drop_log_;

  std::vector<model::Reading> readings_;           // the batch being built
  std::optional<core::SteadyTime> pending_since_;  // when readings_ got its first reading
  std::vector<uint32_t> point_offset_;             // device -> first flat point slot
  std::vector<uint8_t> dirty_;                     // flat point slot -> needs persisting
  std::vector<std::pair<model::DeviceIndex, int>> dirty_list_;
  std::vector<uint8_t> offline_reported_;          // device -> offline already handled
  std::vector<std::string> device_fault_;          // device -> DeviceHealth::fault
  std::vector<std::string> changed_spaces_;        // for the next live event
  // Each space's counted state in the last snapshot (empty before the first one).
  std::vector<rules::occupancy::SpaceState> counted_space_;
  bool changed_ = true;
  uint64_t snapshot_version_ = 0;
  core::SteadyTime started_{};
  core::SteadyTime next_snapshot_{};
  core::SteadyTime next_tick_{};
  core::SteadyTime next_state_flush_{};
  core::SteadyTime next_offline_check_{};
  model::PointId occupied_point_ = 0;
  bool has_occupied_ = false;
  void writeHistory();
  uint64_t occupancy_version_ = 0;
  /// Rollups for the history (null when history.enabled is false); pipeline thread.
  std::unique_ptr<history::Rollups> history_;
  int64_t last_ingest_ms_ = 0;  ///< wall time of the latest reading (history's quiet check)
  core::SteadyTime next_history_write_{};  ///< the occupancy tracker's version last published

  /// One batch of the pipeline's work: samples, commands, recorded actuations, reloads, with
  /// one alert commit for the batch and the readings' hand-over to the store when due.
  void handleEvents(std::vector<Event>& events);

  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> failed_{false};
  /// Held while the pipeline's state is worked on, by the pipeline thread or an ingest thread
  /// in handleNow.
  std::mutex work_mu_;
  /// The last batch was a backlog: messages then go through the queue and are batched.
  std::atomic<bool> busy_{false};
  bool finished_ = false;            ///< guarded by work_mu_: the thread has drained and stopped
  std::vector<Event> inline_events_;  ///< guarded by work_mu_
};

} // namespace hgj::pipeline
