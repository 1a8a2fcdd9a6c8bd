#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config_node.h"

namespace hgj::drivers::modbus {

enum class LineKind : uint8_t { Tcp, Rtu };

/// One Modbus line: a TCP endpoint or a serial port. Each line gets one poller thread.
struct LineConfig {
  std::string id;
  LineKind kind = LineKind::Tcp;
  // TCP
  std::string host = "127.0.0.1";
  int port = 502;
  // RTU
  std::string device;  ///< e.g. /dev/ttyS1
  int baud = 9600;
  char parity = 'N';  ///< 'N', 'E' or 'O'
  int data_bits = 8;
  int stop_bits = 1;
  bool rs485 = false;  ///< switch the port to RS-485 mode (TIOCSRS485)
  /// Response timeout of devices whose binding gives none, and the byte timeout inside a frame.
  int64_t timeout_ms = 500;
  int64_t byte_timeout_ms = 100;
  /// Quiet time before each request on a serial line (slow RS-485 transceivers turning around).
  int64_t turnaround_ms = 0;
  /// Reconnect back-off of the line (TCP connect, serial open): doubles from min to max.
  int64_t reconnect_min_ms = 500;
  int64_t reconnect_max_ms = 30'000;
  /// A failing device is polled at most this rarely (its interval doubles per failed poll).
  int64_t max_backoff_ms = 60'000;
  std::string source;  ///< "file:line"
};

/// The gateway.yaml `modbus:` section.
struct ModbusConfig {
  /// false: the lines are configured (and validated) but not polled, e.g. while commissioning
  /// the MQTT devices first, or in tests that share a machine with a simulator.
  bool enabled = true;
  std::vector<LineConfig> lines;
  /// Writes to one point are at least this far apart; a newer write waiting for its turn
  /// replaces the older one (which is reported as superseded).
  int64_t write_min_interval_ms = 1000;
  /// Writes waiting in a line's queue before new ones are refused.
  size_t write_queue = 256;

  const LineConfig* line(const std::string& id) const;
};

/// Parses the `modbus:` section (undefined -> no lines). Problems go to the node's diagnostics.
/// Config-loading thread only.
ModbusConfig parseModbusConfig(const core::ConfigNode& modbus_section);

} // namespace hgj::drivers::modbus
