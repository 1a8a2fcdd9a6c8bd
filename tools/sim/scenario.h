#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config_node.h"

namespace hgj::sim {

/// What a scripted event does; see docs/simulator.md for each one's fields.
enum class EventType {
  PortOverheat,     ///< a charging port's temperature ramps to `value` (°C)
  Smoke,            ///< smoke in a shed (MQTT shed status or Modbus shed controller)
  FuelCar,          ///< a fuel car parks on an EV space; its pile never charges
  LongStay,         ///< a car parks and stays for `duration` (e.g. 20d)
  Silent,           ///< a device stops reporting / answering
  ModbusException,  ///< a Modbus device answers every request with exception `code`
  CoRise,           ///< a CO sensor's reading ramps to `value` ppm
  IgnoreCommands,   ///< a port ignores relay commands (read-back mismatch)
  SetPoint,         ///< forces a point of a device to `text`/`value`
  PlugIn,           ///< an e-bike plugs into a port (`value` Wh to charge at `power` W peak)
};

const char* eventTypeName(EventType t);

struct ScenarioEvent {
  EventType type = EventType::Silent;
  int64_t at_ms = 0;           ///< scenario time after start
  std::string device;          ///< device id the event applies to
  double value = 0;            ///< temp_c / co_ppm target; energy_wh of a plug_in
  double power = 0;            ///< peak power_w of a plug_in
  int64_t ramp_ms = 0;         ///< time to reach `value`
  int64_t duration_ms = 0;     ///< how long it lasts; 0 = until the end of the run
  int code = 4;                ///< Modbus exception code
  std::string point;           ///< SetPoint
  std::string text;            ///< SetPoint value as written
  core::SourceLocation where;  ///< for problems found against the compound
  std::string key_path;        ///< "events[3]"
};

struct TopicTemplates {
  std::string parking = "compound/parking/{id}/state";
  std::string chirpstack = "application/{app}/device/{dev_eui}/event/up";
  std::string ev = "compound/ev/{id}/status";
  std::string shed = "compound/ebike/{id}/status";
  std::string port = "compound/ebike/{id}/telemetry";
  std::string port_set = "compound/ebike/{id}/set";
  /// Refresh requests (a gateway's safety rule wants a fresh reading now) for MQTT sheds and
  /// ports: the device reports at once (ebike_*_mqtt profiles' `mqtt.refresh`).
  std::string ebike_get = "compound/ebike/{id}/get";
  std::string co = "compound/co/{id}/state";
  std::string smoke = "compound/smoke/{id}/state";
};

struct MqttSettings {
  std::string url = "tcp://127.0.0.1:1883";
  std::string client_id = "hgj-sim";
  int qos = 1;
  /// Cap on messages per wall-clock second; periodic reports are thinned above it.
  int max_rate = 2000;
  /// Messages handed to Paho but not yet acknowledged; above it periodic reports wait.
  int max_in_flight = 5000;
  /// Messages Paho buffers while the broker is away.
  int max_buffered = 20000;
  std::chrono::milliseconds keep_alive{std::chrono::seconds(20)};
  TopicTemplates topics;
  std::string chirpstack_application = "3e6d9d2b-6b21-4b3c-9a43-5f1f0c2a7d10";
  std::string chirpstack_tenant = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242";
};

struct ModbusSettings {
  std::string bind = "127.0.0.1";
  /// Line name (as devices.yaml uses it) -> TCP port; 0 = any free port.
  std::map<std::string, int> lines;
  /// Profile name -> register layout name (overrides the choice by device type).
  std::map<std::string, std::string> layouts;
};

struct ParkingBehaviour {
  int64_t heartbeat_ms = 5 * 60'000;
  double night_occupancy = 0.85;  ///< 22:00-06:00 local
  double day_occupancy = 0.40;    ///< 09:00-17:00 local
  int64_t mean_cycle_ms = 4 * 3'600'000;  ///< mean time between a space's changes
  double flaps_per_day = 0.3;     ///< spurious flips per sensor per day
  int64_t flap_ms = 4'000;        ///< how long a flap lasts
  double ev_share = 0.7;          ///< cars arriving on an EV space that are EVs
};

struct EvBehaviour {
  int64_t report_ms = 30'000;
  double power_kw = 7.0;
  double session_kwh_min = 6;
  double session_kwh_max = 35;
  int64_t sit_ms = 90 * 60'000;  ///< mean time a full car stays plugged
  double sessions_per_day = 1.2;  ///< piles without a linked space
};

struct EbikeBehaviour {
  int64_t report_ms = 30'000;
  int64_t shed_report_ms = 60'000;
  double sessions_per_day = 1.5;
  double session_wh_min = 250;
  double session_wh_max = 800;
  double peak_w_min = 140;
  double peak_w_max = 260;
  double full_below_w = 20;
  int64_t unplug_after_ms = 2 * 3'600'000;  ///< mean time a full battery stays plugged
  double volts = 220;
};

struct CoBehaviour {
  int64_t report_ms = 30'000;
  double baseline_ppm = 3;
  double rush_ppm = 12;  ///< extra at the 08:00 / 18:00 peaks
};

struct Behaviour {
  ParkingBehaviour parking;
  EvBehaviour ev;
  EbikeBehaviour ebike;
  CoBehaviour co;
};

struct Scenario {
  std::string file;          ///< the scenario file
  std::string gateway;       ///< absolute or cwd-relative path of the gateway config
  double speed = 1.0;        ///< scenario seconds per wall second
  uint64_t seed = 1;
  /// Scenario start as Unix ms; nullopt = the wall clock at start.
  std::optional<int64_t> start_ms;
  int64_t utc_offset_ms = 8 * 3'600'000;  ///< local time of day for the behaviour (China)
  std::chrono::milliseconds tick{100};    ///< wall time between simulation steps
  /// "scenario": `ts` fields carry the accelerated scenario time; "wall": the real clock.
  bool scenario_timestamps = true;
  bool realistic = true;  ///< random behaviour on; off = only heartbeats and events
  MqttSettings mqtt;
  ModbusSettings modbus;
  Behaviour behaviour;
  std::vector<ScenarioEvent> events;  ///< sorted by `at_ms`
};

/// Parses a scenario from its root node, reporting problems to `root.diag()`. `base_dir` resolves
/// the relative `gateway:` path. Unknown keys are errors; every value has a default.
Scenario parseScenario(const core::ConfigNode& root, const std::string& base_dir);

/// Loads `path`, applies `--set key.path=value` overrides, parses. Throws core::ConfigError with
/// every problem (`FILE:LINE: key.path: message`).
Scenario loadScenario(const std::string& path, const std::vector<std::string>& overrides);

/// Sets `key.path` (dots separate map keys) in `root` to the YAML scalar `value`; false with a
/// message when the path crosses a non-map.
bool applyOverride(YAML::Node root, const std::string& assignment, std::string& error);

} // namespace hgj::sim
