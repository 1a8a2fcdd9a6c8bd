#include <catch2/catch.hpp>

#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Quality;
using hgj::model::Value;
using hgj::rules::test::Rig;

namespace {

const char* kOverTemp = R"Y(
rules:
  - name: port_over_temperature
    kind: threshold
    select: {type: ebike_port}
    point: temp_c
    op: ">"
    value: 60
    clear: 55
    for: 10s
    severity: critical
    message: "{device} {location}: {value} > {threshold}"
    actions:
      - {point: relay, value: false, safety: true, note: "已自动断电"}
)Y";

} // namespace

TEST_CASE("threshold: a port held over 60 C for 10 s is cut and raises a critical alert",
          "[rules][threshold]") {
  Rig rig(kOverTemp);
  rig.feed("S01/P03", "temp_c", Value(75.0));
  for (int i = 0; i < 9; ++i) {
    rig.advance(1s);
    rig.tick();
    rig.feed("S01/P03", "temp_c", Value(75.0 + i));
  }
  CHECK(rig.sink.raised.empty());
  CHECK(rig.sink.writes.empty());
  rig.advance(1s);
  rig.feed("S01/P03", "temp_c", Value(76.0));
  REQUIRE(rig.sink.raised.size() == 1);
  const auto& a = rig.sink.raised[0];
  CHECK(a.rule == "port_over_temperature");
  CHECK(a.device == rig.dev("S01/P03"));
  CHECK(a.severity == hgj::rules::Severity::Critical);
  CHECK(a.actions_taken == "已自动断电");
  CHECK(a.message.find("S01/P03") == 0);
  CHECK(a.source_ms == rig.clock.wallMs());
  REQUIRE(rig.sink.writes.size() == 1);
  CHECK(rig.sink.writes[0].device == rig.dev("S01/P03"));
  CHECK(rig.sink.writes[0].point == rig.pt("relay"));
  CHECK(rig.sink.writes[0].value == Value(false));
  CHECK(rig.sink.writes[0].safety);
  // The cut is raised once, not on every reading that follows.
  rig.advance(1s);
  rig.feed("S01/P03", "temp_c", Value(77.0));
  CHECK(rig.sink.raised.size() == 1);
  CHECK(rig.sink.writes.size() == 1);
}

TEST_CASE("threshold: the hold is also completed by the tick after two confirming readings",
          "[rules][threshold]") {
  Rig rig(kOverTemp);
  rig.feed("S01/P01", "temp_c", Value(70.0));
  rig.advance(1s);
  rig.feed("S01/P01", "temp_c", Value(71.0));
  rig.run(8s);
  CHECK(rig.sink.raised.empty());
  rig.run(1200ms);
  CHECK(rig.sink.raised.size() == 1);
}

TEST_CASE("threshold: a single hot sample never cuts when the rule has a hold duration",
          "[rules][threshold]") {
  Rig rig(kOverTemp);
  SECTION("spike followed by a normal reading") {
    rig.feed("S01/P01", "temp_c", Value(655.35));  // 0xFFFF / 100
    rig.advance(1s);
    rig.feed("S01/P01", "temp_c", Value(35.0));
    rig.run(30s);
  }
  SECTION("spike followed by silence") {
    rig.feed("S01/P01", "temp_c", Value(655.35));
    rig.run(60s);
  }
  CHECK(rig.sink.raised.empty());
  CHECK(rig.sink.writes.empty());
}

TEST_CASE("threshold: a dip below the limit restarts the hold", "[rules][threshold]") {
  Rig rig(kOverTemp);
  rig.feed("S01/P01", "temp_c", Value(65.0));
  rig.advance(6s);
  rig.feed("S01/P01", "temp_c", Value(59.0));
  rig.advance(1s);
  rig.feed("S01/P01", "temp_c", Value(65.0));
  rig.advance(6s);
  rig.feed("S01/P01", "temp_c", Value(65.0));
  CHECK(rig.sink.raised.empty());
  rig.advance(4s);
  rig.feed("S01/P01", "temp_c", Value(65.0));
  CHECK(rig.sink.raised.size() == 1);
}

TEST_CASE("threshold: hysteresis clears only below the clear value", "[rules][threshold]") {
  Rig rig(kOverTemp);
  rig.feed("S01/P01", "temp_c", Value(65.0));
  rig.advance(10s);
  rig.feed("S01/P01", "temp_c", Value(65.0));
  REQUIRE(rig.sink.raised.size() == 1);
  rig.advance(1s);
  rig.feed("S01/P01", "temp_c", Value(58.0));  // below the limit, above the clear value
  rig.advance(1s);
  rig.feed("S01/P01", "temp_c", Value(61.0));  // back over: no second alert
  rig.advance(1s);
  rig.feed("S01/P01", "temp_c", Value(56.0));
  CHECK(rig.sink.cleared.empty());
  CHECK(rig.sink.raised.size() == 1);
  rig.advance(1s);
  rig.feed("S01/P01", "temp_c", Value(54.9));
  REQUIRE(rig.sink.cleared.size() == 1);
  CHECK(rig.sink.cleared[0].rule == "port_over_temperature");
  CHECK(rig.sink.cleared[0].device == rig.dev("S01/P01"));
  // Clearing never switches the port back on.
  CHECK(rig.sink.writes.size() == 1);
  CHECK(rig.engine->latches().size() == 1);
}

TEST_CASE("threshold: stale data never acts and never clears", "[rules][threshold]") {
  Rig rig(kOverTemp);
  SECTION("stale readings over the limit do not start the hold") {
    for (int i = 0; i < 20; ++i) {
      rig.feed("S01/P01", "temp_c", Value(80.0), Quality::Stale);
      rig.advance(1s);
      rig.tick();
    }
    CHECK(rig.sink.raised.empty());
  }
  SECTION("a device going offline mid-hold stops the timer") {
    rig.feed("S01/P01", "temp_c", Value(80.0));
    rig.advance(1s);
    rig.feed("S01/P01", "temp_c", Value(80.0));
    rig.offline("S01/P01");
    rig.run(30s);
    CHECK(rig.sink.raised.empty());
  }
  SECTION("an active alert stays while the data is stale") {
    rig.feed("S01/P01", "temp_c", Value(80.0));
    rig.advance(10s);
    rig.feed("S01/P01", "temp_c", Value(80.0));
    REQUIRE(rig.sink.raised.size() == 1);
    rig.feed("S01/P01", "temp_c", Value(20.0), Quality::Bad);
    rig.run(5s);
    CHECK(rig.sink.cleared.empty());
    rig.feed("S01/P01", "temp_c", Value(20.0));
    CHECK(rig.sink.cleared.size() == 1);
  }
}

TEST_CASE("threshold: without a hold one reading over the limit acts at once",
          "[rules][threshold]") {
  Rig rig(R"Y(
rules:
  - {name: hot, kind: threshold, select: {type: ebike_port}, point: temp_c, op: ">", value: 60,
     severity: critical}
)Y");
  rig.feed("S02/P10", "temp_c", Value(61.0));
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].device == rig.dev("S02/P10"));
  // Without a clear value it clears as soon as the condition fails.
  rig.feed("S02/P10", "temp_c", Value(60.0));
  CHECK(rig.sink.cleared.size() == 1);
}

TEST_CASE("threshold: a below-limit rule clears above its clear value", "[rules][threshold]") {
  Rig rig(R"Y(
rules:
  - {name: cold, kind: threshold, select: {type: ebike_shed}, point: temp_c, op: "<", value: 0,
     clear: 3}
)Y");
  rig.feed("S01", "temp_c", Value(-2.0));
  REQUIRE(rig.sink.raised.size() == 1);
  rig.feed("S01", "temp_c", Value(2.0));
  CHECK(rig.sink.cleared.empty());
  rig.feed("S01", "temp_c", Value(3.5));
  CHECK(rig.sink.cleared.size() == 1);
}

TEST_CASE("threshold: clear_for delays the clear", "[rules][threshold]") {
  Rig rig(R"Y(
rules:
  - {name: co, kind: threshold, select: {type: co_sensor}, point: co_ppm, op: ">=", value: 35,
     clear: 25, clear_for: 5m}
)Y");
  rig.feed("CO-B1-1", "co_ppm", Value(40.0));
  REQUIRE(rig.sink.raised.size() == 1);
  rig.feed("CO-B1-1", "co_ppm", Value(10.0));
  rig.run(4min);
  CHECK(rig.sink.cleared.empty());
  rig.run(61s);
  CHECK(rig.sink.cleared.size() == 1);
}
