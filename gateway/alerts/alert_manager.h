#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "gateway/alerts/alert_db.h"
#include "gateway/alerts/alert_types.h"
#include "gateway/alerts/alerts_config.h"
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
/// Every change and the notification rows it creates are committed (synchronous=FULL) in one
/// transaction before the call returns and before anything is sent: the Notifier, on its own
/// threads and connections, only ever delivers committed rows. The listener is called after the
/// commit.
///
/// Thread: all methods run on the pipeline thread (single owner, no locks); only openAlerts() may
/// be called from elsewhere (it takes a lock). Owns its SQLite connection to `db_path`.
/// Data path: methods never throw; a database failure is logged, counted
/// (`hgj_alert_db_errors_total`) and reported in the result, and a later raise retries.
class AlertManager {
public:
  /// Opens the database and restores the open alerts (their timers resume from the stored times).
  /// Throws DbError when the database cannot be opened (startup).
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

  /// Group commit: between beginBatch() and commitBatch() every change joins one transaction, and
  /// listener events and notifier wake-ups are held until it commits (so still nothing is sent
  /// or published before it is durable). The pipeline opens one around each batch of readings it
  /// processes, so a storm of 200 alerts costs one fsync instead of 200. The transaction begins
  /// with the batch's first change: a batch without alert changes takes no write lock and costs
  /// nothing. Results returned inside a batch are provisional: if the commit fails, the batch is
  /// rolled back, the open alerts are reloaded from the database and commitBatch() returns false.
  void beginBatch();
  bool commitBatch();

  /// Called (on the pipeline thread) right before this manager begins a write transaction
  /// (BEGIN IMMEDIATE waits for any other writer of the file). The pipeline wires it to commit
  /// the readings writer's open transaction, so an alert waits for that commit instead of the
  /// writer's next commit tick. Empty: nothing is called.
  void setBeforeWrite(std::function<void()> hook) { before_write_ = std::move(hook); }

  /// Called (on the pipeline thread) after a commit that queued notifications; the lead wires it
  /// to Notifier::wake().
  void setWakeCallback(std::function<void()> wake) { wake_ = std::move(wake); }

  /// Open (active or acked) alerts as of the last tick() (or start). Thread-safe.
  std::vector<AlertRecord> openAlerts() const;
  /// The open alert of (rule, device id), if any (pipeline thread).
  std::optional<AlertRecord> find(const std::string& rule, const std::string& device_id) const;

private:
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

  /// A change's transaction: its own, or the open batch's.
  class Scope {
  public:
    explicit Scope(AlertManager& m);
    void commit();

  private:
    std::optional<AlertDb::Tx> tx_;
  };

  void restore();
  void abortBatch();
  void beginTx(std::optional<AlertDb::Tx>& tx);
  std::vector<std::string> channelsFor(const std::string& grid) const;
  std::map<std::string, std::string> vars(const AlertRecord& a) const;
  /// Queues one notification of `kind` for `a` on each channel of its grid (or holds it for a
  /// flood summary). Inside a transaction. Returns whether anything was queued for sending.
  bool enqueue(const AlertRecord& a, const std::string& kind, bool mention_escalation,
               bool mention_staff);
  void flushSummary(const FloodKey& key);
  void insertEvent(int64_t alert_id, const char* kind, int64_t at, const std::string& actor,
                   const std::string& detail);
  void persistDirty();
  int64_t nextDue(const Open& o, int64_t from_ms) const;
  void updateGauges();
  void publishSnapshot();
  void emit(AlertEventKind kind, const AlertRecord& a, int64_t at, const std::string& actor);
  void wake();
  void dbError(const char* what, const std::exception& e);

  AlertsConfig config_;
  std::shared_ptr<const model::Compound> compound_;
  const core::Clock& clock_;
  AlertListener& listener_;
  AlertDb db_;
  std::function<void()> wake_;
  std::function<void()> before_write_;

  std::map<Key, Open> open_;
  std::unordered_map<int64_t, Key> by_id_;
  std::map<FloodKey, FloodWindow> flood_;
  bool wake_pending_ = false;
  bool batch_open_ = false;
  std::optional<AlertDb::Tx> batch_tx_;
  std::vector<AlertEvent> deferred_;  // listener events held until the batch commits

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
