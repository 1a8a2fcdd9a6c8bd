#include <catch2/catch.hpp>

#include <set>

#include "gateway/uplink/uplink.h"

using hgj::uplink::reconnectDelay;
using std::chrono::milliseconds;

TEST_CASE("uplink reconnect: exponential backoff capped at max, with half of it jittered",
          "[uplink][backoff]") {
  const milliseconds lo(1000);
  const milliseconds hi(60'000);
  // Without randomness: the fixed half of each step.
  CHECK(reconnectDelay(0, lo, hi, 0) == milliseconds(500));
  CHECK(reconnectDelay(1, lo, hi, 0) == milliseconds(1000));
  CHECK(reconnectDelay(3, lo, hi, 0) == milliseconds(4000));
  CHECK(reconnectDelay(20, lo, hi, 0) == milliseconds(30'000));
  CHECK(reconnectDelay(1000, lo, hi, 0) == milliseconds(30'000));
  // With it: between half the step and the step, never above max.
  std::set<int64_t> seen;
  for (uint64_t r = 0; r < 5000; r += 7) {
    auto d = reconnectDelay(2, lo, hi, r * 2654435761u);
    CHECK(d >= milliseconds(2000));
    CHECK(d <= milliseconds(4000));
    seen.insert(d.count());
    CHECK(reconnectDelay(30, lo, hi, r * 2654435761u) <= hi);
  }
  CHECK(seen.size() > 100);  // spread, not lockstep
}
