// Fuzzes Modbus reply decoding. The first four bytes choose how registers are read (type, byte
// order, bit or mask, string length, scale), the rest are the registers of a reply: decoded as
// one value, then as every read of a 12-port shed controller's request plan (values of all
// ports and of the controller), whatever the reply's length.
#include <cstdint>
#include <span>
#include <vector>

#include "drivers/modbus/device_plan.h"
#include "drivers/modbus/modbus_decode.h"
#include "tests/fuzz/modbus_shed.h"

using namespace hgj;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Shed shed = fuzz::makeShed();
  using drivers::profiles::RegisterType;
  if (size < 4) {
    return 0;
  }
  drivers::profiles::RegisterDef def;
  def.type = static_cast<RegisterType>(data[0] % 9);
  def.order = static_cast<drivers::profiles::ByteOrder>((data[0] >> 4) % 4);
  def.count = def.type == RegisterType::String ? static_cast<uint16_t>(1 + data[1] % 125)
                                               : drivers::profiles::registerCount(def.type);
  if (def.type == RegisterType::Bool && (data[1] & 0x80) != 0) {
    def.bit = data[1] % 16;
  }
  if ((def.type == RegisterType::U16 || def.type == RegisterType::U32 ||
       def.type == RegisterType::U64) &&
      (data[2] & 0x80) != 0) {
    def.mask = data[2] & 0x7F;
    def.values = {{"1", "one"}, {"3", "three"}};
  }
  def.scale = (data[3] & 1) != 0 ? 1e-3 : 1e300;
  std::vector<uint16_t> regs((size - 4) / 2);
  for (size_t i = 0; i < regs.size(); ++i) {
    regs[i] = static_cast<uint16_t>((data[4 + 2 * i] << 8) | data[5 + 2 * i]);
  }
  (void)drivers::modbus::decodeRegisters(def, regs);
  std::string error;
  (void)drivers::modbus::encodeRegisters(def, model::Value(static_cast<double>(data[1])), error);

  std::vector<uint8_t> bits(data + 4, data + size);
  std::vector<model::Reading> out;
  int bad = 0;
  for (size_t r = 0; r < shed.plan.reads.size(); ++r) {
    drivers::modbus::decodeRead(shed.plan, r, regs, bits, 0, out, bad);
  }
  return 0;
}
