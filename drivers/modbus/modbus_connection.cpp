#include "drivers/modbus/modbus_connection.h"

#include <cerrno>
#include <cstring>

#include <unistd.h>

#include <modbus/modbus.h>
#include <spdlog/spdlog.h>

#include "core/enum_names.h"

namespace hgj::drivers::modbus {

constexpr core::EnumNames<ErrorKind, 17> kErrorKindNames{
    {{ErrorKind::None, "none"}, {ErrorKind::Timeout, "timeout"}, {ErrorKind::Crc, "crc"},
     {ErrorKind::BadFrame, "bad_frame"}, {ErrorKind::Connection, "connection"},
     {ErrorKind::IllegalFunction, "illegal_function"},
     {ErrorKind::IllegalAddress, "illegal_address"}, {ErrorKind::IllegalValue, "illegal_value"},
     {ErrorKind::DeviceFailure, "device_failure"}, {ErrorKind::Acknowledge, "acknowledge"},
     {ErrorKind::Busy, "busy"}, {ErrorKind::NegativeAck, "negative_ack"},
     {ErrorKind::MemoryParity, "memory_parity"}, {ErrorKind::GatewayPath, "gateway_path"},
     {ErrorKind::GatewayTarget, "gateway_target"}, {ErrorKind::Decode, "decode"},
     {ErrorKind::Other, "other"}}};

const char* errorKindName(ErrorKind k) { return kErrorKindNames.name(k, "other"); }

namespace {

// The exception codes a Modbus device answers with (libmodbus reports code c as errno
// MODBUS_ENOBASE + c), with the kind they are counted as and their name in the specification.
struct ModbusException {
  int code;
  ErrorKind kind;
  const char* text;
};
constexpr ModbusException kExceptions[] = {
    {0x01, ErrorKind::IllegalFunction, "illegal function"},
    {0x02, ErrorKind::IllegalAddress, "illegal data address"},
    {0x03, ErrorKind::IllegalValue, "illegal data value"},
    {0x04, ErrorKind::DeviceFailure, "slave device failure"},
    {0x05, ErrorKind::Acknowledge, "acknowledge"}, {0x06, ErrorKind::Busy, "slave busy"},
    {0x07, ErrorKind::NegativeAck, "negative acknowledge"},
    {0x08, ErrorKind::MemoryParity, "memory parity error"},
    {0x0A, ErrorKind::GatewayPath, "gateway path unavailable"},
    {0x0B, ErrorKind::GatewayTarget, "gateway target failed to respond"}};

const ModbusException* exceptionOf(int err) {
  for (const auto& e : kExceptions) {
    if (err == MODBUS_ENOBASE + e.code) {
      return &e;
    }
  }
  return nullptr;
}

} // namespace

ErrorKind classifyErrno(int err) {
  if (const ModbusException* e = exceptionOf(err)) {
    return e->kind;
  }
  switch (err) {
  case ETIMEDOUT:
    return ErrorKind::Timeout;
  case EMBBADCRC:
    return ErrorKind::Crc;
  case EMBBADDATA:
  case EMBBADEXC:
  case EMBMDATA:
  case EMBBADSLAVE:
  case EMBUNKEXC:
    return ErrorKind::BadFrame;
  case ECONNRESET:
  case ECONNREFUSED:
  case ECONNABORTED:
  case EPIPE:
  case ENOTCONN:
  case EBADF:
  case EIO:
  case ENXIO:
  case EHOSTUNREACH:
  case ENETUNREACH:
    return ErrorKind::Connection;
  default:
    return ErrorKind::Other;
  }
}

std::string errorText(ErrorKind k, int err) {
  if (const ModbusException* e = exceptionOf(err)) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "exception %02X (%s)", e->code, e->text);
    return buf;
  }
  if (k == ErrorKind::Timeout) {
    return "timeout";
  }
  return std::string(errorKindName(k)) + ": " + modbus_strerror(err);
}

Connection::Connection(const LineConfig& line) : line_(line) {}

Connection::~Connection() { close(); }

bool Connection::open(std::string& error) {
  close();
  if (line_.kind == LineKind::Tcp) {
    ctx_ = modbus_new_tcp_pi(line_.host.c_str(), std::to_string(line_.port).c_str());
  } else {
    ctx_ = modbus_new_rtu(line_.device.c_str(), line_.baud, line_.parity, line_.data_bits,
                          line_.stop_bits);
  }
  if (ctx_ == nullptr) {
    error = std::string("cannot create context: ") + modbus_strerror(errno);
    return false;
  }
  configureContext();
  if (modbus_connect(ctx_) == -1) {
    error = line_.kind == LineKind::Tcp
                ? "connect to " + line_.host + ":" + std::to_string(line_.port) + ": " +
                      modbus_strerror(errno)
                : "open " + line_.device + ": " + modbus_strerror(errno);
    modbus_free(ctx_);
    ctx_ = nullptr;
    return false;
  }
  if (line_.kind == LineKind::Rtu && line_.rs485 &&
      modbus_rtu_set_serial_mode(ctx_, MODBUS_RTU_RS485) == -1) {
    spdlog::warn("modbus line {}: cannot switch {} to RS-485 mode: {}", line_.id, line_.device,
                 modbus_strerror(errno));
  }
  open_ = true;
  return true;
}

void Connection::configureContext() {
  // The line thread recovers by itself: flush after an error, reconnect with back-off.
  modbus_set_error_recovery(ctx_, MODBUS_ERROR_RECOVERY_NONE);
  modbus_set_byte_timeout(ctx_, static_cast<uint32_t>(line_.byte_timeout_ms / 1000),
                          static_cast<uint32_t>((line_.byte_timeout_ms % 1000) * 1000));
  unit_ = -1;
  timeout_ms_ = -1;
  setTimeout(line_.timeout_ms);
}

bool Connection::adopt(int fd, std::string& error) {
  close();
  ctx_ = line_.kind == LineKind::Tcp ? modbus_new_tcp_pi("127.0.0.1", "502")
                                     : modbus_new_rtu("/dev/null", line_.baud, line_.parity,
                                                      line_.data_bits, line_.stop_bits);
  if (ctx_ == nullptr) {
    error = std::string("cannot create context: ") + modbus_strerror(errno);
    ::close(fd);
    return false;
  }
  configureContext();
  modbus_set_socket(ctx_, fd);
  open_ = true;
  return true;
}

void Connection::close() {
  if (ctx_ != nullptr) {
    modbus_close(ctx_);
    modbus_free(ctx_);
    ctx_ = nullptr;
  }
  open_ = false;
}

void Connection::setUnit(int unit) {
  if (ctx_ != nullptr && unit != unit_) {
    modbus_set_slave(ctx_, unit);
    unit_ = unit;
  }
}

void Connection::setTimeout(int64_t timeout_ms) {
  if (ctx_ != nullptr && timeout_ms != timeout_ms_) {
    modbus_set_response_timeout(ctx_, static_cast<uint32_t>(timeout_ms / 1000),
                                static_cast<uint32_t>((timeout_ms % 1000) * 1000));
    timeout_ms_ = timeout_ms;
  }
}

TxResult Connection::read(profiles::RegisterTable table, uint16_t address, uint16_t count,
                          std::span<uint16_t> registers, std::span<uint8_t> bits) {
  if (ctx_ == nullptr) {
    return {ErrorKind::Connection, ENOTCONN};
  }
  int rc = -1;
  switch (table) {
  case profiles::RegisterTable::Coil:
    rc = bits.size() >= count ? modbus_read_bits(ctx_, address, count, bits.data()) : -2;
    break;
  case profiles::RegisterTable::Discrete:
    rc = bits.size() >= count ? modbus_read_input_bits(ctx_, address, count, bits.data()) : -2;
    break;
  case profiles::RegisterTable::Holding:
    rc = registers.size() >= count ? modbus_read_registers(ctx_, address, count, registers.data())
                                   : -2;
    break;
  case profiles::RegisterTable::Input:
    rc = registers.size() >= count
             ? modbus_read_input_registers(ctx_, address, count, registers.data())
             : -2;
    break;
  }
  if (rc == -2) {
    return {ErrorKind::Other, EINVAL};
  }
  if (rc == -1) {
    int err = errno;
    return {classifyErrno(err), err};
  }
  if (rc != count) {
    return {ErrorKind::BadFrame, EMBBADDATA};
  }
  return {};
}

TxResult Connection::writeCoil(uint16_t address, bool value) {
  if (ctx_ == nullptr) {
    return {ErrorKind::Connection, ENOTCONN};
  }
  if (modbus_write_bit(ctx_, address, value ? 1 : 0) == -1) {
    int err = errno;
    return {classifyErrno(err), err};
  }
  return {};
}

TxResult Connection::writeRegisters(uint16_t address, std::span<const uint16_t> values) {
  if (ctx_ == nullptr) {
    return {ErrorKind::Connection, ENOTCONN};
  }
  int rc = values.size() == 1
               ? modbus_write_register(ctx_, address, values[0])
               : modbus_write_registers(ctx_, address, static_cast<int>(values.size()),
                                        values.data());
  if (rc == -1) {
    int err = errno;
    return {classifyErrno(err), err};
  }
  return {};
}

void Connection::flush() {
  if (ctx_ != nullptr) {
    modbus_flush(ctx_);
  }
}

} // namespace hgj::drivers::modbus
