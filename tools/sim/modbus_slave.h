#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "drivers/profiles/modbus_profile.h"
#include "model/compound.h"
#include "model/value.h"

typedef struct _modbus modbus_t;
typedef struct _modbus_mapping_t modbus_mapping_t;

namespace hgj::sim {

using drivers::profiles::RegisterTable;

/// The addresses one table of a unit serves; requests outside get exception 02.
struct TableRange {
  uint16_t start = 0;
  uint32_t count = 65536;
};

struct UnitLayout {
  TableRange coils;
  TableRange discrete;
  TableRange holding;
  TableRange input;
  /// A layout serving only the given ranges (count 0 for a table the unit lacks).
  static UnitLayout of(TableRange coils, TableRange discrete, TableRange holding,
                       TableRange input) {
    return {coils, discrete, holding, input};
  }
};

/// How a unit misbehaves (fault injection).
struct UnitFaults {
  bool silent = false;    ///< receives requests and never answers (a dead device)
  int exception = 0;      ///< answers every request with this exception code (1..11), 0 = none
  int exception_count = -1;  ///< how many requests get the exception; -1 = until cleared
  bool ignore_writes = false;  ///< acknowledges writes without applying them
  std::chrono::milliseconds delay{0};  ///< answers this late (holds the server thread)
  bool garbage = false;  ///< answers with a truncated frame of junk bytes (bad CRC / length)
};

/// A Modbus server on a real libmodbus context, for tests and the simulator: TCP on a loopback
/// port (0 = pick a free one), or RTU on a serial path (a socat pseudo-terminal in tests). One
/// server thread answers every connection (select over the sockets); a TCP server hosts any
/// number of units (unit ids), each with its own register tables, and so does an RTU server (a
/// whole RS-485 bus of devices; frames are delimited by the line's silent interval and checked
/// by CRC, as a device does). Requests for an unknown unit are not answered.
///
/// Register access and fault settings are thread-safe (one mutex shared with the server
/// thread). Accessors throw std::out_of_range for an unknown unit or an address outside its
/// layout (a mistake in the test or scenario, not a runtime condition).
class ModbusSlave {
public:
  struct RtuPort {
    std::string device;
    int baud = 9600;
    char parity = 'N';
    int data_bits = 8;
    int stop_bits = 1;
  };

  /// Called on the server thread after a write was applied (not while holding the lock, so it
  /// may change registers: "relay off -> current 0").
  using WriteHook =
      std::function<void(int unit, RegisterTable table, uint16_t address, uint16_t count)>;

  static std::unique_ptr<ModbusSlave> tcp(const std::string& host = "127.0.0.1", int port = 0);
  static std::unique_ptr<ModbusSlave> rtu(const RtuPort& port);
  ~ModbusSlave();
  ModbusSlave(const ModbusSlave&) = delete;
  ModbusSlave& operator=(const ModbusSlave&) = delete;

  /// Adds a unit with zeroed tables. Allowed before and after start().
  void addUnit(int unit, const UnitLayout& layout = {});
  /// Listens (TCP) or opens the port (RTU) and starts the server thread; throws
  /// std::runtime_error when that fails.
  void start();
  /// Stops and joins the server thread, closing every connection.
  void stop();
  /// The TCP port listened on (after start()).
  int port() const { return port_; }

  void setRegister(int unit, RegisterTable table, uint16_t address, uint16_t value);
  void setRegisters(int unit, RegisterTable table, uint16_t address,
                    std::span<const uint16_t> values);
  uint16_t getRegister(int unit, RegisterTable table, uint16_t address) const;
  std::vector<uint16_t> getRegisters(int unit, RegisterTable table, uint16_t address,
                                     uint16_t count) const;
  /// Coils and discrete inputs.
  void setBit(int unit, RegisterTable table, uint16_t address, bool value);
  bool getBit(int unit, RegisterTable table, uint16_t address) const;

  /// Stores `value` the way register entry `def` describes it at `address` (for a block entry:
  /// the child's absolute address): encoding, bit fields and value maps included. Returns false,
  /// with the reason in `error`, when the value cannot be represented.
  bool setValue(int unit, const drivers::profiles::RegisterDef& def, uint16_t address,
                const model::Value& value, std::string* error = nullptr);
  /// Sets a point of a device by its profile: `child` 0 for the device's own registers, n for
  /// port n's block ("shed M01 port 7 heats to 75 C": setPoint(1, m12, "temp_c", 75.0, 7)).
  bool setPoint(int unit, const model::Profile& profile, std::string_view point,
                const model::Value& value, int child = 0, std::string* error = nullptr);
  /// The value a register entry currently holds, decoded as the driver would.
  std::optional<model::Value> getValue(int unit, const drivers::profiles::RegisterDef& def,
                                       uint16_t address) const;

  void setFaults(int unit, const UnitFaults& faults);
  UnitFaults faults(int unit) const;
  void setSilent(int unit, bool silent);
  void setException(int unit, int code, int count = -1);
  void setIgnoreWrites(int unit, bool ignore);
  void setDelay(int unit, std::chrono::milliseconds delay);
  void setGarbage(int unit, bool garbage);

  void onWrite(WriteHook hook);

  /// Requests received for a unit (answered or not), and writes applied.
  uint64_t requests(int unit) const;
  uint64_t writes(int unit) const;
  /// TCP connections accepted so far.
  uint64_t connections() const { return connections_.load(); }

private:
  struct Unit {
    UnitLayout layout;
    modbus_mapping_t* mapping = nullptr;
    UnitFaults faults;
    uint64_t requests = 0;
    uint64_t writes = 0;
  };

  ModbusSlave() = default;
  void serveTcp();
  void serveRtu();
  void handle(const uint8_t* query, int length);
  Unit& unit(int id);
  const Unit& unit(int id) const;
  uint16_t* regPtr(Unit& u, RegisterTable table, uint16_t address) const;
  uint8_t* bitPtr(Unit& u, RegisterTable table, uint16_t address) const;

  bool is_rtu_ = false;
  std::string host_;
  int port_ = 0;
  RtuPort rtu_;
  modbus_t* ctx_ = nullptr;  // server thread only after start()
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> connections_{0};

  mutable std::mutex mu_;
  std::map<int, std::unique_ptr<Unit>> units_;  // guarded by mu_
  WriteHook hook_;                              // guarded by mu_
};

} // namespace hgj::sim
