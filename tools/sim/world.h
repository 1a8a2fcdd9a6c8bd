#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "model/compound.h"
#include "tools/sim/register_layouts.h"
#include "tools/sim/rng.h"
#include "tools/sim/scenario.h"
#include "tools/sim/sim_modbus.h"

namespace hgj::sim {

/// Where the world's MQTT messages go (the Paho link in the simulator, a recorder in tests).
class Publisher {
public:
  virtual ~Publisher() = default;
  /// Hands one message over; false when it could not be taken (the world retries later).
  virtual bool publish(const std::string& topic, const std::string& payload) = 0;
  /// How many more messages may be handed over now (in-flight cap); checked once per step.
  virtual int capacity() const { return 1 << 30; }
};

/// The Modbus servers of the run, by line name; owned by the caller, outliving the world.
using ModbusServers = std::map<std::string, ModbusTcpServer*>;

/// Counters of a run, for the status line and tests.
struct WorldStats {
  uint64_t published = 0;
  uint64_t commands = 0;
  uint64_t commands_ignored = 0;
  uint64_t refreshes = 0;  ///< refresh requests answered
  uint64_t bad_messages = 0;
  uint64_t events_fired = 0;
  uint64_t deferred = 0;  ///< periodic reports postponed by the rate or in-flight cap
};

/// The simulated compound: every played device's state, its behaviour model and the scripted
/// events. Deterministic: the same scenario, compound, seed and sequence of step() times give the
/// same messages. Not thread-safe: owned and driven by one thread (the simulator's loop, or a
/// test calling step() with its own times).
class World {
public:
  /// Builds the devices from the compound and adds their units to `servers` (which must not be
  /// started yet). Throws core::ConfigError when an event names a missing or unsuitable device.
  /// Devices on a Modbus line without a server are not played (a warning names the line).
  World(const Scenario& scenario, std::shared_ptr<const model::Compound> compound,
        Publisher& publisher, const ModbusServers& servers, int64_t start_ms);

  /// Advances to scenario time `now_ms`: fires due events, moves the behaviour models, refreshes
  /// Modbus registers and publishes due reports (at most `budget` periodic ones; changes and
  /// command confirmations are never held back by the budget). `wall_ms` stamps messages when
  /// the scenario asks for wall-clock timestamps.
  void step(int64_t now_ms, int64_t wall_ms, int budget);

  /// An MQTT message for the simulated devices: a relay command on a port's /set topic (applied
  /// at once; the port's confirming telemetry goes out on the next step()), or a refresh
  /// request on a shed's or port's /get topic (its report goes out on the next step()).
  void handleMessage(const std::string& topic, const std::string& payload);

  /// Topics the devices listen on (MQTT wildcards).
  std::vector<std::string> subscriptions() const;

  const WorldStats& stats() const { return stats_; }
  int64_t nowMs() const { return now_ms_; }
  /// Devices the world plays, and ids of devices it cannot play (unknown type or transport).
  size_t playedCount() const { return played_; }
  const std::vector<std::string>& unplayed() const { return unplayed_; }

  // Read access for tests and the status line.
  std::optional<bool> relay(const std::string& port_id) const;
  std::optional<double> portPower(const std::string& port_id) const;
  std::optional<bool> spaceOccupied(const std::string& space_id) const;
  std::optional<std::string> pileState(const std::string& pile_id) const;
  /// The holding registers the gateway last wrote to a display.
  std::vector<uint16_t> displayRegisters(const std::string& display_id) const;

private:
  struct Report {
    int64_t next_ms = 0;
    int64_t interval_ms = 60'000;
    bool dirty = false;
    int64_t silent_until = 0;  ///< > now: says nothing
    std::map<std::string, nlohmann::ordered_json> overrides;  ///< `set` events
  };

  enum class PileState { Available, Preparing, Charging, SuspendedEV, Finishing, Faulted };

  struct Space {
    model::DeviceIndex dev;
    Rng rng{0};  ///< the device's own stream, so one device's commands do not shift others
    bool occupied = false;
    int64_t since_ms = 0;
    int64_t pinned_until = 0;  ///< > now: the car does not leave (long stay, fuel car)
    bool fuel_car = false;
    int pile = -1;
    int64_t flap_until = 0;
    uint32_t fcnt = 0;
    Report rep;
  };

  struct Pile {
    model::DeviceIndex dev;
    Rng rng{0};  ///< the device's own stream, so one device's commands do not shift others
    int space = -1;
    PileState state = PileState::Available;
    int64_t state_since = 0;
    double power_kw = 0;
    double session_kwh = 0;
    double need_kwh = 0;
    double total_kwh = 0;
    int64_t leave_at = 0;  ///< piles without a space: when the full car drives off
    Report rep;
  };

  struct Ramp {
    bool active = false;
    double from = 0;
    double to = 0;
    int64_t start = 0;
    int64_t ramp_ms = 0;
    double at(int64_t now) const;
  };

  struct Shed {
    model::DeviceIndex dev;
    Rng rng{0};  ///< the device's own stream, so one device's commands do not shift others
    bool modbus = false;
    ModbusTcpServer* server = nullptr;
    int unit = 0;
    bool smoke = false;
    bool main_relay = true;  ///< Modbus controllers: the shed's supply
    bool ignore_main = false;
    double temp_c = 22;
    std::vector<int> ports;
    Report rep;
  };

  struct Port {
    model::DeviceIndex dev;
    Rng rng{0};  ///< the device's own stream, so one device's commands do not shift others
    int shed = -1;
    int number = 1;
    bool modbus = false;
    bool relay = true;
    bool plugged = false;
    bool full = false;
    double need_wh = 0;
    double delivered_wh = 0;
    double peak_w = 0;
    double power_w = 0;
    double temp_c = 22;
    int64_t session_start = 0;
    int64_t unplug_at = 0;
    bool ignore_commands = false;
    Ramp heat;
    Report rep;
  };

  struct CoSensor {
    model::DeviceIndex dev;
    Rng rng{0};  ///< the device's own stream, so one device's commands do not shift others
    bool modbus = false;
    ModbusTcpServer* server = nullptr;
    int unit = 0;
    double ppm = 3;
    Ramp rise;
    Report rep;
  };

  struct SmokeDetector {
    model::DeviceIndex dev;
    bool smoke = false;
    Report rep;
  };

  struct Meter {
    model::DeviceIndex dev;
    ModbusTcpServer* server = nullptr;
    int unit = 0;
    Layout layout = Layout::Sdm120;
    int pile = -1;  ///< -1: measures every pile (the garage's feeder)
    double total_kwh = 0;
  };

  struct Fan {
    model::DeviceIndex dev;
    ModbusTcpServer* server = nullptr;
    int unit = 0;
    bool stage1 = false;
    bool stage2 = false;
  };

  struct Display {
    model::DeviceIndex dev;
    ModbusTcpServer* server = nullptr;
    int unit = 0;
    std::vector<uint16_t> regs;
    bool log_pending = false;
    int64_t logged_ms = INT64_MIN / 2;
  };

  struct Pending {
    size_t event;
    bool end;  ///< the end of an event with a duration
    int64_t at_ms;
  };

  void build(const ModbusServers& servers, core::Diagnostics& diag);
  void validateEvents(core::Diagnostics& diag);
  ModbusTcpServer* serverFor(const model::Device& d, const ModbusServers& servers,
                             core::Diagnostics& diag, const std::string& what);
  Layout layoutFor(const model::Device& d, Layout def) const;

  void fireEvents(int64_t now);
  void applyEvent(const ScenarioEvent& ev, bool end, int64_t now);
  void setSilent(model::DeviceIndex dev, bool on, int64_t until, bool end);

  void stepParking(Space& s, int64_t now, double dt);
  void stepPile(Pile& p, int64_t now, double dt);
  void stepShed(Shed& s, int64_t now, double dt);
  void stepPort(Port& p, int64_t now, double dt);
  void stepCo(CoSensor& c, int64_t now, double dt);
  void advance(int64_t now, double dt);
  void arrive(Space& s, int64_t now, bool allow_ev);
  void leave(Space& s, int64_t now);
  void startPileSession(Pile& p, int64_t now);
  void setPileState(Pile& p, PileState st, int64_t now);

  enum class Kind { None, Space, Pile, Shed, Port, Co, Smoke, Meter, Display, Fan };
  struct Slot {
    Kind kind = Kind::None;
    int index = -1;
  };

  void syncModbus(int64_t now);
  void publishDue(int64_t now, int64_t stamp, int budget);
  Report* reportOf(const Slot& s);
  bool sendReport(const Slot& s, int64_t stamp);
  bool send(const std::string& topic, nlohmann::ordered_json payload, Report& r);
  bool sendSpace(Space& s, int64_t stamp);
  const Slot* slotOf(const std::string& id) const;
  std::string topicFor(const std::string& tmpl, const model::Device& d) const;
  double occupancyTarget(int64_t now) const;
  double localHour(int64_t now) const;
  double ambient(int64_t now) const;
  const model::Device& dev(model::DeviceIndex i) const { return compound_->devices[i]; }

  const Scenario& scenario_;
  std::shared_ptr<const model::Compound> compound_;
  Publisher& publisher_;
  Rng rng_;
  int64_t start_ms_;
  int64_t now_ms_;
  int64_t model_ms_;    ///< how far the behaviour models have advanced
  int64_t quantum_ms_;  ///< the models' fixed step of scenario time
  WorldStats stats_;
  size_t played_ = 0;
  std::vector<std::string> unplayed_;
  std::set<std::string> missing_lines_;

  std::vector<Space> spaces_;
  std::vector<Pile> piles_;
  std::vector<Shed> sheds_;
  std::vector<Port> ports_;
  std::vector<CoSensor> cos_;
  std::vector<SmokeDetector> smokes_;
  std::vector<Meter> meters_;
  std::vector<Display> displays_;
  std::vector<Fan> fans_;
  /// Device index -> (kind, slot) for events and commands.
  std::vector<Slot> slots_;
  /// Devices that publish over MQTT, in a fixed order; periodic reports resume at `cursor_`
  /// so a rate cap thins every kind evenly.
  std::vector<Slot> reporters_;
  size_t cursor_ = 0;
  std::map<model::DeviceIndex, std::pair<ModbusTcpServer*, int>> modbus_units_;
  std::vector<Pending> pending_;
  size_t next_pending_ = 0;
  core::RateLimitedLog bad_log_;
};

} // namespace hgj::sim
