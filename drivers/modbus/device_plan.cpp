#include "drivers/modbus/device_plan.h"

#include <stdexcept>

#include "drivers/modbus/modbus_decode.h"

namespace hgj::drivers::modbus {

DevicePlan buildDevicePlan(const model::Compound& compound, const model::Device& device) {
  if (device.profile == nullptr || !device.profile->modbus) {
    throw std::runtime_error(device.source + ": device " + device.id + ": profile " +
                             (device.profile != nullptr ? device.profile->name : "?") +
                             " has no modbus section");
  }
  const profiles::ModbusSpec& spec = *profiles::modbusSpec(*device.profile);
  core::Diagnostics diag;
  if (!profiles::checkModbusBlocks(*device.profile, compound, diag)) {
    throw core::ConfigError(std::move(diag));
  }
  DevicePlan plan;
  plan.devices.push_back(device.index);
  for (const auto& r : spec.registers) {
    plan.values.push_back({device.index, r.point, &r, r.address});
  }
  for (model::DeviceIndex ci : device.children) {
    const model::Device& child = compound.devices.at(ci);
    plan.devices.push_back(ci);
    for (const auto& b : spec.blocks) {
      if (child.child_number < 1 || child.child_number > b.count) {
        throw std::runtime_error(device.source + ": device " + device.id + ": child " + child.id +
                                 " is number " + std::to_string(child.child_number) +
                                 " but profile " + device.profile->name + " describes " +
                                 std::to_string(b.count) + " per block");
      }
      for (const auto& r : b.registers) {
        plan.values.push_back({ci, r.point, &r, profiles::blockAddress(b, r, child.child_number)});
      }
    }
  }
  std::vector<PlanItem> items;
  items.reserve(plan.values.size());
  for (const auto& v : plan.values) {
    items.push_back({v.def->table, v.address, v.def->count});
  }
  PlanLimits limits;
  limits.max_registers = spec.max_read_registers;
  limits.max_gap_registers = spec.max_gap_registers;
  limits.max_gap_bits = spec.max_gap_bits;
  plan.reads = planReads(items, limits);
  return plan;
}

void decodeRead(const DevicePlan& plan, size_t read_index, std::span<const uint16_t> registers,
                std::span<const uint8_t> bits, int64_t now_ms, std::vector<model::Reading>& out,
                int& bad) {
  if (read_index >= plan.reads.size()) {
    return;
  }
  const PlannedRead& read = plan.reads[read_index];
  bool bit_table = profiles::isBitTable(read.table);
  for (uint32_t i : read.items) {
    const PlannedValue& v = plan.values[i];
    size_t off = v.address - read.address;
    std::optional<model::Value> value;
    if (bit_table) {
      if (off < bits.size()) {
        value = decodeBit(bits[off]);
      }
    } else if (off + v.def->count <= registers.size()) {
      value = decodeRegisters(*v.def, registers.subspan(off, v.def->count));
    }
    if (!value) {
      ++bad;
      continue;
    }
    model::Reading r;
    r.device = v.device;
    r.point = v.point;
    r.quality = model::Quality::Good;
    r.value = std::move(*value);
    r.source_ms = now_ms;
    r.ingest_ms = now_ms;
    out.push_back(std::move(r));
  }
}

} // namespace hgj::drivers::modbus
