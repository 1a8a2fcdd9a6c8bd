#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_node.h"
#include "model/compound.h"

namespace hgj::drivers::profiles {

/// The four Modbus data tables.
enum class RegisterTable : uint8_t { Coil, Discrete, Holding, Input };

/// How the registers (or bits) of one value are interpreted.
enum class RegisterType : uint8_t { Bool, U16, I16, U32, I32, F32, U64, F64, String };

/// Order of a value's bytes on the wire. The letters name the value's bytes from the most
/// significant (A) to the least significant; the order is the order they arrive in:
/// ABCD big endian (Modbus standard), CDAB low word first, BADC bytes swapped inside each
/// register, DCBA fully little endian. 64-bit values extend the same rule register by register
/// (CDAB = lowest register first); 16-bit values and strings only honour the byte swap.
enum class ByteOrder : uint8_t { ABCD, CDAB, BADC, DCBA };

const char* tableName(RegisterTable t);
const char* typeName(RegisterType t);
const char* orderName(ByteOrder o);
std::optional<RegisterTable> parseTable(std::string_view s);
std::optional<RegisterType> parseType(std::string_view s);
std::optional<ByteOrder> parseOrder(std::string_view s);
/// Bit tables (coil, discrete) hold one bit per address; the others 16-bit registers.
bool isBitTable(RegisterTable t);
/// Registers a value of `type` occupies (strings: as configured, bools: 1).
uint16_t registerCount(RegisterType type);

/// One value in a device's register map.
struct RegisterDef {
  std::string point_name;
  model::PointId point = 0;
  RegisterTable table = RegisterTable::Holding;
  /// Absolute address for a device register; offset from the block's base in a block.
  uint16_t address = 0;
  RegisterType type = RegisterType::U16;
  ByteOrder order = ByteOrder::ABCD;
  uint16_t count = 1;  ///< registers (or bits) the value occupies
  int bit = -1;        ///< a bool taken from bit 0..15 of a holding/input register, or -1
  /// Unsigned integers: only these bits of the raw value count (status words, "low 7 bits").
  uint64_t mask = 0;   ///< 0 = all bits
  double scale = 1.0;  ///< value = raw * scale + offset
  double offset = 0.0;
  /// Text for raw values (a text point): "3" -> "Charging", "C" -> "Charging". A raw value
  /// missing from the map is reported as its own text.
  std::vector<std::pair<std::string, std::string>> values;
  core::SourceLocation where;  ///< the entry in its profile file, for problems found later
  std::string key_path;        ///< "modbus.blocks[0].registers[2]"
};

/// Registers repeated once per child device (a port of a shed controller): child n (1-based)
/// reads `register.address + base + (n - 1) * stride`.
struct RegisterBlock {
  uint16_t base = 0;
  uint16_t stride = 0;
  int count = 1;  ///< the most children this block describes
  std::vector<RegisterDef> registers;
  /// Whether the block's points were checked against the child profile while parsing (false when
  /// the child profile was not loaded yet: the driver checks them at start).
  bool checked = false;
};

/// The `modbus:` section of a profile: the register map of a device type
/// (model::Profile::modbus).
struct ModbusSpec : model::TransportSpec {
  std::vector<RegisterDef> registers;
  std::vector<RegisterBlock> blocks;
  /// Request planning: gaps of up to this many unused registers (bits) between two values are
  /// read along rather than split into two requests. 0 reads only contiguous values together
  /// (for devices that refuse reads of unmapped addresses).
  uint16_t max_gap_registers = 8;
  uint16_t max_gap_bits = 64;
  /// The most registers one read may ask for (125 by the standard; some meters accept fewer).
  uint16_t max_read_registers = 125;

  /// The device's own register for a point, or nullptr.
  const RegisterDef* reg(model::PointId point) const;
  /// A block register for a point of a child device, or nullptr (with its block in `block`).
  const RegisterDef* blockReg(model::PointId point, const RegisterBlock** block) const;
};

/// The profile's Modbus section, or null for a profile of another transport.
inline const ModbusSpec* modbusSpec(const model::Profile& profile) {
  // Only loadModbusProfile sets Profile::modbus, always to a ModbusSpec.
  return static_cast<const ModbusSpec*>(profile.modbus.get());
}

/// Absolute address of a block register for child `child_number` (1-based).
uint32_t blockAddress(const RegisterBlock& block, const RegisterDef& reg, int child_number);

/// Parses the `modbus:` section of `profile` (whose common part, `points` and `children`, is
/// already parsed): registers, blocks and planning options. Every point named must exist in
/// `profile.points` (block points: in the child profile, when already in `compound`); point names
/// are interned in `compound`. Sets `profile.modbus`. Problems are reported to the node's
/// diagnostics; returns false when there was any. Config-loading thread only.
bool parseModbusSpec(const core::ConfigNode& modbus_section, model::Compound& compound,
                     model::Profile& profile);

/// Checks the points of blocks that could not be checked while parsing (the child profile was
/// loaded after the parent): call once every profile is loaded. Problems go to `diag`; returns
/// false when there was any.
bool checkModbusBlocks(const model::Profile& profile, const model::Compound& compound,
                       core::Diagnostics& diag);

} // namespace hgj::drivers::profiles
