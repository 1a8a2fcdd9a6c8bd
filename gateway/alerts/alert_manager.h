#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/alerts/alert_schema.h"
#include "gateway/alerts/alert_types.h"
#include "gateway/alerts/alerts_config.h"
#include "gateway/alerts/delivery_book.h"
#include "gateway/storage/durable.h"
#include "gateway/storage/sqlite.h"
#include "model/compound.h"

namespace hgj::alerts {

/// What a rule asks for when its condition holds.
struct AlertRaise {
  std::string rule;  ///< rule id
  model::DeviceIndex device = model::kNoDevice;
  /// The subject when `device` is kNoDevice (the gateway's own alerts: "gateway", "storage").
  std::string device_id;
  Severity severity = Severity::Warning;
  std::string message;  ///< one line for people ("S03/P07 温度 75°C，超过 60°C")
  model::Value value;
  int64_t source_ms = 0;  ///< source time of the reading that triggered it
  std::string actions;    ///< what the gateway already did ("已自动断电")
  bool escalate_now = false;  ///< tell the escalation contacts in the first message too
};

struct RaiseResult {
  bool ok = false;
  int64_t alert_id = 0;
  bool created = false;  ///< false: an active alert of (rule, device) was updated
  std::string error;
};

enum class AckStatus { Ok, AlreadyAcked, UnknownId, AlreadyCleared, Error };
const char* ackStatusName(AckStatus s);

struct AckResult {
  AckStatus status = AckStatus::Error;
  AlertRecord alert;  ///< the alert after the call, when known
  std::string error;
};

/// The alert lifecycle on the box: raised -> (acked) -> cleared, one open alert per
/// (rule, device), each change an `alert_events` row, routed by the device's grid to the grid's
/// channels, escalated and re-notified on tick() while unacknowledged, storms summarised.
///
/// Committed and sent concurrently (docs/storage.md, "Durability"): the manager's
/// memory is the authority for open alerts and for the notifications waiting for delivery
/// (deliveries()). A change is announced at once (the listener, the upstream message, the
/// Notifier's queue), and its rows are handed to a DurableSink (the storage writer in the
/// daemon): the alert, its event, its notifications and its upstream message in one
/// transaction, committed with Durability::Power, in order with every other change. Nothing on
/// the calling thread waits for the disk. An alert may thus reach upstream or a person before
/// its commit has finished; once committed it is never lost; and when the disk is full its
/// rows wait in memory (bounded by the sink) while it is still delivered.
///
/// Ids (alerts and notifications) are chosen here, from blocks reserved durably
/// (`id_reservations`), so an id that was sent is never given to another alert after a crash.
///
/// Thread: all methods run on the pipeline thread (single owner, no locks); openAlerts() and
/// deliveries() may be used from elsewhere. Opens its own connection to `db_path` for the
/// schema, the restore at start and lookups of old alerts. Data path: methods never throw.
class AlertManager {
public:
  /// Called for every change with the event; returns the write that records the upstream
  /// message, committed in the change's own transaction (Uplink::stage). Pipeline thread.
  using UpstreamSink =
      std::function<std::optional<storage::DurableWrite>(const AlertEvent& event)>;

  /// Writes through `sink` (the storage writer). Opens the database, creates the alerts tables
  /// and restores the open alerts and undelivered notifications (their timers resume from the
  /// stored times). Throws storage::SqliteError when the database cannot be opened (startup).
  AlertManager(const AlertsConfig& config, std::shared_ptr<const model::Compound> compound,
               const std::string& db_path, storage::DurableSink& sink, const core::Clock& clock,
               core::MetricsRegistry& metrics, AlertListener& listener);
  /// The same with a storage::DirectSink of its own: every change is committed before the call
  /// returns (tests, tools).
  AlertManager(const AlertsConfig& config, std::shared_ptr<const model::Compound> compound,
               const std::string& db_path, const core::Clock& clock,
               core::MetricsRegistry& metrics, AlertListener& listener);
  ~AlertManager();
  AlertManager(const AlertManager&) = delete;
  AlertManager& operator=(const AlertManager&) = delete;

  /// Raises an alert, or updates the open alert of (rule, device) (value, message, source time;
  /// persisted by the next tick(), no new notification).
  RaiseResult raise(const AlertRaise& request);
  /// An operator acknowledges (API or upstream command). Stops escalation and re-notification.
  AckResult ack(int64_t alert_id, const std::string& by, const std::string& note);
  /// The condition is gone: the open alert of (rule, device), if any, is cleared. Returns whether
  /// there was one.
  bool clear(const std::string& rule, model::DeviceIndex device);
  bool clear(const std::string& rule, const std::string& device_id);
  /// Escalation, re-notification, flood summaries and deferred updates. Call about once a second.
  void tick();

  /// Group commit: between beginBatch() and commitBatch() the writes of every change are
  /// collected and handed to the sink as one transaction (a storm of 200 alerts costs one
  /// fsync). Events are announced at once either way; the Notifier is woken at commitBatch().
  /// A batch without changes submits nothing.
  void beginBatch();
  bool commitBatch();

  /// The upstream channel; without one, events go to the listener only.
  void setUpstream(UpstreamSink upstream) { upstream_ = std::move(upstream); }
  /// The unit of an alert's value (the unit of the point its rule watches, "°C"), for the
  /// `{value}` placeholder; called on the pipeline thread while a message is rendered. Without
  /// one, values show without a unit.
  using UnitResolver = std::function<std::string(const AlertRecord& alert)>;
  void setUnitResolver(UnitResolver units) { units_ = std::move(units); }
  /// Called (on the pipeline thread) after changes that queued notifications; the lead wires it
  /// to Notifier::wake().
  void setWakeCallback(std::function<void()> wake) { wake_ = std::move(wake); }

  /// The notifications waiting for delivery (the Notifier's queue). Thread-safe.
  DeliveryBook& deliveries() { return book_; }
  /// Where this manager's writes go; the Notifier records delivery states through it too.
  storage::DurableSink& durableSink() { return *sink_; }

  /// Open (active or acked) alerts as of the last tick() (or start). Thread-safe.
  std::vector<AlertRecord> openAlerts() const;
  /// The open alert of (rule, device id), if any (pipeline thread).
  std::optional<AlertRecord> find(const std::string& rule, const std::string& device_id) const;

private:
  UnitResolver units_;
  struct Open {
    AlertRecord rec;
    int64_t raised_steady_ms = 0;
    int64_t next_due_ms = 0;  ///< steady ms of the next escalation/re-notify; 0 = none
    bool dirty = false;       ///< updated in memory, not yet persisted
  };
  struct FloodWindow {
    int64_t start_ms = 0;       ///< steady
    int count = 0;
    int64_t first_held_ms = 0;  ///< steady; 0 = nothing held
  };
  using Key = std::pair<std::string, std::string>;               // (rule, device)
  using FloodKey = std::tuple<std::string, std::string, std::string>;  // (rule, grid, kind)

  AlertManager(const AlertsConfig& config, std::shared_ptr<const model::Compound> compound,
               const std::string& db_path, std::unique_ptr<storage::DirectSink> own_sink,
               storage::DurableSink* sink, const core::Clock& clock,
               core::MetricsRegistry& metrics, AlertListener& listener);
  void restore();
  void write(std::function<void(storage::Database&)> apply, size_t bytes);
  void submitWrites();
  void setAlertState(int64_t alert_id, AlertState state);
  int64_t newId(IdBlocks& ids);
  std::vector<std::string> channelsFor(const std::string& grid) const;
  std::map<std::string, std::string> vars(const AlertRecord& a) const;
  /// Queues one notification of `kind` for `a` on each channel of its grid (or holds it for a
  /// flood summary). Returns whether anything was queued for sending.
  bool enqueue(const AlertRecord& a, const std::string& kind, bool mention_escalation,
               bool mention_staff);
  void insertNotification(const Notification& n, const char* state);
  void flushSummary(const FloodKey& key);
  /// The notifications of this flood held so far (from the book and not yet written), by id.
  std::vector<Notification> takeHeld(const FloodKey& key);
  void insertEvent(int64_t alert_id, const char* kind, int64_t at, const std::string& actor,
                   const std::string& detail);
  void persistDirty();
  int64_t nextDue(const Open& o, int64_t from_ms) const;
  void updateGauges();
  void publishSnapshot();
  void emit(AlertEventKind kind, const AlertRecord& a, int64_t at, const std::string& actor);
  void wake();

  AlertsConfig config_;
  std::shared_ptr<const model::Compound> compound_;
  const core::Clock& clock_;
  AlertListener& listener_;
  storage::Database db_;
  std::unique_ptr<storage::DirectSink> own_sink_;
  storage::DurableSink* sink_ = nullptr;
  UpstreamSink upstream_;
  std::function<void()> wake_;
  DeliveryBook book_;
  IdBlocks alert_ids_{"alerts", "alerts"};
  IdBlocks note_ids_{"alert_notifications", "alert_notifications"};
  int64_t first_id_this_boot_ = 0;

  std::map<Key, Open> open_;
  std::unordered_map<int64_t, Key> by_id_;
  std::map<FloodKey, FloodWindow> flood_;
  bool wake_pending_ = false;
  bool batch_open_ = false;
  std::vector<storage::DurableWrite> writes_;  // the current change's or batch's rows
  std::vector<Notification> new_notes_;        // their notifications, for the book at submit

  mutable std::mutex snapshot_mu_;
  std::vector<AlertRecord> snapshot_;  // guarded by snapshot_mu_; copy of open_ for other threads
  bool snapshot_dirty_ = false;

  core::Counter& raised_total_;
  core::Counter& db_errors_;
  core::Counter& queued_total_;
  core::Counter& summarised_total_;
  core::Counter& escalated_total_;
  core::Gauge& active_gauge_;
  core::Gauge& acked_gauge_;
  core::RateLimitedLog log_;
};

} // namespace hgj::alerts
