#pragma once

#include <map>
#include <memory>
#include <utility>

#include "core/clock.h"
#include "core/metrics.h"
#include "drivers/modbus/device_plan.h"
#include "drivers/modbus/modbus_decode.h"
#include "drivers/modbus/modbus_driver.h"
#include "tests/unit/modbus/modbus_fixture.h"
#include "tools/sim/modbus_slave.h"

namespace hgj::test_modbus {

/// A compound, a driver config, a collecting sink and the driver under test.
struct Rig {
  model::Compound compound;
  drivers::modbus::ModbusConfig config;
  CollectingSink sink;
  core::MetricsRegistry metrics;
  std::unique_ptr<drivers::modbus::ModbusDriver> driver;

  drivers::modbus::LineConfig& addTcpLine(const std::string& id, int port) {
    drivers::modbus::LineConfig l;
    l.id = id;
    l.kind = drivers::modbus::LineKind::Tcp;
    l.host = "127.0.0.1";
    l.port = port;
    l.timeout_ms = 100;
    l.byte_timeout_ms = 50;
    l.reconnect_min_ms = 50;
    l.reconnect_max_ms = 200;
    l.max_backoff_ms = 2000;
    config.lines.push_back(l);
    return config.lines.back();
  }

  void start() {
    compound.buildIndexes();
    driver = std::make_unique<drivers::modbus::ModbusDriver>(config, compound, sink, metrics,
                                                             core::SystemClock::instance());
    driver->start();
  }

  ~Rig() {
    if (driver) {
      driver->stop();
    }
  }

  model::DeviceIndex dev(const std::string& id) const { return compound.deviceIndex(id); }
  model::PointId pt(const std::string& name) const { return *compound.pointId(name); }

  uint64_t write(uint64_t id, const std::string& device, const std::string& point,
                 model::Value value) {
    drivers::WriteRequest w;
    w.id = id;
    w.device = dev(device);
    w.point = pt(point);
    w.value = std::move(value);
    w.origin = "test";
    driver->write(w);
    return id;
  }

  std::optional<drivers::WriteResult> result(uint64_t id) const {
    for (const auto& r : sink.writeResults()) {
      if (r.request_id == id) {
        return r;
      }
    }
    return std::nullopt;
  }
};

using Expected = std::map<std::pair<model::DeviceIndex, model::PointId>, model::Value>;

/// Stores a distinct value for every register of `device` (and its ports) in `unit` of the
/// slave, and returns the values the driver must report.
inline Expected fillDevice(sim::ModbusSlave& slave, int unit, const model::Compound& compound,
                           const model::Device& device) {
  using drivers::profiles::RegisterType;
  Expected expected;
  auto plan = drivers::modbus::buildDevicePlan(compound, device);
  int i = 0;
  for (const auto& v : plan.values) {
    ++i;
    const auto& def = *v.def;
    auto addr = static_cast<uint16_t>(v.address);
    if (drivers::profiles::isBitTable(def.table)) {
      bool b = i % 2 == 0;
      slave.setBit(unit, def.table, addr, b);
      expected[{v.device, v.point}] = model::Value(b);
      continue;
    }
    if (def.type == RegisterType::Bool) {
      bool b = i % 3 != 0;
      uint16_t r = slave.getRegister(unit, def.table, addr);
      if (def.bit >= 0) {
        r = static_cast<uint16_t>(b ? (r | (1U << def.bit)) : (r & ~(1U << def.bit)));
      } else {
        r = b ? 1 : 0;
      }
      slave.setRegister(unit, def.table, addr, r);
      expected[{v.device, v.point}] = model::Value(b);
      continue;
    }
    if (!def.values.empty() && def.type != RegisterType::String) {
      // A mapped status: store one of the map's raw values (with bits outside the mask set, which
      // the driver must ignore) and expect its text.
      const auto& [raw, text] = def.values[static_cast<size_t>(i) % def.values.size()];
      drivers::profiles::RegisterDef plain = def;
      plain.values.clear();
      plain.mask = 0;
      std::string error;
      double stored = std::stod(raw) + (def.mask != 0 ? static_cast<double>(def.mask + 1) : 0);
      auto regs = drivers::modbus::encodeRegisters(plain, model::Value(stored), error);
      if (!regs) {
        throw std::runtime_error("cannot encode test value: " + error);
      }
      slave.setRegisters(unit, def.table, addr, *regs);
      expected[{v.device, v.point}] = model::Value(text);
      continue;
    }
    model::Value value;
    if (def.type == RegisterType::String) {
      value = model::Value("HGJ" + std::to_string(i));
    } else {
      double raw = 0;
      switch (def.type) {
      case RegisterType::U16:
        raw = 100 + i;
        break;
      case RegisterType::I16:
        raw = -(100 + i);
        break;
      case RegisterType::U32:
        raw = 70000 + i;
        break;
      case RegisterType::I32:
        raw = -70000 - i;
        break;
      case RegisterType::F32:
        raw = 230.5 + i;
        break;
      case RegisterType::U64:
        raw = 1e12 + i;
        break;
      default:
        raw = 0.25 + i;
        break;
      }
      value = model::Value(raw * def.scale + def.offset);
    }
    std::string error;
    auto regs = drivers::modbus::encodeRegisters(def, value, error);
    if (!regs) {
      throw std::runtime_error("cannot encode test value: " + error);
    }
    slave.setRegisters(unit, def.table, addr, *regs);
    expected[{v.device, v.point}] = value;
  }
  return expected;
}

inline bool matches(const model::Value& got, const model::Value& want) {
  if (const auto* w = std::get_if<double>(&want)) {
    const auto* g = std::get_if<double>(&got);
    return g != nullptr && std::abs(*g - *w) <= 1e-6 * std::max(1.0, std::abs(*w));
  }
  return got == want;
}

/// How many expected values the sink does not show (yet).
inline size_t missing(const CollectingSink& sink, const Expected& expected) {
  size_t n = 0;
  for (const auto& [key, want] : expected) {
    if (!matches(sink.last(key.first, key.second), want)) {
      ++n;
    }
  }
  return n;
}

} // namespace hgj::test_modbus
