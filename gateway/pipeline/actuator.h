#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "gateway/storage/store.h"
#include "model/compound.h"
#include "model/reading.h"

namespace hgj::pipeline {

/// The outcome of an actuation, reported back to whoever asked (a rule, an operator).
struct ActuationOutcome {
  uint64_t request_id = 0;
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  model::Value value;
  std::string origin;
  bool ok = false;
  std::string error;
};

/// Executes writes to devices: records each decision durably before it is sent, routes it to
/// the driver that reaches the device, and tracks it until confirmed (Modbus read-back reported
/// by the driver; for MQTT devices a later report showing the value), retrying once and then
/// failing. Writes per point are rate-limited. Pipeline thread only.
class Actuator {
public:
  using Callback = std::function<void(const ActuationOutcome&)>;

  Actuator(const model::Compound& compound, storage::Store& store, core::MetricsRegistry& metrics,
           const core::Clock& clock);

  void addDriver(drivers::Driver* driver) { drivers_.push_back(driver); }

  /// Starts a write. Returns the request id, or nullopt (with `error`) when it is refused at
  /// once (not writable, no driver, rate limit). `done` runs on the pipeline thread when the
  /// write is confirmed or has failed.
  std::optional<uint64_t> write(model::DeviceIndex device, model::PointId point,
                                model::Value value, std::string origin, Callback done,
                                std::string* error);

  /// A driver's result (Modbus read-back, MQTT publish failure).
  void onResult(const drivers::WriteResult& result);
  /// A reading: confirms a pending MQTT write whose value it shows.
  void onReading(const model::Reading& reading);
  /// Times out unconfirmed writes (retry once, then fail).
  void tick();
  size_t pending() const { return pending_.size(); }

private:
  struct Pending {
    uint64_t id;
    model::DeviceIndex device;
    model::PointId point;
    model::Value value;
    std::string origin;
    int attempts = 1;
    core::SteadyTime deadline;
    bool by_report = false;
    Callback done;
  };

  drivers::Driver* driverFor(const model::Device& d) const;
  void send(Pending& p);
  void finish(uint64_t id, bool ok, std::string error);

  const model::Compound& compound_;
  storage::Store& store_;
  const core::Clock& clock_;
  core::Counter& requested_;
  core::Counter& confirmed_;
  core::Counter& failed_;
  core::Counter& refused_;
  std::vector<drivers::Driver*> drivers_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::unordered_map<uint64_t, std::deque<core::SteadyTime>> recent_;  // per (device, point)
  uint64_t next_id_;
};

} // namespace hgj::pipeline
