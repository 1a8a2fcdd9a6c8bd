#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/config_node.h"
#include "model/compound.h"
#include "model/state_table.h"
#include "rules/action.h"
#include "rules/engine.h"
#include "rules/rules_config.h"

namespace hgj::rules::test {

/// Sizes of a hand-built compound shaped like the example one (until the config loader lands).
struct CompoundSpec {
  int spaces_per_level = 8;       ///< P-B1-0001.., P-B2-0001..; zone ABCD[(n-1) / (per/4)]
  int sheds = 2;                  ///< S01.. with `ports` children S01/P01..
  int ports = 10;
  int piles = 2;                  ///< EV-01.., linked to the last spaces of B2
  int modbus_sheds = 0;           ///< M01.. with 12 ports
  int co_sensors_per_level = 1;   ///< CO-B1-1..
  int fans_per_level = 1;         ///< FAN-B1-1..
  int meters = 1;
  bool display = true;            ///< DISP-ENTRANCE with free_total, free_B1, free_B2, free_B1_A,
                                  ///< free_visitor
  int visitor_spaces = 0;         ///< the first spaces of B1 are visitor spaces; linked ones ev,
                                  ///< the rest leased
};

/// Profiles: parking_sensor, ebike_port, ebike_shed, ev_pile, co_sensor, fan, display, meter with
/// the point names of conf/rules.yaml.
std::unique_ptr<model::Compound> makeCompound(const CompoundSpec& spec = {});

struct Raised {
  std::string rule;
  model::DeviceIndex device;
  Severity severity;
  std::string message;
  std::string value;
  int64_t source_ms;
  std::string actions_taken;
  bool escalate_now;
};
struct Cleared {
  std::string rule;
  model::DeviceIndex device;
};
struct Written {
  std::string rule;
  model::DeviceIndex device;
  model::PointId point;
  model::Value value;
  bool safety;
};

class RecordingSink : public ActionSink {
public:
  void raiseAlert(const AlertRaise& a) override;
  void clearAlert(const AlertClear& c) override;
  void writePoint(const WriteAction& w) override;
  void reset();
  size_t raisedCount(const std::string& rule) const;

  std::vector<Raised> raised;
  std::vector<Cleared> cleared;
  std::vector<Written> writes;
};

/// A compound, a state table, a rules config from YAML text and an engine on a ManualClock.
class Rig {
public:
  explicit Rig(const std::string& rules_yaml, const CompoundSpec& spec = {});
  /// Parses rules into a config; returns the problems as text ("" when valid).
  static std::string problems(const std::string& rules_yaml, model::Compound& compound);

  model::DeviceIndex dev(const std::string& id) const;
  model::PointId pt(const std::string& name) const;
  /// Applies a reading to the state table and hands it to the engine.
  void feed(const std::string& device, const std::string& point, model::Value value,
            model::Quality quality = model::Quality::Good);
  void advance(std::chrono::milliseconds d) { clock.advance(d); }
  /// Advances in 200 ms ticks.
  void run(std::chrono::milliseconds d);
  void tick() { engine->tick(*state, sink); }
  void offline(const std::string& device);
  /// A fresh state table and engine (a restart), keeping the compound and config.
  void restart();

  core::ManualClock clock;
  std::unique_ptr<model::Compound> compound;
  std::unique_ptr<RulesConfig> config;
  std::unique_ptr<model::StateTable> state;
  std::unique_ptr<Engine> engine;
  RecordingSink sink;
};

} // namespace hgj::rules::test
