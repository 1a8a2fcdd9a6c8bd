#include <catch2/catch.hpp>

#include <chrono>

#include "core/clock.h"
#include "gateway/uplink/replay_pacer.h"

using namespace hgj;
using std::chrono::milliseconds;

namespace {

uplink::ReplaySettings settings() {
  uplink::ReplaySettings s;
  s.max_rate = 100;
  s.min_rate = 5;
  s.start_rate = 20;
  s.increase = 20;
  s.slow_ack = milliseconds(500);
  return s;
}

/// Drives the pacer for `span` in 1 ms steps: publishes whenever it may, acknowledges each
/// publish `rtt` later. Returns how many were published.
int drive(uplink::ReplayPacer& p, core::ManualClock& clock, milliseconds span, milliseconds rtt) {
  std::vector<core::SteadyTime> in_flight;
  int sent = 0;
  const auto end = clock.steadyNow() + span;
  while (clock.steadyNow() < end) {
    const auto now = clock.steadyNow();
    while (!in_flight.empty() && in_flight.front() + rtt <= now) {
      p.onAck(std::chrono::duration_cast<milliseconds>(now - in_flight.front()), now);
      in_flight.erase(in_flight.begin());
    }
    while (p.tryTake(now)) {
      in_flight.push_back(now);
      ++sent;
    }
    clock.advance(milliseconds(1));
  }
  return sent;
}

} // namespace

TEST_CASE("replay pacer: never above max_rate, climbs there while PUBACKs are fast",
          "[uplink][pacer]") {
  core::ManualClock clock;
  uplink::ReplayPacer p(settings());
  p.reset(clock.steadyNow());
  CHECK(p.rate() == 20);
  drive(p, clock, milliseconds(10'000), milliseconds(5));
  CHECK(p.rate() == 100);
  // At the ceiling: 10 s at most 100/s plus one burst of a tenth of a second.
  const int sent = drive(p, clock, milliseconds(10'000), milliseconds(5));
  CHECK(sent <= 100 * 10 + 10);
  CHECK(sent >= 100 * 10 - 10);
  CHECK(p.backoffs() == 0);
}

TEST_CASE("replay pacer: slow PUBACKs halve the rate down to min_rate, fast ones bring it back",
          "[uplink][pacer]") {
  core::ManualClock clock;
  uplink::ReplayPacer p(settings());
  p.reset(clock.steadyNow());
  drive(p, clock, milliseconds(10'000), milliseconds(5));
  REQUIRE(p.rate() == 100);
  drive(p, clock, milliseconds(3'000), milliseconds(900));
  CHECK(p.rate() < 100);
  CHECK(p.backoffs() >= 1);
  drive(p, clock, milliseconds(20'000), milliseconds(900));
  CHECK(p.rate() == 5);
  const int slow = drive(p, clock, milliseconds(10'000), milliseconds(900));
  CHECK(slow <= 5 * 10 + 2);
  // The smoothed round trip comes down over a few acks, then the rate climbs again.
  drive(p, clock, milliseconds(15'000), milliseconds(5));
  CHECK(p.rate() == 100);
}

TEST_CASE("replay pacer: one slow ack among fast ones does not cut the rate",
          "[uplink][pacer]") {
  core::ManualClock clock;
  uplink::ReplayPacer p(settings());
  p.reset(clock.steadyNow());
  drive(p, clock, milliseconds(10'000), milliseconds(5));
  p.onAck(milliseconds(2'000), clock.steadyNow());
  CHECK(p.rate() == 100);
  CHECK(p.backoffs() == 0);
}

TEST_CASE("replay pacer: not adaptive is a fixed max_rate, max_rate 0 is unlimited",
          "[uplink][pacer]") {
  core::ManualClock clock;
  auto s = settings();
  s.adaptive = false;
  uplink::ReplayPacer fixed(s);
  fixed.reset(clock.steadyNow());
  CHECK(fixed.rate() == 100);
  drive(fixed, clock, milliseconds(5'000), milliseconds(900));
  CHECK(fixed.rate() == 100);
  s.max_rate = 0;
  uplink::ReplayPacer unlimited(s);
  unlimited.reset(clock.steadyNow());
  int n = 0;
  while (n < 100'000 && unlimited.tryTake(clock.steadyNow())) {
    ++n;
  }
  CHECK(n == 100'000);
  CHECK(unlimited.untilNext(clock.steadyNow()).count() == 0);
}

TEST_CASE("replay pacer: a reconnect starts again at start_rate", "[uplink][pacer]") {
  core::ManualClock clock;
  uplink::ReplayPacer p(settings());
  p.reset(clock.steadyNow());
  drive(p, clock, milliseconds(10'000), milliseconds(5));
  REQUIRE(p.rate() == 100);
  p.reset(clock.steadyNow());
  CHECK(p.rate() == 20);
  CHECK(p.smoothedRttMs() == 0);
}
