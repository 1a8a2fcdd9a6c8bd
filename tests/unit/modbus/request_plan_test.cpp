#include <catch2/catch.hpp>

#include "drivers/modbus/request_plan.h"

using namespace hgj::drivers::modbus;
using hgj::drivers::profiles::RegisterTable;

namespace {

PlanItem reg(uint32_t address, uint16_t count = 1, RegisterTable t = RegisterTable::Holding) {
  return {t, address, count};
}

} // namespace

TEST_CASE("modbus plan: contiguous registers become one read", "[modbus][plan]") {
  std::vector<PlanItem> items{reg(0, 2), reg(2, 2), reg(4, 1), reg(5, 4)};
  auto reads = planReads(items, {});
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].address == 0);
  CHECK(reads[0].count == 9);
  CHECK(reads[0].items == std::vector<uint32_t>{0, 1, 2, 3});
}

TEST_CASE("modbus plan: small gaps are read along, large gaps split", "[modbus][plan]") {
  PlanLimits limits;
  limits.max_gap_registers = 4;
  std::vector<PlanItem> items{reg(0), reg(5), reg(20)};
  auto reads = planReads(items, limits);
  REQUIRE(reads.size() == 2);
  CHECK(reads[0].address == 0);
  CHECK(reads[0].count == 6);
  CHECK(reads[1].address == 20);
  CHECK(reads[1].count == 1);
  limits.max_gap_registers = 0;
  CHECK(planReads(items, limits).size() == 3);
}

TEST_CASE("modbus plan: unsorted input is sorted and item indexes are kept", "[modbus][plan]") {
  std::vector<PlanItem> items{reg(10, 2), reg(0, 2), reg(2, 2)};
  auto reads = planReads(items, {});
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].address == 0);
  CHECK(reads[0].count == 12);
  CHECK(reads[0].items == std::vector<uint32_t>{1, 2, 0});
}

TEST_CASE("modbus plan: no read asks for more than 125 registers", "[modbus][plan]") {
  std::vector<PlanItem> items;
  for (uint32_t a = 0; a < 300; a += 2) {
    items.push_back(reg(a, 2));
  }
  auto reads = planReads(items, {});
  REQUIRE(reads.size() == 3);
  for (const auto& r : reads) {
    CHECK(r.count <= 125);
  }
  CHECK(reads[0].address == 0);
  CHECK(reads[0].count == 124);  // a 2-register value never straddles two reads
  CHECK(reads[1].address == 124);
  size_t total = 0;
  for (const auto& r : reads) {
    total += r.items.size();
  }
  CHECK(total == items.size());
}

TEST_CASE("modbus plan: a smaller per-device limit is honoured", "[modbus][plan]") {
  PlanLimits limits;
  limits.max_registers = 80;  // Eastron: 40 parameters per request
  std::vector<PlanItem> items;
  for (uint32_t a = 0; a < 160; a += 2) {
    items.push_back(reg(a, 2, RegisterTable::Input));
  }
  auto reads = planReads(items, limits);
  REQUIRE(reads.size() == 2);
  CHECK(reads[0].count == 80);
  CHECK(reads[1].address == 80);
}

TEST_CASE("modbus plan: bits are merged up to 2000 per read", "[modbus][plan]") {
  std::vector<PlanItem> items;
  for (uint32_t a = 0; a < 4100; a += 10) {
    items.push_back(reg(a, 1, RegisterTable::Coil));
  }
  auto reads = planReads(items, {});
  REQUIRE(reads.size() == 3);
  for (const auto& r : reads) {
    CHECK(r.table == RegisterTable::Coil);
    CHECK(r.count <= 2000);
  }
  CHECK(reads[0].count == 1991);
}

TEST_CASE("modbus plan: tables are never mixed and come in a fixed order", "[modbus][plan]") {
  std::vector<PlanItem> items{reg(0, 2, RegisterTable::Input), reg(0, 1, RegisterTable::Coil),
                              reg(0, 1, RegisterTable::Holding),
                              reg(1, 1, RegisterTable::Discrete)};
  auto reads = planReads(items, {});
  REQUIRE(reads.size() == 4);
  CHECK(reads[0].table == RegisterTable::Coil);
  CHECK(reads[1].table == RegisterTable::Discrete);
  CHECK(reads[1].address == 1);
  CHECK(reads[2].table == RegisterTable::Holding);
  CHECK(reads[3].table == RegisterTable::Input);
  CHECK(reads[3].count == 2);
}

TEST_CASE("modbus plan: values sharing a register (bit fields) share the read",
          "[modbus][plan]") {
  std::vector<PlanItem> items{reg(7), reg(7), reg(3, 4), reg(5, 1)};
  auto reads = planReads(items, {});
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].address == 3);
  CHECK(reads[0].count == 5);
  CHECK(reads[0].items.size() == 4);
}

TEST_CASE("modbus plan: the top of the address space", "[modbus][plan]") {
  std::vector<PlanItem> items{reg(65534, 2), reg(65530, 1)};
  auto reads = planReads(items, {});
  REQUIRE(reads.size() == 1);
  CHECK(reads[0].address == 65530);
  CHECK(reads[0].count == 6);
  CHECK(planReads(std::vector<PlanItem>{}, {}).empty());
}
