#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "gateway/storage/store.h"
#include "model/compound.h"
#include "model/reading.h"
#include "model/state_table.h"
#include "rules/interlock/interlocks.h"

namespace hgj::pipeline {

/// How an actuation ended.
enum class ActuationStatus : uint8_t {
  Confirmed,   ///< the device shows the value (Modbus read-back, or a later MQTT report)
  Failed,      ///< sent (and retried) but not confirmed, or its record could not be written
  Refused,     ///< never sent: invalid, rate-limited or refused by the interlocks
  Superseded,  ///< a newer write to the point replaced it before it was confirmed
};
const char* actuationStatusName(ActuationStatus s);

/// The outcome of an actuation, reported back to whoever asked (a rule, an operator).
struct ActuationOutcome {
  uint64_t request_id = 0;
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  std::string origin;
  ActuationStatus status = ActuationStatus::Failed;
  bool ok = false;  ///< status == Confirmed
  std::string error;
};

/// A write someone asks for.
struct WriteOrder {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  rules::Writer writer = rules::Writer::Rule;
  /// The audit trail's "who": "rule:<name>", "api:operator", "upstream:<client id>#<command id>"
  /// (authenticated identities; a sender's free text only as a quoted note after them).
  std::string origin;
  bool override_latch = false;  ///< asks to re-energize a safety-latched point
  bool safety = false;          ///< a safety rule's cut: sent at once whatever the value
};

/// Where the actuator records its decisions (the store, in the gateway). Pipeline thread.
class ActuationJournal {
public:
  virtual ~ActuationJournal() = default;
  /// A de-energizing decision, recorded in parallel with its execution: never waits for it.
  virtual void record(storage::ActuationRecord record) = 0;
  /// An energizing decision, which may execute only once durable: the journal answers with
  /// Actuator::onRecorded(request_id, durable) on the pipeline thread, later.
  virtual void recordFirst(storage::ActuationRecord record) = 0;
  /// Its state changed ("sent", "retried", "confirmed", "failed", "refused", "superseded").
  virtual void update(uint64_t request_id, std::string state, std::string error) = 0;
};

/// Executes writes to devices and is the one place a write reaches a driver: every send (the
/// first, a retry, a write whose record just became durable) goes through dispatch(), which
/// asks the interlocks (rules::Interlocks::admit) right before Driver::write.
///
/// - A de-energizing write (the point's profile `safe` value, or a safety rule's cut) is handed
///   to the driver at once, flagged WriteRequest::de_energize, and recorded in parallel; no
///   rate limit applies to it.
/// - Any other write is recorded first and sent only once the record is durable and the
///   interlocks still admit it then; refused after 6 writes to the point in a minute.
/// - One write per point is in flight: a newer write with another value supersedes the older
///   one (its retries are cancelled, its caller told "superseded"); the same value again joins
///   the pending write.
/// - A write is confirmed by the driver's result (Modbus read-back) or, for MQTT devices, by a
///   later reading showing the value; unconfirmed in time, it is re-sent once (through the
///   interlocks again), then failed. A Modbus failure the driver already retried is final.
///
/// Outcomes are never reported from inside a call that started the write: they are queued and
/// delivered by runCompletions(), which the pipeline calls outside the rule engine.
/// Pipeline thread only. `compound`, `interlocks`, `state`, `journal` outlive it.
class Actuator {
public:
  using Callback = std::function<void(const ActuationOutcome&)>;

  Actuator(const model::Compound& compound, rules::Interlocks& interlocks,
           const model::StateTable& state, ActuationJournal& journal,
           core::MetricsRegistry& metrics, const core::Clock& clock);

  void addDriver(drivers::Driver* driver) { drivers_.push_back(driver); }
  drivers::Driver* driverFor(model::DeviceIndex device) const;

  /// Starts a write; `done` (optional) is queued with its outcome. Returns the request id (of
  /// the pending write it joined, if any).
  uint64_t write(WriteOrder order, Callback done);

  /// A driver's result (Modbus read-back, a write the MQTT client could not send).
  void onResult(const drivers::WriteResult& result);
  /// The journal's answer for an energizing write: its record is durable (or not).
  void onRecorded(uint64_t request_id, bool durable);
  /// A reading: confirms a pending MQTT write whose value it shows.
  void onReading(const model::Reading& reading);
  /// Times out unconfirmed writes (retry once, then fail) and records that never became
  /// durable.
  void tick();
  /// Runs the callbacks of the writes that ended since the last call (and of those ending
  /// meanwhile).
  void runCompletions();

  /// Whether a write to the point is pending (sent and unconfirmed, or awaiting its record).
  bool pendingFor(model::DeviceIndex device, model::PointId point) const;
  size_t pending() const { return pending_.size(); }

private:
  struct Pending {
    uint64_t id = 0;
    model::DeviceIndex device = model::kNoDevice;
    model::PointId point = 0;
    model::Value value;
    std::string origin;
    rules::Writer writer = rules::Writer::Rule;
    bool override_latch = false;
    bool urgent = false;    ///< de-energizing: sent at once, recorded in parallel
    bool recorded = false;  ///< its record is durable
    bool sent = false;
    bool by_report = false;
    int attempts = 0;       ///< times dispatched to the driver
    int device_writes = 0;  ///< writes the driver reported making (its own retries included)
    int64_t timeout_ms = 0;
    core::SteadyTime deadline{};
    std::vector<Callback> done;
  };

  static uint64_t pointKey(model::DeviceIndex d, model::PointId p) {
    return (static_cast<uint64_t>(d) << 16) | p;
  }
  /// The gate: interlocks, then the driver. False when refused (then finished).
  bool dispatch(Pending& p);
  void finish(uint64_t id, ActuationStatus status, std::string error);
  void refuseNow(const WriteOrder& order, uint64_t id, std::string why, Callback done);
  /// Why `order` cannot be written at all (unknown device or point, not writable, a value that
  /// does not fit or is out of range, no driver); empty when it can. Coerces its value to the
  /// point's type.
  std::string whyNotWritable(WriteOrder& order) const;
  /// Counts a write to the point `key` against the per-minute limit: true when it must be
  /// refused (only an energizing write ever is; a de-energizing one is counted, never refused).
  bool overRateLimit(uint64_t key, bool urgent, core::SteadyTime now);
  storage::ActuationRecord recordOf(const Pending& p, const char* state) const;

  const model::Compound& compound_;
  rules::Interlocks& interlocks_;
  const model::StateTable& state_;
  ActuationJournal& journal_;
  const core::Clock& clock_;
  core::Counter& requested_;
  /// hgj_actuations_total{result}, by ActuationStatus (its values number 0..3).
  std::array<core::Counter*, 4> ended_{};
  core::Counter& sent_;
  std::vector<drivers::Driver*> drivers_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::unordered_map<uint64_t, uint64_t> by_point_;  // point key -> pending id
  std::unordered_map<uint64_t, std::deque<core::SteadyTime>> recent_;  // per point key
  std::vector<std::pair<std::vector<Callback>, ActuationOutcome>> completions_;
  bool completing_ = false;
  uint64_t next_id_;
};

} // namespace hgj::pipeline
