// Fuzzes Modbus replies as they come off the wire, TCP (MBAP) and RTU (CRC) framing: one read of
// the shed controller's request plan goes through drivers/modbus Connection (libmodbus) over a
// socketpair whose other end holds the input, then the registers are decoded as the line thread
// does. Input: byte 0 = bit 0 RTU, bits 1-3 which read of the plan, bit 4 wrap the rest in a
// correct frame (right transaction id, byte count and CRC, so the fuzzer, which cannot see into
// the uninstrumented libmodbus, reaches the decoder), bit 5 wrap it as an exception reply; byte
// 1 = the unit asked for; the rest = the reply's bytes (raw when bit 4 is clear). The peer
// closes after the reply, so a truncated frame ends at once instead of waiting for a timeout.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include "drivers/modbus/device_plan.h"
#include "drivers/modbus/modbus_connection.h"
#include "tests/fuzz/modbus_shed.h"

using namespace hgj;

namespace {

uint16_t crc16(const std::vector<uint8_t>& b) {
  uint16_t crc = 0xFFFF;
  for (uint8_t x : b) {
    crc ^= x;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 1) != 0 ? static_cast<uint16_t>((crc >> 1) ^ 0xA001)
                           : static_cast<uint16_t>(crc >> 1);
    }
  }
  return crc;
}

uint8_t functionCode(drivers::profiles::RegisterTable t) {
  using drivers::profiles::RegisterTable;
  switch (t) {
  case RegisterTable::Coil:
    return 1;
  case RegisterTable::Discrete:
    return 2;
  case RegisterTable::Holding:
    return 3;
  case RegisterTable::Input:
    return 4;
  }
  return 3;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Shed shed = fuzz::makeShed();
  // A socketpair's buffer holds far more than a Modbus frame (at most 260 bytes); longer inputs
  // add nothing and could block the write.
  if (size < 2 || size > 4096) {
    return 0;
  }
  const bool rtu = (data[0] & 1) != 0;
  const size_t r = ((data[0] >> 1) & 7) % shed.plan.reads.size();
  const bool wrap = (data[0] & 0x10) != 0;
  const bool exception = (data[0] & 0x20) != 0;
  const int unit = 1 + data[1] % 247;
  const auto& read = shed.plan.reads[r];
  std::vector<uint8_t> body(data + 2, data + size);
  std::vector<uint8_t> frame;
  if (!wrap) {
    frame = body;
  } else {
    std::vector<uint8_t> pdu;
    const uint8_t fc = functionCode(read.table);
    if (exception) {
      pdu = {static_cast<uint8_t>(fc | 0x80), body.empty() ? uint8_t{2} : body[0]};
    } else {
      pdu = {fc, static_cast<uint8_t>(std::min<size_t>(body.size(), 255))};
      pdu.insert(pdu.end(), body.begin(), body.begin() + pdu[1]);
    }
    if (rtu) {
      frame.push_back(static_cast<uint8_t>(unit));
      frame.insert(frame.end(), pdu.begin(), pdu.end());
      uint16_t crc = crc16(frame);
      frame.push_back(static_cast<uint8_t>(crc & 0xFF));
      frame.push_back(static_cast<uint8_t>(crc >> 8));
    } else {
      // The first request of a fresh libmodbus TCP context has transaction id 1.
      const size_t len = 1 + pdu.size();
      frame = {0, 1, 0, 0, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len & 0xFF),
               static_cast<uint8_t>(unit)};
      frame.insert(frame.end(), pdu.begin(), pdu.end());
    }
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    std::abort();
  }
  if (!frame.empty() && ::write(sv[1], frame.data(), frame.size()) !=
                            static_cast<ssize_t>(frame.size())) {
    std::abort();
  }
  ::shutdown(sv[1], SHUT_WR);
  drivers::modbus::LineConfig line;
  line.id = "fuzz";
  line.kind = rtu ? drivers::modbus::LineKind::Rtu : drivers::modbus::LineKind::Tcp;
  line.timeout_ms = 20;
  line.byte_timeout_ms = 5;
  drivers::modbus::Connection conn(line);
  std::string error;
  if (!conn.adopt(sv[0], error)) {
    ::close(sv[1]);
    return 0;
  }
  conn.setUnit(unit);
  // Exactly the size asked for, as the line thread's buffers are at least that: ASan reports a
  // reply written past it.
  std::vector<uint16_t> regs(read.count);
  std::vector<uint8_t> bits(read.count);
  bool registers = read.table == drivers::profiles::RegisterTable::Holding ||
                   read.table == drivers::profiles::RegisterTable::Input;
  auto res = conn.read(read.table, read.address, read.count,
                       registers ? std::span<uint16_t>(regs) : std::span<uint16_t>(),
                       registers ? std::span<uint8_t>() : std::span<uint8_t>(bits));
  if (res.ok()) {
    std::vector<model::Reading> out;
    int bad = 0;
    drivers::modbus::decodeRead(shed.plan, r, regs, bits, 0, out, bad);
  } else {
    (void)drivers::modbus::errorText(res.error, res.err);
    conn.flush();
  }
  conn.close();
  ::close(sv[1]);
  return 0;
}
