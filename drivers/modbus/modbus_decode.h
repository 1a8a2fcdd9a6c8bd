#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "drivers/profiles/modbus_profile.h"
#include "model/value.h"

namespace hgj::drivers::modbus {

using profiles::ByteOrder;
using profiles::RegisterDef;
using profiles::RegisterType;

/// Pure functions turning register contents into values and back. They take untrusted data
/// (a device's reply) and never throw, assert or read past the span: a span too short, or a value
/// that is not a finite number, gives nullopt. Safe to call from any thread; fuzzed.

/// The registers' bytes joined into one unsigned integer of `regs.size()` x 16 bits (at most 4
/// registers), honouring `order`.
std::optional<uint64_t> assembleBits(std::span<const uint16_t> regs, ByteOrder order);
/// Splits `bits` into `count` registers in `order` (the inverse of assembleBits).
std::vector<uint16_t> splitBits(uint64_t bits, uint16_t count, ByteOrder order);

/// The raw number (before scale and offset) a numeric `type` stands for.
std::optional<double> decodeRaw(std::span<const uint16_t> regs, RegisterType type,
                                ByteOrder order);
/// The text of a string register range: two characters per register, high byte first unless
/// the order swaps bytes; skips leading NULs and stops at the next, trims trailing spaces,
/// replaces anything that is not printable ASCII by '?'.
std::string decodeString(std::span<const uint16_t> regs, ByteOrder order);

/// The point value of a register entry from its registers (exactly `def.count` of them, more are
/// ignored): number = (raw & mask) * scale + offset; bool = register != 0 or the configured bit;
/// with a `values` map, the text the raw value (or string) maps to.
std::optional<model::Value> decodeRegisters(const RegisterDef& def,
                                            std::span<const uint16_t> regs);
/// The point value of a coil or discrete input.
model::Value decodeBit(uint8_t bit);

/// The registers to write for `value` to a holding-register entry (the inverse of
/// decodeRegisters, rounding integers to nearest). nullopt, with the reason in `error`, when
/// the value does not fit the type (out of range, wrong kind, a bit field).
std::optional<std::vector<uint16_t>> encodeRegisters(const RegisterDef& def,
                                                     const model::Value& value,
                                                     std::string& error);

} // namespace hgj::drivers::modbus
