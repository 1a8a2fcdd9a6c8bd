#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "drivers/modbus/modbus_config.h"
#include "drivers/profiles/modbus_profile.h"

typedef struct _modbus modbus_t;

namespace hgj::drivers::modbus {

/// What went wrong with one Modbus transaction, from libmodbus's errno.
enum class ErrorKind : uint8_t {
  None,
  Timeout,
  Crc,
  BadFrame,  ///< wrong length, transaction id, unit or function in the reply
  Connection,
  IllegalFunction,  ///< exception 01
  IllegalAddress,   ///< exception 02
  IllegalValue,     ///< exception 03
  DeviceFailure,    ///< exception 04
  Acknowledge,      ///< exception 05
  Busy,             ///< exception 06
  NegativeAck,      ///< exception 07
  MemoryParity,     ///< exception 08
  GatewayPath,      ///< exception 0A
  GatewayTarget,    ///< exception 0B
  Decode,           ///< a reply whose value is not a number (NaN float), counted only
  Other,
};

/// The label used in `hgj_modbus_errors_total{kind=...}`.
const char* errorKindName(ErrorKind k);
/// "timeout", "exception 06 (slave busy)", ... for logs and DeviceHealth reasons.
std::string errorText(ErrorKind k, int err);
ErrorKind classifyErrno(int err);

/// The result of one transaction.
struct TxResult {
  ErrorKind error = ErrorKind::None;
  int err = 0;  ///< errno as libmodbus left it
  bool ok() const { return error == ErrorKind::None; }
};

/// One line's libmodbus context. Not thread-safe: owned and used by the line's thread only.
/// Never enables MODBUS_ERROR_RECOVERY_LINK (it retries forever inside a call and would stall
/// every other device of the line); recovery is the line thread's job.
class Connection {
public:
  explicit Connection(const LineConfig& line);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Opens the TCP connection or serial port. On failure returns false with the reason.
  bool open(std::string& error);
  /// Uses `fd`, an already connected stream (a socketpair end in the frame fuzzer and tests),
  /// instead of connecting; the framing is still the line's (TCP or RTU). Takes ownership of
  /// `fd` (closed by close()).
  bool adopt(int fd, std::string& error);
  void close();
  bool isOpen() const { return open_; }

  void setUnit(int unit);
  void setTimeout(int64_t timeout_ms);

  /// Reads `count` registers or bits of `table` at `address`. `registers` must hold at least
  /// `count` entries for register tables, `bits` at least `count` for bit tables (the caller
  /// always passes full-size buffers: a reply is never read into less than was asked for).
  TxResult read(profiles::RegisterTable table, uint16_t address, uint16_t count,
                std::span<uint16_t> registers, std::span<uint8_t> bits);
  TxResult writeCoil(uint16_t address, bool value);
  TxResult writeRegisters(uint16_t address, std::span<const uint16_t> values);
  /// Drops whatever is left in the receive buffer (a late reply after a timeout).
  void flush();

private:
  /// A new context's settings from the line: no libmodbus recovery, the byte and reply timeouts.
  void configureContext();

  const LineConfig& line_;
  modbus_t* ctx_ = nullptr;
  bool open_ = false;
  int unit_ = -1;
  int64_t timeout_ms_ = -1;
};

} // namespace hgj::drivers::modbus
