#include <catch2/catch.hpp>

#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Value;
using hgj::rules::test::Rig;

TEST_CASE("offline: a device silent longer than its expected interval raises a warning",
          "[rules][offline]") {
  Rig rig(R"Y(
rules:
  - {name: device_offline, kind: offline, select: {type: ebike_port, id: "S01/*"},
     never_seen: false, message: "{device}: offline {held}"}
occupancy: {enabled: false}
)Y");
  CHECK(rig.engine->instanceCount() == 10);
  rig.feed("S01/P01", "temp_c", Value(30.0));
  rig.run(80s);
  rig.feed("S01/P01", "temp_c", Value(30.0));
  rig.run(89s);
  CHECK(rig.sink.raised.empty());  // expected interval of the port profile: 90 s
  rig.run(2s);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].rule == "device_offline");
  CHECK(rig.sink.raised[0].device == rig.dev("S01/P01"));
  CHECK(rig.sink.raised[0].value == "offline");
  CHECK(rig.sink.raised[0].message.find("S01/P01: offline 1m 3") == 0);
  rig.run(60s);
  CHECK(rig.sink.raised.size() == 1);  // once
  rig.feed("S01/P01", "temp_c", Value(30.0));
  REQUIRE(rig.sink.cleared.size() == 1);
  CHECK(rig.sink.cleared[0].device == rig.dev("S01/P01"));
}

TEST_CASE("offline: the pipeline's offline verdict raises at once and online clears",
          "[rules][offline]") {
  Rig rig(R"Y(
rules:
  - {name: device_offline, kind: offline, select: {type: ev_pile}, after: 10m}
occupancy: {enabled: false}
)Y");
  rig.feed("EV-01", "state", Value(std::string("Available")));
  rig.offline("EV-01");
  REQUIRE(rig.sink.raised.size() == 1);
  rig.state->markOnline(rig.dev("EV-01"), rig.clock.wallMs(), rig.clock.steadyNow());
  rig.engine->onDeviceOnline(rig.dev("EV-01"), *rig.state, rig.sink);
  CHECK(rig.sink.cleared.size() == 1);
}

TEST_CASE("offline: never-seen devices count after the interval from start-up",
          "[rules][offline]") {
  Rig rig(R"Y(
rules:
  - {name: device_offline, kind: offline, select: {type: ev_pile}, after: 5m}
occupancy: {enabled: false}
)Y");
  rig.feed("EV-01", "state", Value(std::string("Available")));
  rig.run(4min);
  rig.feed("EV-01", "state", Value(std::string("Available")));
  rig.run(62s);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].device == rig.dev("EV-02"));
}
