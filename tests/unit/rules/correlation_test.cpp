#include <catch2/catch.hpp>

#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Quality;
using hgj::model::Value;
using hgj::rules::test::Rig;

namespace {

const char* kEv = R"Y(
rules:
  - name: ev_space_blocked
    kind: correlation
    select: {type: parking_sensor, linked_type: ev_pile}
    self: {point: occupied, equals: true}
    other: {relation: linked, point: state, not_in: [Charging, SuspendedEV, SuspendedEVSE, Finishing]}
    for: 15m
    message: "{device}: blocked {held}, pile {other} {other_value}"
  - name: overstay_after_charging
    kind: correlation
    select: {type: parking_sensor, linked_type: ev_pile}
    self: {point: occupied, equals: true}
    other: {relation: linked, point: state, in: [Finishing, SuspendedEV]}
    for: 30m
    severity: info
occupancy: {enabled: false}
)Y";

Value text(const char* s) { return Value(std::string(s)); }

} // namespace

TEST_CASE("correlation: a fuel car on an EV space raises a warning after 15 minutes",
          "[rules][correlation]") {
  Rig rig(kEv);
  // EV-01 is linked to P-B2-0007 in the test compound.
  REQUIRE(rig.compound->devices[rig.dev("EV-01")].linked == rig.dev("P-B2-0007"));
  CHECK(rig.engine->instanceCount() == 4);  // two rules x two linked spaces
  rig.feed("EV-01", "state", text("Available"));
  rig.feed("P-B2-0007", "occupied", Value(true));
  rig.run(14min);
  rig.feed("EV-01", "state", text("Available"));  // status report, unchanged
  CHECK(rig.sink.raised.empty());
  rig.run(61s);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].rule == "ev_space_blocked");
  CHECK(rig.sink.raised[0].device == rig.dev("P-B2-0007"));
  CHECK(rig.sink.raised[0].message == "P-B2-0007: blocked 15m, pile EV-01 Available");
  // The car leaves.
  rig.feed("P-B2-0007", "occupied", Value(false));
  REQUIRE(rig.sink.cleared.size() == 1);
}

TEST_CASE("correlation: an EV that charges is not blocking", "[rules][correlation]") {
  Rig rig(kEv);
  rig.feed("P-B2-0007", "occupied", Value(true));
  rig.advance(2min);
  rig.feed("EV-01", "state", text("charging"));
  rig.run(40min);
  CHECK(rig.sink.raised.empty());
}

TEST_CASE("correlation: the pile's report arriving later starts the timer then",
          "[rules][correlation]") {
  Rig rig(kEv);
  rig.feed("P-B2-0007", "occupied", Value(true));
  rig.run(20min);  // the pile has not reported: unknown, nothing acts
  CHECK(rig.sink.raised.empty());
  rig.feed("EV-01", "state", text("Preparing"));
  rig.run(14min);
  CHECK(rig.sink.raised.empty());
  rig.run(61s);
  CHECK(rig.sink.raised.size() == 1);
}

TEST_CASE("correlation: overstay 30 minutes after the session finished", "[rules][correlation]") {
  Rig rig(kEv);
  rig.feed("P-B2-0008", "occupied", Value(true));
  rig.feed("EV-02", "state", text("Charging"));
  rig.run(2h);
  rig.feed("EV-02", "state", text("Finishing"));
  rig.run(29min);
  CHECK(rig.sink.raised.empty());
  rig.run(61s);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].rule == "overstay_after_charging");
  CHECK(rig.sink.raised[0].device == rig.dev("P-B2-0008"));
}

TEST_CASE("correlation: a pile going offline stops the timer", "[rules][correlation]") {
  Rig rig(kEv);
  rig.feed("P-B2-0007", "occupied", Value(true));
  rig.feed("EV-01", "state", text("Available"));
  rig.run(10min);
  rig.offline("EV-01");
  rig.run(30min);
  CHECK(rig.sink.raised.empty());
}

TEST_CASE("correlation: a shed heating up while its ports draw current", "[rules][correlation]") {
  Rig rig(R"Y(
rules:
  - name: shed_hot_while_charging
    kind: correlation
    select: {type: ebike_shed}
    self: {point: temp_c, op: ">", value: 45}
    other: {relation: children_any, point: current_a, op: ">", value: 0.5}
    for: 2m
)Y");
  rig.feed("S01", "temp_c", Value(50.0));
  rig.feed("S01/P01", "current_a", Value(0.0));
  rig.feed("S01/P02", "current_a", Value(1.1));
  rig.advance(2min);
  rig.feed("S01", "temp_c", Value(51.0));
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].device == rig.dev("S01"));
  rig.feed("S01/P02", "current_a", Value(0.0));
  // Other ports have not reported: not every child is known to be idle.
  CHECK(rig.sink.cleared.empty());
  rig.feed("S01", "temp_c", Value(40.0));
  CHECK(rig.sink.cleared.size() == 1);
}

TEST_CASE("correlation: a restart mid-duration continues from both points' since-when",
          "[rules][correlation]") {
  Rig rig(kEv);
  rig.feed("EV-01", "state", text("Available"));
  rig.feed("P-B2-0007", "occupied", Value(true));
  rig.run(10min);
  const auto* space = rig.state->point(rig.dev("P-B2-0007"), rig.pt("occupied"));
  const auto* pile = rig.state->point(rig.dev("EV-01"), rig.pt("state"));
  int64_t space_since = space->since_ms;
  int64_t pile_since = pile->since_ms;
  rig.advance(1min);  // down for a minute
  rig.restart();
  int64_t now = rig.clock.wallMs();
  rig.state->restore(rig.dev("P-B2-0007"), rig.pt("occupied"), Value(true), Quality::Stale,
                     space_since, space_since, space_since, now, rig.clock.steadyNow());
  rig.state->restore(rig.dev("EV-01"), rig.pt("state"), text("Available"), Quality::Stale,
                     pile_since, pile_since, pile_since, now, rig.clock.steadyNow());
  rig.tick();
  rig.feed("EV-01", "state", text("Available"));
  rig.feed("P-B2-0007", "occupied", Value(true));
  rig.run(3min + 58s);
  CHECK(rig.sink.raised.empty());
  rig.run(2s + 200ms);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].rule == "ev_space_blocked");
}
