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
  Ddsu666,         ///< CHINT DDSU666 energy meter: holding registers, float32 ABCD, power in kW
  Fan,             ///< garage fan controller: stage coils, running/fault discrete inputs
};

std::optional<Layout> parseLayout(std::string_view name);
const char* layoutName(Layout l);
UnitTables layoutTables(Layout l, int ports);

// Eastron SDM120 (conf/profiles/eastron_sdm120.yaml): FC04, float32 ABCD.
namespace sdm120 {
constexpr int kVoltage = 0x0000;
constexpr int kCurrent = 0x0006;
constexpr int kActivePower = 0x000C;
constexpr int kApparentPower = 0x0012;
constexpr int kReactivePower = 0x0018;
constexpr int kPowerFactor = 0x001E;
constexpr int kFrequency = 0x0046;
constexpr int kImportEnergy = 0x0048;
constexpr int kExportEnergy = 0x004A;
constexpr int kTotalEnergy = 0x0156;
constexpr int kInputCount = 0x0158;
} // namespace sdm120

// CHINT DDSU666 (conf/profiles/chint_ddsu666.yaml): holding registers, float32 ABCD.
namespace ddsu666 {
constexpr int kVoltage = 0x2000;
constexpr int kCurrent = 0x2002;
constexpr int kPowerKw = 0x2004;
constexpr int kFrequency = 0x200E;
constexpr int kImportEnergy = 0x4000;
constexpr int kHolding = 0x4002;
} // namespace ddsu666

// Garage fan controller (conf/profiles/garage_fan_controller.yaml).
namespace fan {
constexpr int kStage1Coil = 0;
constexpr int kStage2Coil = 1;
constexpr int kRunningInput = 0;
constexpr int kFaultInput = 1;
} // namespace fan

// HGJ M12 shed controller (conf/profiles/hgj_ebike_shed_m12.yaml), all words big endian.
namespace shed {
constexpr int kMainRelayCoil = 0x0000;  ///< 1 = shed supply on; 0 cuts every port
constexpr int kPortCoilBase = 0x0010;   ///< coil 0x10 + (n-1): port n's relay
constexpr int kSmokeInput = 0x0000;     ///< discrete input
constexpr int kAmbientTemp = 0x0000;    ///< input, i16, 0.1 °C
constexpr int kTotalPower = 0x0001;     ///< input, u32, W
constexpr int kFaultCode = 0x0003;      ///< input, u16
constexpr int kPortBase = 0x0100;       ///< port n's block at kPortBase + (n-1) * kPortStride
constexpr int kPortStride = 0x0010;
constexpr int kCurrent = 0;             ///< u16, 0.01 A
constexpr int kPower = 1;               ///< u16, W
constexpr int kTemp = 2;                ///< i16, 0.1 °C
constexpr int kSessionSeconds = 3;      ///< u32
constexpr int kEnergyWh = 5;            ///< u32
constexpr int kStatus = 7;              ///< bit 0 plugged, bit 1 full
constexpr int kMaxPorts = 24;
} // namespace shed

// Garage CO transmitter (conf/profiles/garage_co_sensor.yaml): holding registers.
namespace co {
constexpr int kPpm = 0x0000;        ///< u16 ppm
constexpr int kTemp = 0x0001;       ///< i16, 0.1 °C
constexpr int kStatus = 0x0002;     ///< bit 0 sensor fault, bit 1 alarm (ppm >= threshold)
constexpr int kThreshold = 0x0010;  ///< u16 ppm, writable
constexpr int kDefaultThreshold = 100;
constexpr int kHolding = 0x0020;
} // namespace co

// LED guidance display (conf/profiles/led_guidance_display.yaml): holding registers.
namespace display {
constexpr int kBrightness = 0x0100;
constexpr int kRegisters = 0x0101;
/// The board's name for a register, or empty for an unused address.
const char* registerName(int addr);
} // namespace display

} // namespace hgj::sim
