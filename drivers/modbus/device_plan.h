#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "drivers/modbus/request_plan.h"
#include "drivers/profiles/modbus_profile.h"
#include "model/compound.h"
#include "model/reading.h"

namespace hgj::drivers::modbus {

/// One value of a poll: which device (the polled device or one of its children) and point it
/// belongs to, where it sits, and how to decode it.
struct PlannedValue {
  model::DeviceIndex device = model::kNoDevice;
  model::PointId point = 0;
  const profiles::RegisterDef* def = nullptr;  ///< owned by the profile's ModbusSpec
  uint32_t address = 0;                         ///< absolute (block offsets resolved)
};

/// Everything one poll of a device reads: its own registers and its children's block registers,
/// merged into as few requests as the limits allow. Computed once at start-up.
struct DevicePlan {
  std::vector<PlannedValue> values;
  std::vector<PlannedRead> reads;  ///< PlannedRead::items index `values`
  /// The devices a poll reports on: the polled device first, then its children.
  std::vector<model::DeviceIndex> devices;
};

/// Builds the plan of a Modbus device (not a child). Throws std::runtime_error when the
/// configuration cannot be polled (no modbus section, more children than a block describes;
/// core::ConfigError, a runtime_error, for block points missing from the child profile).
/// Start-up only.
DevicePlan buildDevicePlan(const model::Compound& compound, const model::Device& device);

/// Decodes the reply of read `read_index` of `plan` (registers, or one byte per bit for bit
/// tables; `data` holds `read.count` of them) and appends a reading per value to `out`, grouped
/// later by device. Values that do not decode (NaN, too short) are counted in `bad` and skipped.
/// Pure apart from its output; never throws.
void decodeRead(const DevicePlan& plan, size_t read_index, std::span<const uint16_t> registers,
                std::span<const uint8_t> bits, int64_t now_ms, std::vector<model::Reading>& out,
                int& bad);

} // namespace hgj::drivers::modbus
