#include <array>
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "drivers/modbus/modbus_decode.h"

using namespace hgj::drivers::modbus;
using hgj::drivers::profiles::RegisterTable;
using hgj::model::Value;

namespace {

RegisterDef def(RegisterType type, ByteOrder order = ByteOrder::ABCD, double scale = 1.0,
                double offset = 0.0) {
  RegisterDef d;
  d.table = RegisterTable::Holding;
  d.type = type;
  d.order = order;
  d.count = type == RegisterType::String ? 4 : hgj::drivers::profiles::registerCount(type);
  d.scale = scale;
  d.offset = offset;
  return d;
}

double num(const std::optional<Value>& v) {
  REQUIRE(v.has_value());
  REQUIRE(std::holds_alternative<double>(*v));
  return std::get<double>(*v);
}

} // namespace

TEST_CASE("modbus decode: the known float32 vector 0x47F1 0x2000 reads 123456.0 in ABCD",
          "[modbus][decode]") {
  std::array<uint16_t, 2> regs{0x47F1, 0x2000};
  CHECK(decodeRaw(regs, RegisterType::F32, ByteOrder::ABCD) == 123456.0);
}

TEST_CASE("modbus decode: float32 in every byte and word order", "[modbus][decode]") {
  // 123456.0f = 0x47F12000, bytes A=47 B=F1 C=20 D=00 laid out in each order.
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x47F1, 0x2000}, RegisterType::F32, ByteOrder::ABCD) ==
        123456.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x2000, 0x47F1}, RegisterType::F32, ByteOrder::CDAB) ==
        123456.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0xF147, 0x0020}, RegisterType::F32, ByteOrder::BADC) ==
        123456.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x0020, 0xF147}, RegisterType::F32, ByteOrder::DCBA) ==
        123456.0);
}

TEST_CASE("modbus decode: 16-bit integers, signed and byte-swapped", "[modbus][decode]") {
  CHECK(decodeRaw(std::array<uint16_t, 1>{0xFFFF}, RegisterType::U16, ByteOrder::ABCD) == 65535);
  CHECK(decodeRaw(std::array<uint16_t, 1>{0xFFFF}, RegisterType::I16, ByteOrder::ABCD) == -1);
  CHECK(decodeRaw(std::array<uint16_t, 1>{0x8000}, RegisterType::I16, ByteOrder::ABCD) == -32768);
  CHECK(decodeRaw(std::array<uint16_t, 1>{0x3412}, RegisterType::U16, ByteOrder::BADC) == 0x1234);
  CHECK(decodeRaw(std::array<uint16_t, 1>{0x3412}, RegisterType::U16, ByteOrder::DCBA) == 0x1234);
  // A word swap means nothing for one register.
  CHECK(decodeRaw(std::array<uint16_t, 1>{0x1234}, RegisterType::U16, ByteOrder::CDAB) == 0x1234);
  CHECK(decodeRaw(std::array<uint16_t, 1>{0x18FF}, RegisterType::I16, ByteOrder::DCBA) == -232);
}

TEST_CASE("modbus decode: 32-bit integers in every order", "[modbus][decode]") {
  // 0x12345678 = 305419896; -2 = 0xFFFFFFFE.
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x1234, 0x5678}, RegisterType::U32, ByteOrder::ABCD) ==
        305419896.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x5678, 0x1234}, RegisterType::U32, ByteOrder::CDAB) ==
        305419896.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x3412, 0x7856}, RegisterType::U32, ByteOrder::BADC) ==
        305419896.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x7856, 0x3412}, RegisterType::U32, ByteOrder::DCBA) ==
        305419896.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0xFFFF, 0xFFFE}, RegisterType::I32, ByteOrder::ABCD) ==
        -2.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0xFFFE, 0xFFFF}, RegisterType::I32, ByteOrder::CDAB) ==
        -2.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0xFFFF, 0xFEFF}, RegisterType::I32, ByteOrder::BADC) ==
        -2.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0xFEFF, 0xFFFF}, RegisterType::I32, ByteOrder::DCBA) ==
        -2.0);
  CHECK(decodeRaw(std::array<uint16_t, 2>{0x8000, 0x0000}, RegisterType::I32, ByteOrder::ABCD) ==
        -2147483648.0);
}

TEST_CASE("modbus decode: 64-bit integers and doubles in every order", "[modbus][decode]") {
  // 0x0001020304050607 and 1.5 (0x3FF8000000000000).
  double u = static_cast<double>(0x0001020304050607ULL);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0x0001, 0x0203, 0x0405, 0x0607}, RegisterType::U64,
                  ByteOrder::ABCD) == u);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0x0607, 0x0405, 0x0203, 0x0001}, RegisterType::U64,
                  ByteOrder::CDAB) == u);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0x0100, 0x0302, 0x0504, 0x0706}, RegisterType::U64,
                  ByteOrder::BADC) == u);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0x0706, 0x0504, 0x0302, 0x0100}, RegisterType::U64,
                  ByteOrder::DCBA) == u);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0x3FF8, 0, 0, 0}, RegisterType::F64, ByteOrder::ABCD) ==
        1.5);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0, 0, 0, 0x3FF8}, RegisterType::F64, ByteOrder::CDAB) ==
        1.5);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0xF83F, 0, 0, 0}, RegisterType::F64, ByteOrder::BADC) ==
        1.5);
  CHECK(decodeRaw(std::array<uint16_t, 4>{0, 0, 0, 0xF83F}, RegisterType::F64, ByteOrder::DCBA) ==
        1.5);
}

TEST_CASE("modbus decode: scale and offset turn raw counts into units", "[modbus][decode]") {
  CHECK(num(decodeRegisters(def(RegisterType::I16, ByteOrder::ABCD, 0.1),
                            std::array<uint16_t, 1>{0xFF9C})) == Approx(-10.0));
  CHECK(num(decodeRegisters(def(RegisterType::U16, ByteOrder::ABCD, 0.01),
                            std::array<uint16_t, 1>{182})) == Approx(1.82));
  // A CHINT DDSU666 reports kW; scale 1000 gives W.
  std::array<uint16_t, 2> kw{};
  float f = 6.8F;
  uint32_t bits = std::bit_cast<uint32_t>(f);
  kw = {static_cast<uint16_t>(bits >> 16), static_cast<uint16_t>(bits)};
  CHECK(num(decodeRegisters(def(RegisterType::F32, ByteOrder::ABCD, 1000), kw)) ==
        Approx(6800.0).epsilon(1e-6));
  // 4-20 mA transmitters: raw 0..10000 -> -40..+60 C.
  CHECK(num(decodeRegisters(def(RegisterType::U16, ByteOrder::ABCD, 0.01, -40.0),
                            std::array<uint16_t, 1>{6500})) == Approx(25.0));
}

TEST_CASE("modbus decode: bools from a register or one of its bits", "[modbus][decode]") {
  RegisterDef d = def(RegisterType::Bool);
  CHECK(decodeRegisters(d, std::array<uint16_t, 1>{0}) == std::optional<Value>(false));
  CHECK(decodeRegisters(d, std::array<uint16_t, 1>{0x0100}) == std::optional<Value>(true));
  d.bit = 1;
  CHECK(decodeRegisters(d, std::array<uint16_t, 1>{0x0002}) == std::optional<Value>(true));
  CHECK(decodeRegisters(d, std::array<uint16_t, 1>{0x0001}) == std::optional<Value>(false));
  d.bit = 15;
  CHECK(decodeRegisters(d, std::array<uint16_t, 1>{0x8000}) == std::optional<Value>(true));
  CHECK(decodeBit(1) == Value(true));
  CHECK(decodeBit(0) == Value(false));
}

TEST_CASE("modbus decode: strings stop at NUL, trim spaces and honour the byte swap",
          "[modbus][decode]") {
  RegisterDef d = def(RegisterType::String);
  CHECK(decodeRegisters(d, std::array<uint16_t, 4>{0x4142, 0x4344, 0x2020, 0x2020}) ==
        std::optional<Value>(std::string("ABCD")));
  CHECK(decodeRegisters(d, std::array<uint16_t, 4>{0x4142, 0x4300, 0x4545, 0x4545}) ==
        std::optional<Value>(std::string("ABC")));
  d.order = ByteOrder::BADC;
  CHECK(decodeRegisters(d, std::array<uint16_t, 4>{0x4241, 0x4443, 0, 0}) ==
        std::optional<Value>(std::string("ABCD")));
  // Unprintable bytes from a device never reach the model as they are.
  CHECK(decodeString(std::array<uint16_t, 1>{0x41FF}, ByteOrder::ABCD) == "A?");
}

TEST_CASE("modbus decode: untrusted replies never decode to garbage", "[modbus][decode]") {
  // Too few registers.
  CHECK_FALSE(decodeRaw(std::array<uint16_t, 1>{0x47F1}, RegisterType::F32, ByteOrder::ABCD));
  CHECK_FALSE(decodeRegisters(def(RegisterType::U64), std::array<uint16_t, 3>{1, 2, 3}));
  CHECK_FALSE(decodeRegisters(def(RegisterType::U16), std::span<const uint16_t>()));
  // NaN and infinity are not readings.
  CHECK_FALSE(decodeRaw(std::array<uint16_t, 2>{0x7FC0, 0x0000}, RegisterType::F32,
                        ByteOrder::ABCD));
  CHECK_FALSE(decodeRaw(std::array<uint16_t, 2>{0x7F80, 0x0000}, RegisterType::F32,
                        ByteOrder::ABCD));
  CHECK_FALSE(decodeRaw(std::array<uint16_t, 4>{0x7FF0, 0, 0, 0}, RegisterType::F64,
                        ByteOrder::ABCD));
  // More registers than the type needs: the extra ones are ignored.
  CHECK(decodeRaw(std::array<uint16_t, 3>{0x47F1, 0x2000, 0xFFFF}, RegisterType::F32,
                  ByteOrder::ABCD) == 123456.0);
}

TEST_CASE("modbus decode: every type and order round-trips through encode",
          "[modbus][decode]") {
  struct Case {
    RegisterType type;
    double value;
  };
  const Case cases[] = {{RegisterType::U16, 65535},       {RegisterType::I16, -12345},
                        {RegisterType::U32, 4000000000.0}, {RegisterType::I32, -2000000000.0},
                        {RegisterType::F32, 123456.0},    {RegisterType::U64, 9007199254740991.0},
                        {RegisterType::F64, -1.0e300},    {RegisterType::Bool, 1}};
  for (ByteOrder order : {ByteOrder::ABCD, ByteOrder::CDAB, ByteOrder::BADC, ByteOrder::DCBA}) {
    for (const auto& c : cases) {
      CAPTURE(hgj::drivers::profiles::typeName(c.type), hgj::drivers::profiles::orderName(order));
      RegisterDef d = def(c.type, order);
      std::string error;
      auto regs = encodeRegisters(d, Value(c.value), error);
      REQUIRE(regs.has_value());
      CHECK(regs->size() == d.count);
      auto back = decodeRegisters(d, *regs);
      REQUIRE(back.has_value());
      if (c.type == RegisterType::Bool) {
        CHECK(*back == Value(true));
      } else {
        CHECK(num(back) == c.value);
      }
    }
  }
  RegisterDef s = def(RegisterType::String, ByteOrder::BADC);
  std::string error;
  auto regs = encodeRegisters(s, Value(std::string("HGJ-M12")), error);
  REQUIRE(regs);
  CHECK(decodeRegisters(s, *regs) == std::optional<Value>(std::string("HGJ-M12")));
}

TEST_CASE("modbus decode: encode scales, rounds and refuses what does not fit",
          "[modbus][decode]") {
  std::string error;
  RegisterDef tenths = def(RegisterType::I16, ByteOrder::ABCD, 0.1);
  auto regs = encodeRegisters(tenths, Value(-10.04), error);
  REQUIRE(regs);
  CHECK((*regs)[0] == 0xFF9C);
  CHECK_FALSE(encodeRegisters(def(RegisterType::U16), Value(65536.0), error));
  CHECK_THAT(error, Catch::Contains("out of range"));
  CHECK_FALSE(encodeRegisters(def(RegisterType::U16), Value(-1.0), error));
  CHECK_FALSE(encodeRegisters(def(RegisterType::I16), Value(40000.0), error));
  CHECK_FALSE(encodeRegisters(def(RegisterType::U16), Value(std::string("x")), error));
  CHECK_FALSE(encodeRegisters(def(RegisterType::F32), Value(1e39), error));
  CHECK_FALSE(encodeRegisters(def(RegisterType::String), Value(std::string("123456789")), error));
  RegisterDef bit = def(RegisterType::Bool);
  bit.bit = 3;
  CHECK_FALSE(encodeRegisters(bit, Value(true), error));
  CHECK_THAT(error, Catch::Contains("bit"));
}

TEST_CASE("modbus decode: assembleBits and splitBits are inverses", "[modbus][decode]") {
  for (ByteOrder order : {ByteOrder::ABCD, ByteOrder::CDAB, ByteOrder::BADC, ByteOrder::DCBA}) {
    for (uint16_t n : {1, 2, 4}) {
      uint64_t v = 0x0123456789ABCDEFULL >> (64 - 16 * n);
      auto regs = splitBits(v, n, order);
      CHECK(assembleBits(regs, order) == v);
    }
  }
  CHECK_FALSE(assembleBits(std::array<uint16_t, 5>{}, ByteOrder::ABCD));
  CHECK_FALSE(assembleBits(std::span<const uint16_t>(), ByteOrder::ABCD));
}

TEST_CASE("modbus decode: random replies of any length never crash or leak NaN",
          "[modbus][decode][fuzz]") {
  // A deterministic stand-in for the fuzzer: every type, order, bit and scale against random
  // spans of 0..6 registers.
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::array<uint16_t, 6> regs{};
  size_t decoded = 0;
  for (int i = 0; i < 200000; ++i) {
    RegisterDef d;
    d.type = static_cast<RegisterType>(next() % 9);
    d.order = static_cast<ByteOrder>(next() % 4);
    d.count = d.type == RegisterType::String ? static_cast<uint16_t>(1 + next() % 5)
                                             : hgj::drivers::profiles::registerCount(d.type);
    d.bit = d.type == RegisterType::Bool && next() % 2 == 0 ? static_cast<int>(next() % 16) : -1;
    d.scale = next() % 2 == 0 ? 1.0 : 1e300;
    for (auto& r : regs) {
      r = static_cast<uint16_t>(next());
    }
    auto span = std::span<const uint16_t>(regs.data(), next() % 7);
    auto v = decodeRegisters(d, span);
    if (!v) {
      continue;
    }
    ++decoded;
    REQUIRE(span.size() >= d.count);
    if (const auto* n = std::get_if<double>(&*v)) {
      REQUIRE(std::isfinite(*n));
    }
    if (const auto* s = std::get_if<std::string>(&*v)) {
      REQUIRE(s->size() <= static_cast<size_t>(d.count) * 2);
    }
  }
  CHECK(decoded > 50000);
}

TEST_CASE("modbus decode: masks keep the status bits and maps give them names",
          "[modbus][decode]") {
  RegisterDef d = def(RegisterType::U32);
  d.mask = 0x7F;
  d.values = {{"0", "Available"}, {"3", "Charging"}, {"4", "Charging"}};
  CHECK(decodeRegisters(d, std::array<uint16_t, 2>{0xABCD, 0xFF83}) ==
        std::optional<Value>(std::string("Charging")));
  CHECK(decodeRegisters(d, std::array<uint16_t, 2>{0x0000, 0x0080}) ==
        std::optional<Value>(std::string("Available")));
  // A state the map does not know is passed on as its number, not dropped.
  CHECK(decodeRegisters(d, std::array<uint16_t, 2>{0x0000, 0x0009}) ==
        std::optional<Value>(std::string("9")));
  // IEC 61851 letter in the low byte of one register (Phoenix Contact EV-CC).
  RegisterDef letter = def(RegisterType::String);
  letter.count = 1;
  letter.values = {{"A", "Available"}, {"B", "Preparing"}, {"C", "Charging"}};
  CHECK(decodeRegisters(letter, std::array<uint16_t, 1>{0x0043}) ==
        std::optional<Value>(std::string("Charging")));
  std::string error;
  CHECK_FALSE(encodeRegisters(d, Value(3.0), error));
}
