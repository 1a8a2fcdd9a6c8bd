#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/config/config.h"
#include "gateway/pipeline/control.h"
#include "model/state_table.h"
#include "tests/support/test_support.h"

namespace hgj::pipeline::test {

/// Records what the actuator journals; energizing records wait until the test commits them.
class FakeJournal final : public ActuationJournal {
public:
  void record(storage::ActuationRecord record) override {
    committed.insert(record.request_id);
    records.push_back(std::move(record));
  }
  void recordFirst(storage::ActuationRecord record) override {
    waiting.push_back(record.request_id);
    records.push_back(std::move(record));
  }
  void update(uint64_t request_id, std::string state, std::string /*error*/) override {
    states[request_id] = std::move(state);
  }
  std::vector<storage::ActuationRecord> records;
  std::vector<uint64_t> waiting;  ///< recordFirst() ids not yet answered
  std::set<uint64_t> committed;   ///< ids whose record is durable
  std::map<uint64_t, std::string> states;
};

/// A driver for every device that keeps what it was asked.
class FakeDriver final : public drivers::Driver {
public:
  const char* name() const override { return "fake"; }
  void start() override {}
  void stop() override {}
  bool handles(const model::Device& /*device*/) const override { return true; }
  void write(const drivers::WriteRequest& request) override {
    writes.push_back(request);
    if (on_write) {
      on_write(request);
    }
  }
  void refresh(const drivers::RefreshRequest& request) override { refreshes.push_back(request); }
  std::string health() const override { return "ok"; }

  std::vector<drivers::WriteRequest> writes;
  std::vector<drivers::RefreshRequest> refreshes;
  std::function<void(const drivers::WriteRequest&)> on_write;
};

class RecordingOutputs final : public ControlOutputs {
public:
  void raiseAlert(const rules::AlertRaise& a) override {
    raised.push_back({std::string(a.rule), a.device, a.severity, a.escalate_now});
  }
  void clearAlert(const rules::AlertClear& c) override {
    cleared.push_back({std::string(c.rule), c.device});
  }
  void latchChanged(const rules::Latch& l, bool set) override { latch_log.emplace_back(l, set); }
  struct Raised {
    std::string rule;
    model::DeviceIndex device;
    rules::Severity severity;
    bool escalate_now;
  };
  struct Cleared {
    std::string rule;
    model::DeviceIndex device;
  };
  std::vector<Raised> raised;
  std::vector<Cleared> cleared;
  std::vector<std::pair<rules::Latch, bool>> latch_log;
};

/// A small compound on the shipped profiles (conf/profiles): an MQTT shed S01 with 3 ports and a
/// Modbus 12-port shed controller M01, the given rules, and a Control on a ManualClock with a
/// fake journal, driver and outputs.
class ControlRig {
public:
  explicit ControlRig(const std::string& rules_yaml, bool upstream_override = false);

  /// A fresh state table, control stage, journal, driver and outputs on the same config (the
  /// clock keeps running), as if the gateway started anew without any state: the property test
  /// runs thousands of histories without parsing the profiles each time.
  void reset(bool upstream_override);

  model::DeviceIndex dev(const std::string& id) const;
  model::PointId pt(const std::string& name) const;
  /// Applies a reading to the state table and hands it to the control stage.
  void feed(const std::string& device, const std::string& point, model::Value value,
            model::Quality quality = model::Quality::Good);
  void feed(model::DeviceIndex device, model::PointId point, model::Value value,
            model::Quality quality = model::Quality::Good);
  /// Advances the clock in steps of at most 100 ms, ticking.
  void run(std::chrono::milliseconds d);
  /// Answers every waiting record (durable or not).
  void commitRecords(bool durable = true);
  /// The driver's answer to a write (Modbus read-back).
  void result(const drivers::WriteRequest& req, bool ok, int attempts = 1);
  /// An operator's or the platform's write; the outcome lands in `outcomes`.
  void command(const std::string& device, const std::string& point, model::Value value,
               rules::Writer writer, bool override_latch);
  /// Writes the driver got for (device, point), in order.
  std::vector<drivers::WriteRequest> writesTo(const std::string& device,
                                              const std::string& point) const;

  hgj::test::TempDir dir;
  core::ManualClock clock;
  config::GatewayConfig cfg;
  std::unique_ptr<model::StateTable> state;
  core::MetricsRegistry metrics;
  FakeJournal journal;
  FakeDriver driver;
  RecordingOutputs outputs;
  std::unique_ptr<Control> control;
  std::vector<ActuationOutcome> outcomes;
};

} // namespace hgj::pipeline::test
