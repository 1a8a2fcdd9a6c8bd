#include <catch2/catch.hpp>

#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Quality;
using hgj::model::Value;
using hgj::rules::test::Rig;

namespace {

const char* kSmoke = R"Y(
rules:
  - name: shed_smoke
    kind: state
    select: {type: ebike_shed}
    point: smoke
    equals: true
    severity: critical
    escalate_now: true
    message: "{device}: smoke"
    actions:
      - {target: children, point: relay, value: false, safety: true, note: "已切断全棚充电口"}
)Y";

} // namespace

TEST_CASE("state: smoke cuts every port of the shed at once and escalates", "[rules][state]") {
  Rig rig(kSmoke);
  rig.feed("S02", "smoke", Value(false));
  CHECK(rig.sink.raised.empty());
  rig.feed("S02", "smoke", Value(true));
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].escalate_now);
  CHECK(rig.sink.raised[0].severity == hgj::rules::Severity::Critical);
  CHECK(rig.sink.raised[0].actions_taken == "已切断全棚充电口");
  REQUIRE(rig.sink.writes.size() == 10);
  for (int p = 0; p < 10; ++p) {
    const auto& w = rig.sink.writes[static_cast<size_t>(p)];
    CHECK(rig.compound->devices[w.device].parent == rig.dev("S02"));
    CHECK(w.point == rig.pt("relay"));
    CHECK(w.value == Value(false));
    CHECK(w.safety);
  }
  CHECK(rig.engine->latches().size() == 10);
  CHECK(rig.engine->safetyCut(rig.dev("S02/P07")));
  CHECK_FALSE(rig.engine->safetyCut(rig.dev("S01/P07")));
  // The other shed is untouched.
  rig.feed("S02", "smoke", Value(false));
  CHECK(rig.sink.cleared.size() == 1);
  CHECK(rig.sink.writes.size() == 10);
}

TEST_CASE("state: a stale smoke flag never acts", "[rules][state]") {
  Rig rig(kSmoke);
  rig.feed("S01", "smoke", Value(true), Quality::Stale);
  rig.run(2s);
  CHECK(rig.sink.raised.empty());
  CHECK(rig.sink.writes.empty());
}

TEST_CASE("state: a state held for a duration is timed from the point's since-when",
          "[rules][state]") {
  Rig rig(R"Y(
rules:
  - {name: pile_faulted, kind: state, select: {type: ev_pile}, point: state, in: [Faulted, Unavailable],
     for: 5m, severity: warning}
)Y");
  rig.feed("EV-01", "state", Value(std::string("faulted")));  // case does not matter
  rig.run(4min);
  rig.feed("EV-01", "state", Value(std::string("faulted")));
  CHECK(rig.sink.raised.empty());
  rig.run(61s);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].value == "faulted");
  rig.feed("EV-01", "state", Value(std::string("Available")));
  CHECK(rig.sink.cleared.size() == 1);
}
