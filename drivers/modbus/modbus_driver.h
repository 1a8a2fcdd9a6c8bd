#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/heartbeat.h"
#include "core/log.h"
#include "core/metrics.h"
#include "drivers/driver.h"
#include "drivers/modbus/modbus_config.h"
#include "model/compound.h"

namespace hgj::drivers::modbus {

class ModbusLine;

/// The Modbus southbound driver: one poller thread per configured line (TCP endpoint or serial
/// port), each owning its libmodbus context. Devices with a `modbus.line` binding are polled on
/// their interval with a request plan computed here, once; readings of a device and of each of
/// its child ports are delivered as one ReadingBatch per device; reachability changes as
/// DeviceHealth; writes are queued to the device's line thread and answered by a WriteResult
/// after read-back. See drivers/modbus/README.md for the fault handling.
///
/// `compound`, `sink`, `metrics` and `clock` must outlive the driver (`config` is copied). The constructor
/// throws std::runtime_error when a device cannot be polled as configured (unknown line, no
/// modbus section in its profile, more ports than its profile's blocks describe).
class ModbusDriver : public drivers::Driver {
public:
  /// `liveness` (optional, outlives the driver): each line thread's heartbeat.
  ModbusDriver(const ModbusConfig& config, const model::Compound& compound,
               drivers::SampleSink& sink, core::MetricsRegistry& metrics,
               const core::Clock& clock, core::Liveness* liveness = nullptr);
  ~ModbusDriver() override;

  const char* name() const override { return "modbus"; }
  void start() override;
  void stop() override;
  /// True for devices bound to one of the lines and for their children.
  bool handles(const model::Device& device) const override;
  /// Never blocks. A request for a device no line serves is answered with a failed
  /// WriteResult ("not a modbus device"), from a line thread.
  void write(const WriteRequest& request) override;
  /// Never blocks: an immediate out-of-cycle poll of the device (a port: its controller) on
  /// its line thread, after pending writes and before the regular polls.
  void refresh(const RefreshRequest& request) override;
  std::string health() const override;

private:
  const ModbusConfig config_;  // the lines keep references into it
  std::vector<std::unique_ptr<ModbusLine>> lines_;
  std::unordered_map<model::DeviceIndex, ModbusLine*> by_device_;
  core::Liveness* liveness_ = nullptr;
  core::RateLimitedLog log_;
};

} // namespace hgj::drivers::modbus
