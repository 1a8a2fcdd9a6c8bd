#include "drivers/modbus/modbus_decode.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace hgj::drivers::modbus {

namespace {

bool swapsWords(ByteOrder o) { return o == ByteOrder::CDAB || o == ByteOrder::DCBA; }
bool swapsBytes(ByteOrder o) { return o == ByteOrder::BADC || o == ByteOrder::DCBA; }

uint16_t swap16(uint16_t v) { return static_cast<uint16_t>((v >> 8) | (v << 8)); }

model::Value mapText(const RegisterDef& def, const std::string& raw) {
  for (const auto& [from, to] : def.values) {
    if (from == raw) {
      return model::Value(to);
    }
  }
  return model::Value(raw);
}

} // namespace

std::optional<uint64_t> assembleBits(std::span<const uint16_t> regs, ByteOrder order) {
  if (regs.empty() || regs.size() > 4) {
    return std::nullopt;
  }
  uint64_t v = 0;
  size_t n = regs.size();
  for (size_t i = 0; i < n; ++i) {
    // With swapped words the first register on the wire is the least significant one.
    uint16_t r = regs[swapsWords(order) ? n - 1 - i : i];
    if (swapsBytes(order)) {
      r = swap16(r);
    }
    v = (v << 16) | r;
  }
  return v;
}

std::vector<uint16_t> splitBits(uint64_t bits, uint16_t count, ByteOrder order) {
  std::vector<uint16_t> out(count);
  for (uint16_t i = 0; i < count; ++i) {
    auto r = static_cast<uint16_t>(bits >> (16 * (count - 1 - i)));
    if (swapsBytes(order)) {
      r = swap16(r);
    }
    out[swapsWords(order) ? count - 1 - i : i] = r;
  }
  return out;
}

std::optional<double> decodeRaw(std::span<const uint16_t> regs, RegisterType type,
                                ByteOrder order) {
  uint16_t n = profiles::registerCount(type);
  if (n == 0 || regs.size() < n) {
    return std::nullopt;
  }
  auto bits = assembleBits(regs.first(n), order);
  if (!bits) {
    return std::nullopt;
  }
  double v = 0;
  switch (type) {
  case RegisterType::Bool:
  case RegisterType::U16:
  case RegisterType::U32:
  case RegisterType::U64:
    v = static_cast<double>(*bits);
    break;
  case RegisterType::I16:
    v = static_cast<int16_t>(static_cast<uint16_t>(*bits));
    break;
  case RegisterType::I32:
    v = static_cast<int32_t>(static_cast<uint32_t>(*bits));
    break;
  case RegisterType::F32:
    v = std::bit_cast<float>(static_cast<uint32_t>(*bits));
    break;
  case RegisterType::F64:
    v = std::bit_cast<double>(*bits);
    break;
  case RegisterType::String:
    return std::nullopt;
  }
  if (!std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::string decodeString(std::span<const uint16_t> regs, ByteOrder order) {
  std::string s;
  s.reserve(regs.size() * 2);
  for (size_t i = 0; i < regs.size() * 2; ++i) {
    uint16_t r = swapsBytes(order) ? swap16(regs[i / 2]) : regs[i / 2];
    auto c = static_cast<char>(i % 2 == 0 ? r >> 8 : r & 0xFF);
    if (c == '\0') {
      // A one-letter status often sits in the low byte of its register ("\0C").
      if (s.empty()) {
        continue;
      }
      break;
    }
    s.push_back(c >= 0x20 && c < 0x7F ? c : '?');
  }
  while (!s.empty() && s.back() == ' ') {
    s.pop_back();
  }
  return s;
}

std::optional<model::Value> decodeRegisters(const RegisterDef& def,
                                            std::span<const uint16_t> regs) {
  if (regs.size() < def.count || def.count == 0) {
    return std::nullopt;
  }
  if (def.type == RegisterType::String) {
    std::string text = decodeString(regs.first(def.count), def.order);
    return def.values.empty() ? model::Value(std::move(text)) : mapText(def, text);
  }
  if (def.type == RegisterType::Bool) {
    uint16_t r = swapsBytes(def.order) ? swap16(regs[0]) : regs[0];
    if (def.bit >= 0 && def.bit < 16) {
      return model::Value(((r >> def.bit) & 1U) != 0);
    }
    return model::Value(r != 0);
  }
  std::optional<double> raw;
  if (def.mask != 0) {
    auto bits = assembleBits(regs.first(def.count), def.order);
    if (bits) {
      raw = static_cast<double>(*bits & def.mask);
    }
  } else {
    raw = decodeRaw(regs, def.type, def.order);
  }
  if (!raw) {
    return std::nullopt;
  }
  double v = *raw * def.scale + def.offset;
  if (!def.values.empty()) {
    return mapText(def, model::toText(model::Value(v)));
  }
  if (!std::isfinite(v)) {
    return std::nullopt;
  }
  return model::Value(v);
}

model::Value decodeBit(uint8_t bit) { return model::Value(bit != 0); }

std::optional<std::vector<uint16_t>> encodeRegisters(const RegisterDef& def,
                                                     const model::Value& value,
                                                     std::string& error) {
  if (def.bit >= 0 || def.mask != 0 || !def.values.empty()) {
    error = "a bit field, masked or mapped value cannot be written";
    return std::nullopt;
  }
  if (def.type == RegisterType::String) {
    const auto* text = std::get_if<std::string>(&value);
    if (text == nullptr) {
      error = "expected a text for a string register";
      return std::nullopt;
    }
    if (text->size() > static_cast<size_t>(def.count) * 2) {
      error = "text longer than " + std::to_string(def.count * 2) + " characters";
      return std::nullopt;
    }
    std::vector<uint16_t> out(def.count, 0);
    for (size_t i = 0; i < text->size(); ++i) {
      auto c = static_cast<uint8_t>((*text)[i]);
      out[i / 2] |= static_cast<uint16_t>(i % 2 == 0 ? c << 8 : c);
    }
    if (swapsBytes(def.order)) {
      for (auto& r : out) {
        r = swap16(r);
      }
    }
    return out;
  }
  auto number = model::asNumber(value);
  if (!number || !std::isfinite(*number)) {
    error = "expected a number or a bool";
    return std::nullopt;
  }
  if (def.type == RegisterType::Bool) {
    uint16_t r = *number != 0 ? 1 : 0;
    return std::vector<uint16_t>{swapsBytes(def.order) ? swap16(r) : r};
  }
  double raw = (*number - def.offset) / def.scale;
  uint64_t bits = 0;
  auto integer = [&](double lo, double hi) -> bool {
    double r = std::nearbyint(raw);
    if (r < lo || r > hi) {
      error = "value " + model::toText(value) + " out of range for " + profiles::typeName(def.type);
      return false;
    }
    raw = r;
    return true;
  };
  switch (def.type) {
  case RegisterType::U16:
    if (!integer(0, 65535)) {
      return std::nullopt;
    }
    bits = static_cast<uint64_t>(raw);
    break;
  case RegisterType::I16:
    if (!integer(-32768, 32767)) {
      return std::nullopt;
    }
    bits = static_cast<uint16_t>(static_cast<int16_t>(raw));
    break;
  case RegisterType::U32:
    if (!integer(0, 4294967295.0)) {
      return std::nullopt;
    }
    bits = static_cast<uint64_t>(raw);
    break;
  case RegisterType::I32:
    if (!integer(-2147483648.0, 2147483647.0)) {
      return std::nullopt;
    }
    bits = static_cast<uint32_t>(static_cast<int32_t>(raw));
    break;
  case RegisterType::U64:
    // Doubles are exact up to 2^53; beyond that a write could not be verified exactly.
    if (!integer(0, 9007199254740992.0)) {
      return std::nullopt;
    }
    bits = static_cast<uint64_t>(raw);
    break;
  case RegisterType::F32: {
    if (std::fabs(raw) > std::numeric_limits<float>::max()) {
      error = "value out of range for f32";
      return std::nullopt;
    }
    bits = std::bit_cast<uint32_t>(static_cast<float>(raw));
    break;
  }
  case RegisterType::F64:
    bits = std::bit_cast<uint64_t>(raw);
    break;
  case RegisterType::Bool:
  case RegisterType::String:
    break;
  }
  return splitBits(bits, def.count, def.order);
}

} // namespace hgj::drivers::modbus
