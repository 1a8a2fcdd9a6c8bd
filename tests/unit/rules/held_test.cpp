#include <catch2/catch.hpp>

#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Quality;
using hgj::model::Value;
using hgj::rules::test::Rig;

namespace {

const char* kZombie = R"Y(
rules:
  - {name: zombie_vehicle, kind: held, select: {type: parking_sensor}, point: occupied,
     equals: true, for: 7d, severity: info, message: "{device} {location}: parked {held}"}
  - {name: zombie_vehicle_long, kind: held, select: {type: parking_sensor}, point: occupied,
     equals: true, for: 15d, severity: warning}
occupancy: {enabled: false}
)Y";

constexpr auto kDay = std::chrono::hours(24);

} // namespace

TEST_CASE("held: a space occupied 7 days raises info, 15 days warning", "[rules][held]") {
  Rig rig(kZombie);
  rig.feed("P-B1-0003", "occupied", Value(true));
  rig.tick();
  rig.advance(6 * kDay);
  rig.tick();
  rig.feed("P-B1-0003", "occupied", Value(true));  // heartbeat: same value, timer continues
  rig.advance(kDay);
  rig.tick();
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].rule == "zombie_vehicle");
  CHECK(rig.sink.raised[0].severity == hgj::rules::Severity::Info);
  CHECK(rig.sink.raised[0].message == "P-B1-0003 B1 B区: parked 7d");
  rig.advance(8 * kDay);
  rig.tick();
  REQUIRE(rig.sink.raised.size() == 2);
  CHECK(rig.sink.raised[1].rule == "zombie_vehicle_long");
  CHECK(rig.sink.raised[1].severity == hgj::rules::Severity::Warning);
  rig.feed("P-B1-0003", "occupied", Value(false));
  CHECK(rig.sink.cleared.size() == 2);
}

TEST_CASE("held: a car that leaves restarts the timer", "[rules][held]") {
  Rig rig(kZombie);
  rig.feed("P-B1-0003", "occupied", Value(true));
  rig.advance(5 * kDay);
  rig.feed("P-B1-0003", "occupied", Value(false));
  rig.advance(1h);
  rig.feed("P-B1-0003", "occupied", Value(true));
  rig.advance(5 * kDay);
  rig.tick();
  CHECK(rig.sink.raised.empty());
}

TEST_CASE("held: a restart mid-duration continues the 7-day timer from the persisted since",
          "[rules][held]") {
  Rig rig(kZombie);
  rig.feed("P-B1-0005", "occupied", Value(true));
  rig.advance(4 * kDay);
  rig.tick();
  const auto* ps = rig.state->point(rig.dev("P-B1-0005"), rig.pt("occupied"));
  REQUIRE(ps != nullptr);
  int64_t since_ms = ps->since_ms;
  int64_t updated_ms = ps->updated_ms;

  // The gateway is down for an hour; at start-up the state table is restored from storage.
  rig.advance(1h);
  rig.restart();
  rig.state->restore(rig.dev("P-B1-0005"), rig.pt("occupied"), Value(true), Quality::Stale,
                     since_ms, since_ms, updated_ms, rig.clock.wallMs(), rig.clock.steadyNow());
  rig.tick();
  CHECK(rig.sink.raised.empty());  // restored data is stale until the sensor reports
  rig.feed("P-B1-0005", "occupied", Value(true));  // the sensor's heartbeat
  rig.advance(3 * kDay - 2h);
  rig.tick();
  CHECK(rig.sink.raised.empty());
  rig.advance(1h + 1s);
  rig.tick();
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].rule == "zombie_vehicle");
  CHECK(rig.sink.raised[0].message.find("parked 7d") != std::string::npos);
}

TEST_CASE("held: restored good state past the duration raises on the first tick",
          "[rules][held]") {
  Rig rig(kZombie);
  int64_t now = rig.clock.wallMs();
  rig.state->restore(rig.dev("P-B2-0001"), rig.pt("occupied"), Value(true), Quality::Good,
                     now - 8 * 86'400'000LL, now - 8 * 86'400'000LL, now - 60'000, now,
                     rig.clock.steadyNow());
  rig.tick();
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].device == rig.dev("P-B2-0001"));
}

TEST_CASE("held: an e-bike session over 8 h is ended while it still draws current",
          "[rules][held]") {
  Rig rig(R"Y(
rules:
  - name: session_over_8h
    kind: held
    select: {type: ebike_port}
    point: relay
    equals: true
    while: "current_a > 0.2"
    for: 8h
    severity: info
    actions:
      - {point: relay, value: false, note: "已结束充电"}
)Y");
  rig.feed("S01/P04", "relay", Value(true));
  rig.feed("S01/P04", "current_a", Value(1.5));
  rig.feed("S01/P05", "relay", Value(true));
  rig.feed("S01/P05", "current_a", Value(1.5));
  rig.advance(7h);
  rig.feed("S01/P05", "current_a", Value(0.0));  // battery full: the charger stopped drawing
  rig.advance(1h);
  rig.feed("S01/P04", "current_a", Value(1.4));
  rig.tick();
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].device == rig.dev("S01/P04"));
  CHECK(rig.sink.raised[0].actions_taken == "已结束充电");
  REQUIRE(rig.sink.writes.size() == 1);
  CHECK_FALSE(rig.sink.writes[0].safety);
  CHECK(rig.engine->latches().empty());
}

TEST_CASE("held: a wall clock jump does not shorten or lengthen a duration", "[rules][held]") {
  Rig rig(kZombie);
  rig.feed("P-B1-0001", "occupied", Value(true));
  rig.clock.setWallMs(rig.clock.wallMs() + 30LL * 86'400'000);  // NTP jumps a month ahead
  rig.advance(kDay);
  rig.tick();
  CHECK(rig.sink.raised.empty());
  rig.clock.setWallMs(0);  // and back to 1970
  rig.advance(6 * kDay);
  rig.tick();
  CHECK(rig.sink.raised.size() == 1);
}
