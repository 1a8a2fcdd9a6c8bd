#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "tools/sim/sim_modbus.h"

namespace hgj::sim {

/// The register maps the simulator serves. Each is documented in docs/simulator.md and matches
/// the profile of the same name in conf/profiles/.
enum class Layout {
  Sdm120,          ///< Eastron SDM120 energy meter: FC04 input registers, float32 ABCD
  ShedController,  ///< our e-bike shed controller: per-port relay coils and telemetry blocks
  CoSensor,        ///< garage CO sensor: FC04 u16 ppm
  Display,         ///< guidance display: FC03/06/16 holding registers written by the gateway
};

std::optional<Layout> parseLayout(std::string_view name);
const char* layoutName(Layout l);
UnitTables layoutTables(Layout l, int ports);

namespace sdm120 {
constexpr int kVoltage = 0x0000;
constexpr int kCurrent = 0x0006;
constexpr int kActivePower = 0x000C;
constexpr int kFrequency = 0x0046;
constexpr int kImportEnergy = 0x0048;
constexpr int kTotalEnergy = 0x0156;
constexpr int kInputCount = 0x0158;
} // namespace sdm120

namespace shed {
// Input registers (FC04), u16 unless stated.
constexpr int kAmbientTemp = 0;   ///< i16, 0.1 °C
constexpr int kTotalPower = 1;    ///< W
constexpr int kPortCount = 2;
constexpr int kSmokeReg = 3;      ///< 0/1 (also discrete input 0)
constexpr int kPortBase = 100;    ///< port n's block at kPortBase + (n-1) * kPortStride
constexpr int kPortStride = 10;
constexpr int kCurrent = 0;       ///< 0.01 A
constexpr int kPower = 1;         ///< W
constexpr int kTemp = 2;          ///< i16, 0.1 °C
constexpr int kSessionSeconds = 3;  ///< u32, high word first
constexpr int kEnergyWh = 5;      ///< u32, high word first (session energy)
constexpr int kState = 7;         ///< 0 idle, 1 charging, 2 full, 3 switched off
constexpr int kRelayReg = 8;      ///< 0/1 mirror of the coil
// Coils (FC01/05/15): coil n-1 = port n's relay (1 = on). Discrete input 0 = smoke.
constexpr int kMaxPorts = 24;
} // namespace shed

namespace co {
constexpr int kPpm = 0;     ///< u16 ppm
constexpr int kTemp = 1;    ///< i16, 0.1 °C
constexpr int kStatus = 2;  ///< 0 ok, 1 warming up, 2 fault
} // namespace co

namespace display {
constexpr int kRegisters = 64;
} // namespace display

} // namespace hgj::sim
