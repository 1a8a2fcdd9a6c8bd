#include <catch2/catch.hpp>

#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Value;
using hgj::rules::test::Rig;

namespace {

const char* kRules = R"Y(
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
    actions:
      - {point: relay, value: false, safety: true, note: "已自动断电"}
  - name: port_on_when_cool
    kind: threshold
    description: a (bad) comfort rule that would switch a port back on
    select: {type: ebike_port}
    point: temp_c
    op: "<"
    value: 40
    alert: false
    actions:
      - {point: relay, value: true}
  - name: co_fans
    kind: threshold
    select: {type: co_sensor}
    point: co_ppm
    op: ">="
    value: 35
    clear: 25
    alert: false
    actions:
      - {target: same_level, type: fan, point: fan_stage1, value: true, note: "fans on"}
    on_clear:
      - {target: same_level, type: fan, point: fan_stage1, value: false}
actuation: {min_interval: 10s}
occupancy: {enabled: false}
)Y";

void heat(Rig& rig, const std::string& port) {
  rig.feed(port, "temp_c", Value(75.0));
  rig.advance(10s);
  rig.feed(port, "temp_c", Value(75.0));
}

} // namespace

TEST_CASE("interlocks: no rule re-enables a port a safety rule cut", "[rules][interlock]") {
  Rig rig(kRules);
  heat(rig, "S01/P01");
  REQUIRE(rig.sink.writes.size() == 1);
  rig.advance(1min);
  rig.feed("S01/P01", "temp_c", Value(30.0));  // cooled down: the comfort rule wants it on
  CHECK(rig.sink.writes.size() == 1);
  CHECK(rig.engine->stats().writes_refused == 1);
  std::string why;
  CHECK_FALSE(rig.engine->mayWrite(rig.dev("S01/P01"), rig.pt("relay"), Value(true), false, &why));
  CHECK(why.find("cut by safety rule port_over_temperature") == 0);
  CHECK(why.find("operator override") != std::string::npos);
  CHECK(rig.engine->mayWrite(rig.dev("S01/P01"), rig.pt("relay"), Value(false), false, nullptr));
  CHECK(rig.engine->mayWrite(rig.dev("S01/P01"), rig.pt("relay"), Value(true), true, &why));
  CHECK(why.find("override of: cut by safety rule") == 0);
  // Other ports are not latched.
  CHECK(rig.engine->mayWrite(rig.dev("S01/P02"), rig.pt("relay"), Value(true), false, nullptr));
}

TEST_CASE("interlocks: latches persist and restore, clearing one re-arms the rule",
          "[rules][interlock]") {
  Rig rig(kRules);
  heat(rig, "S01/P01");
  auto latches = rig.engine->latches();
  REQUIRE(latches.size() == 1);
  CHECK(latches[0].rule == "port_over_temperature");
  CHECK(latches[0].value == Value(false));
  CHECK(latches[0].since_ms == rig.clock.wallMs());

  rig.restart();
  rig.sink.reset();
  CHECK(rig.engine->mayWrite(rig.dev("S01/P01"), rig.pt("relay"), Value(true), false, nullptr));
  rig.engine->restoreLatch(latches[0]);
  CHECK_FALSE(rig.engine->mayWrite(rig.dev("S01/P01"), rig.pt("relay"), Value(true), false, nullptr));
  CHECK(rig.engine->restoreActive("port_over_temperature", rig.dev("S01/P01")));
  CHECK_FALSE(rig.engine->restoreActive("no_such_rule", rig.dev("S01/P01")));
  CHECK(rig.engine->activeAlerts().size() == 1);

  // The operator re-enables the port while it is still hot: the rule cuts it again after its
  // hold instead of staying quietly active.
  CHECK(rig.engine->clearLatch(rig.dev("S01/P01"), rig.pt("relay")));
  CHECK_FALSE(rig.engine->clearLatch(rig.dev("S01/P01"), rig.pt("relay")));
  heat(rig, "S01/P01");
  REQUIRE(rig.sink.writes.size() == 1);
  CHECK(rig.sink.writes[0].value == Value(false));
  CHECK(rig.engine->latches().size() == 1);
}

TEST_CASE("interlocks: rule writes are rate limited per point", "[rules][interlock]") {
  Rig rig(kRules);
  rig.feed("CO-B1-1", "co_ppm", Value(40.0));
  REQUIRE(rig.sink.writes.size() == 1);
  CHECK(rig.sink.writes[0].device == rig.dev("FAN-B1-1"));
  CHECK(rig.sink.writes[0].value == Value(true));
  rig.advance(2s);
  rig.feed("CO-B1-1", "co_ppm", Value(20.0));  // clears within 10 s of the last write
  CHECK(rig.sink.writes.size() == 1);
  CHECK(rig.engine->stats().writes_rate_limited == 1);
  // Held back, then written once the interval has passed.
  rig.run(7800ms);
  CHECK(rig.sink.writes.size() == 1);
  rig.run(400ms);
  REQUIRE(rig.sink.writes.size() == 2);
  CHECK(rig.sink.writes[1].value == Value(false));
  rig.run(20s);
  CHECK(rig.sink.writes.size() == 2);
}

TEST_CASE("interlocks: fans stay on while another sensor of the level still wants them",
          "[rules][interlock]") {
  hgj::rules::test::CompoundSpec spec;
  spec.co_sensors_per_level = 2;
  Rig rig(kRules, spec);
  rig.feed("CO-B1-1", "co_ppm", Value(40.0));
  rig.feed("CO-B1-2", "co_ppm", Value(50.0));
  REQUIRE(rig.sink.writes.size() == 1);  // the second is a duplicate of the first
  rig.advance(20s);
  rig.feed("CO-B1-1", "co_ppm", Value(10.0));
  CHECK(rig.sink.writes.size() == 1);
  rig.advance(20s);
  rig.feed("CO-B1-2", "co_ppm", Value(10.0));
  REQUIRE(rig.sink.writes.size() == 2);
  CHECK(rig.sink.writes[1].value == Value(false));
}

TEST_CASE("interlocks: a failed actuation raises its own critical alert", "[rules][interlock]") {
  Rig rig(kRules);
  heat(rig, "S02/P03");
  REQUIRE(rig.sink.writes.size() == 1);
  hgj::rules::WriteOutcome out;
  out.device = rig.dev("S02/P03");
  out.point = rig.pt("relay");
  out.value = Value(false);
  out.ok = false;
  out.error = "read-back mismatch (wrote 0, read 1)";
  out.ts_ms = rig.clock.wallMs();
  rig.engine->onWriteResult(out, rig.sink);
  REQUIRE(rig.sink.raised.size() == 2);
  const auto& a = rig.sink.raised[1];
  CHECK(a.rule == "actuation_failed");
  CHECK(a.device == rig.dev("S02/P03"));
  CHECK(a.severity == hgj::rules::Severity::Critical);
  CHECK(a.escalate_now);
  CHECK(a.message.find("read-back mismatch") != std::string::npos);
  CHECK(rig.engine->stats().write_failures == 1);
  // An unrelated result (not a rule's write) is ignored.
  out.device = rig.dev("S02/P04");
  rig.engine->onWriteResult(out, rig.sink);
  CHECK(rig.sink.raised.size() == 2);
}

TEST_CASE("interlocks: a reload keeps latches and active alerts, clears removed rules' alerts",
          "[rules][interlock]") {
  Rig rig(kRules);
  heat(rig, "S01/P01");
  rig.feed("CO-B1-1", "co_ppm", Value(40.0));  // co_fans: no alert
  REQUIRE(rig.engine->activeAlerts().size() == 1);

  hgj::core::Diagnostics diag;
  auto root = hgj::core::loadYamlText(R"Y(
rules:
  - name: port_over_temperature
    kind: threshold
    select: {type: ebike_port, id: "S01/*"}
    point: temp_c
    op: ">"
    value: 65
    clear: 55
    for: 10s
    actions: [{point: relay, value: false, safety: true}]
)Y",
                                      "rules.yaml", diag);
  REQUIRE(root);
  auto cfg = hgj::rules::parseRulesConfig(*root, *rig.compound);
  REQUIRE(diag.ok());
  hgj::rules::Engine next(cfg, *rig.compound, rig.clock);
  rig.sink.reset();
  next.adopt(*rig.engine, rig.sink);
  CHECK(rig.sink.cleared.empty());
  CHECK(next.latches().size() == 1);
  CHECK(next.activeAlerts().size() == 1);
  CHECK_FALSE(next.mayWrite(rig.dev("S01/P01"), rig.pt("relay"), Value(true), false, nullptr));
  // It clears when the port cools down, under the new engine.
  hgj::model::Reading r{rig.dev("S01/P01"), rig.pt("temp_c"), hgj::model::Quality::Good,
                        Value(30.0), rig.clock.wallMs(), rig.clock.wallMs()};
  auto applied = rig.state->apply(r, rig.clock.steadyNow());
  next.onReading(r, applied, *rig.state, rig.sink);
  CHECK(rig.sink.cleared.size() == 1);

  // A reload that drops the rule clears its alert.
  hgj::rules::RulesConfig empty;
  hgj::rules::Engine none(empty, *rig.compound, rig.clock);
  hgj::rules::Engine again(cfg, *rig.compound, rig.clock);
  again.restoreActive("port_over_temperature", rig.dev("S01/P02"));
  rig.sink.reset();
  none.adopt(again, rig.sink);
  REQUIRE(rig.sink.cleared.size() == 1);
  CHECK(rig.sink.cleared[0].device == rig.dev("S01/P02"));
}
