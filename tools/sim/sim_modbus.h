#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <modbus/modbus.h>

namespace hgj::sim {

/// Table sizes of one simulated unit (all tables start at address 0).
struct UnitTables {
  int coils = 0;
  int discrete_inputs = 0;
  int holding = 0;
  int input = 0;
};

/// How a unit misbehaves (fault injection for the scripted events).
enum class UnitFault {
  None,
  Silent,     ///< requests get no answer (the client times out)
  Exception,  ///< every request gets the configured exception code
};

/// A Modbus TCP server on loopback playing one line: several unit ids behind one endpoint, as a
/// TCP-to-RS-485 gateway would. One thread accepts clients and answers requests (select() over
/// all sockets, so several gateways or pollers can connect at once).
///
/// Thread-safety: addUnit() before start(); everything else from any thread. Register tables are
/// guarded by one mutex, held while a request is answered and while withUnit() runs.
class ModbusTcpServer {
public:
  /// `port` 0 picks a free port (see port() after start()).
  ModbusTcpServer(std::string line, std::string bind, int port);
  ~ModbusTcpServer();
  ModbusTcpServer(const ModbusTcpServer&) = delete;
  ModbusTcpServer& operator=(const ModbusTcpServer&) = delete;

  void addUnit(int unit, const UnitTables& tables);
  bool hasUnit(int unit) const { return units_.count(unit) > 0; }

  /// Binds and starts the server thread; throws std::runtime_error when it cannot listen.
  void start();
  void stop();
  int port() const { return port_.load(); }
  const std::string& line() const { return line_; }

  /// Runs `f` on the unit's tables under the lock; false when the unit does not exist.
  bool withUnit(int unit, const std::function<void(modbus_mapping_t&)>& f);
  void setFault(int unit, UnitFault fault, int exception_code = 4);
  /// Writes to these coils are acknowledged but change nothing (a relay that ignores its
  /// command, so the gateway's read-back sees the old value). An empty set ends the fault.
  void setIgnoredCoils(int unit, std::set<int> coils);
  /// Called on the server thread after a write request changed a unit's tables (to wake the
  /// simulation early). Set before start().
  void setWriteNotify(std::function<void()> notify) { notify_ = std::move(notify); }

  uint64_t requests() const { return requests_.load(); }

private:
  struct Unit {
    modbus_mapping_t* map = nullptr;
    UnitFault fault = UnitFault::None;  // guarded by mu_
    int code = 4;                       // guarded by mu_
    std::set<int> ignored_coils;        // guarded by mu_
  };

  void run();
  void handle(int fd, std::vector<int>& closed);

  std::string line_;
  std::string bind_;
  std::atomic<int> port_;
  modbus_t* ctx_ = nullptr;
  int listen_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> requests_{0};
  std::function<void()> notify_;
  mutable std::mutex mu_;
  std::map<int, Unit> units_;  // structure fixed after start(); contents guarded by mu_
};

/// Helpers writing typed values into register tables (high word first unless stated).
void putFloatAbcd(uint16_t* regs, int addr, double value);
void putU32(uint16_t* regs, int addr, uint32_t value);
void putU16(uint16_t* regs, int addr, double value);
void putI16(uint16_t* regs, int addr, double value);

} // namespace hgj::sim
