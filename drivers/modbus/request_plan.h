#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "drivers/profiles/modbus_profile.h"

namespace hgj::drivers::modbus {

using profiles::RegisterTable;

/// One value a device's poll must read.
struct PlanItem {
  RegisterTable table = RegisterTable::Holding;
  uint32_t address = 0;  ///< 0..65535
  uint16_t count = 1;    ///< registers (bits for coil/discrete)
};

/// One read request of a plan and the items (indexes into the planner's input) it carries.
struct PlannedRead {
  RegisterTable table = RegisterTable::Holding;
  uint16_t address = 0;
  uint16_t count = 0;
  std::vector<uint32_t> items;
};

struct PlanLimits {
  uint16_t max_registers = 125;  ///< registers per read (standard limit 125)
  uint16_t max_bits = 2000;      ///< bits per read (standard limit 2000)
  uint16_t max_gap_registers = 8;
  uint16_t max_gap_bits = 64;
};

/// Merges the items into as few reads as the limits allow: per table, items sorted by address
/// are joined while the gap to the previous one is at most the allowed gap and the read stays
/// within the size limit. Items larger than the limit get a read of their own (the caller keeps
/// them within it). Reads are ordered by table, then address. Pure; computed once per device.
std::vector<PlannedRead> planReads(std::span<const PlanItem> items, const PlanLimits& limits);

} // namespace hgj::drivers::modbus
