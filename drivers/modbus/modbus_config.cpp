#include "drivers/modbus/modbus_config.h"

#include <chrono>

namespace hgj::drivers::modbus {

namespace {

using std::chrono::milliseconds;

LineConfig parseLine(const core::ConfigNode& n) {
  LineConfig l;
  auto loc = n.location();
  l.source = loc.file + ":" + std::to_string(loc.line);
  n.allowKeys({"id", "type", "host", "port", "device", "baud", "parity", "data_bits", "stop_bits",
               "rs485", "timeout", "byte_timeout", "turnaround", "reconnect_min",
               "reconnect_max", "max_backoff"});
  l.id = n.requiredStr("id");
  l.kind = n.choice("type", "tcp", {"tcp", "rtu"}) == "rtu" ? LineKind::Rtu : LineKind::Tcp;
  if (l.kind == LineKind::Tcp) {
    for (const char* k : {"device", "baud", "parity", "data_bits", "stop_bits", "rs485"}) {
      if (n.has(k)) {
        n.errorAt(k, "only for type: rtu lines");
      }
    }
    l.host = n.str("host", "127.0.0.1");
    l.port = static_cast<int>(n.integer("port", 502, 1, 65535));
  } else {
    for (const char* k : {"host", "port"}) {
      if (n.has(k)) {
        n.errorAt(k, "only for type: tcp lines");
      }
    }
    l.device = n.requiredStr("device");
    l.baud = static_cast<int>(n.integer("baud", 9600, 300, 921'600));
    std::string parity = n.choice("parity", "none", {"none", "even", "odd"});
    l.parity = parity == "even" ? 'E' : parity == "odd" ? 'O' : 'N';
    l.data_bits = static_cast<int>(n.integer("data_bits", 8, 7, 8));
    l.stop_bits = static_cast<int>(n.integer("stop_bits", 1, 1, 2));
    l.rs485 = n.boolean("rs485", false);
  }
  l.timeout_ms = n.duration("timeout", milliseconds(500), milliseconds(10), milliseconds(60'000))
                     .count();
  l.byte_timeout_ms =
      n.duration("byte_timeout", milliseconds(100), milliseconds(1), milliseconds(10'000)).count();
  l.turnaround_ms =
      n.duration("turnaround", milliseconds(0), milliseconds(0), milliseconds(1000)).count();
  l.reconnect_min_ms =
      n.duration("reconnect_min", milliseconds(500), milliseconds(10), milliseconds(600'000))
          .count();
  l.reconnect_max_ms =
      n.duration("reconnect_max", milliseconds(30'000), milliseconds(10), milliseconds(3'600'000))
          .count();
  if (l.reconnect_max_ms < l.reconnect_min_ms) {
    n.errorAt("reconnect_max", "must not be below reconnect_min");
  }
  l.max_backoff_ms =
      n.duration("max_backoff", milliseconds(60'000), milliseconds(10), milliseconds(3'600'000))
          .count();
  return l;
}

} // namespace

const LineConfig* ModbusConfig::line(const std::string& id) const {
  for (const auto& l : lines) {
    if (l.id == id) {
      return &l;
    }
  }
  return nullptr;
}

ModbusConfig parseModbusConfig(const core::ConfigNode& modbus_section) {
  const core::ConfigNode& n = modbus_section;
  ModbusConfig c;
  if (!n.defined()) {
    return c;
  }
  if (!n.allowKeys({"enabled", "lines", "write_min_interval", "write_queue"})) {
    return c;
  }
  c.enabled = n.boolean("enabled", true);
  c.write_min_interval_ms =
      n.duration("write_min_interval", milliseconds(1000), milliseconds(0), milliseconds(600'000))
          .count();
  c.write_queue = static_cast<size_t>(n.integer("write_queue", 256, 1, 100'000));
  core::ConfigNode lines = n.child("lines");
  if (lines.defined() && lines.requireSeq()) {
    for (const auto& item : lines.items()) {
      LineConfig l = parseLine(item);
      if (!l.id.empty() && c.line(l.id) != nullptr) {
        item.errorAt("id", "duplicate line id \"" + l.id + "\" (first at " + c.line(l.id)->source +
                               ")");
        continue;
      }
      for (const auto& prev : c.lines) {
        if (l.kind == LineKind::Rtu && prev.kind == LineKind::Rtu && prev.device == l.device) {
          item.errorAt("device", "serial port " + l.device + " is already line " + prev.id);
        }
      }
      c.lines.push_back(std::move(l));
    }
  }
  return c;
}

} // namespace hgj::drivers::modbus
