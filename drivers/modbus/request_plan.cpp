#include "drivers/modbus/request_plan.h"

#include <algorithm>
#include <numeric>

namespace hgj::drivers::modbus {

std::vector<PlannedRead> planReads(std::span<const PlanItem> items, const PlanLimits& limits) {
  std::vector<uint32_t> order(items.size());
  std::iota(order.begin(), order.end(), 0U);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (items[a].table != items[b].table) {
      return items[a].table < items[b].table;
    }
    return items[a].address < items[b].address;
  });

  std::vector<PlannedRead> reads;
  uint32_t start = 0;
  uint32_t end = 0;  // one past the last address of the current read
  for (uint32_t i : order) {
    const PlanItem& it = items[i];
    bool bits = profiles::isBitTable(it.table);
    uint32_t max = bits ? limits.max_bits : limits.max_registers;
    uint32_t gap = bits ? limits.max_gap_bits : limits.max_gap_registers;
    uint32_t it_end = it.address + it.count;
    bool joins = !reads.empty() && reads.back().table == it.table && it.address <= end + gap &&
                 std::max(end, it_end) - start <= max;
    if (joins) {
      end = std::max(end, it_end);
      reads.back().count = static_cast<uint16_t>(end - start);
      reads.back().items.push_back(i);
      continue;
    }
    start = it.address;
    end = it_end;
    PlannedRead r;
    r.table = it.table;
    r.address = static_cast<uint16_t>(start);
    r.count = static_cast<uint16_t>(end - start);
    r.items.push_back(i);
    reads.push_back(std::move(r));
  }
  return reads;
}

} // namespace hgj::drivers::modbus
