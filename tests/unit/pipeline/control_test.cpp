// The control stage (engine + interlocks + actuator) against the holes of issue #13, on the
// shipped profiles and an injected clock.
#include <catch2/catch.hpp>

#include "tests/unit/pipeline/control_rig.h"

using namespace std::chrono_literals;
using hgj::model::Value;
using hgj::pipeline::ActuationStatus;
using hgj::pipeline::test::ControlRig;
using hgj::rules::Writer;

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
    for: 2s
    severity: critical
    actions:
      - {point: relay, value: false, safety: true, note: "已自动断电"}
  - name: shed_smoke
    kind: state
    select: {type: ebike_shed}
    point: smoke
    equals: true
    severity: critical
    escalate_now: true
    actions:
      - {target: children, point: relay, value: false, safety: true}
occupancy: {enabled: false}
)Y";

// Two hot readings over the 2 s hold: the rule cuts at the second.
void heat(ControlRig& rig, const std::string& port) {
  rig.feed(port, "temp_c", Value(75.0));
  rig.run(2s);
  rig.feed(port, "temp_c", Value(75.0));
}

size_t countValue(const std::vector<hgj::drivers::WriteRequest>& ws, bool v) {
  size_t n = 0;
  for (const auto& w : ws) {
    n += w.value == Value(v) ? 1 : 0;
  }
  return n;
}

} // namespace

TEST_CASE("control: an enable still awaiting confirmation is never re-sent after a safety cut",
          "[pipeline][control][safety]") {
  ControlRig rig(kRules);
  rig.command("S01/P01", "relay", Value(true), Writer::Operator, false);
  CHECK(rig.writesTo("S01/P01", "relay").empty());  // energizing: its record first
  rig.commitRecords();
  REQUIRE(rig.writesTo("S01/P01", "relay").size() == 1);  // sent, the port never confirms it
  heat(rig, "S01/P01");
  auto ws = rig.writesTo("S01/P01", "relay");
  REQUIRE(ws.size() == 2);
  CHECK(ws[1].value == Value(false));
  CHECK(ws[1].de_energize);
  // The older enable is superseded: its caller hears so, and its retry never happens.
  REQUIRE(rig.outcomes.size() == 1);
  CHECK(rig.outcomes[0].status == ActuationStatus::Superseded);
  rig.feed("S01/P01", "relay", Value(false));  // the cut is confirmed by the next report
  rig.run(40s);
  CHECK(countValue(rig.writesTo("S01/P01", "relay"), true) == 1);
  CHECK(rig.control->interlocks().latched(rig.dev("S01/P01"), rig.pt("relay")) != nullptr);
}

TEST_CASE("control: a reading that shows a latched port live cuts it again and raises a "
          "critical alert",
          "[pipeline][control][safety]") {
  ControlRig rig(kRules);
  heat(rig, "S01/P02");
  rig.feed("S01/P02", "relay", Value(false));
  REQUIRE(rig.writesTo("S01/P02", "relay").size() == 1);
  // Someone switched it on at the controller.
  rig.feed("S01/P02", "relay", Value(true));
  auto ws = rig.writesTo("S01/P02", "relay");
  REQUIRE(ws.size() == 2);
  CHECK(ws[1].value == Value(false));
  CHECK(ws[1].de_energize);
  bool breach = false;
  for (const auto& a : rig.outputs.raised) {
    if (a.rule == "safety_latch_breach") {
      breach = true;
      CHECK(a.severity == hgj::rules::Severity::Critical);
      CHECK(a.escalate_now);
    }
  }
  CHECK(breach);
  // While that cut is on its way, another live report does not pile up cuts.
  rig.feed("S01/P02", "relay", Value(true));
  CHECK(rig.writesTo("S01/P02", "relay").size() == 2);
  // Off again: the breach alert clears.
  rig.feed("S01/P02", "relay", Value(false));
  REQUIRE_FALSE(rig.outputs.cleared.empty());
  CHECK(rig.outputs.cleared.back().rule == "safety_latch_breach");
}

TEST_CASE("control: six operator toggles in a minute do not hold back a safety cut",
          "[pipeline][control][safety]") {
  ControlRig rig(kRules);
  for (int i = 0; i < 6; ++i) {
    bool on = i % 2 == 0;
    rig.command("S01/P03", "relay", Value(on), Writer::Operator, false);
    rig.commitRecords();
    rig.feed("S01/P03", "relay", Value(on));
    rig.run(1s);
  }
  // A seventh enable is rate-limited...
  rig.command("S01/P03", "relay", Value(true), Writer::Operator, false);
  REQUIRE_FALSE(rig.outcomes.empty());
  CHECK(rig.outcomes.back().status == ActuationStatus::Refused);
  CHECK(rig.outcomes.back().error.find("rate limit") == 0);
  size_t before = rig.writesTo("S01/P03", "relay").size();
  // ...a cut never is.
  heat(rig, "S01/P03");
  auto ws = rig.writesTo("S01/P03", "relay");
  REQUIRE(ws.size() == before + 1);
  CHECK(ws.back().value == Value(false));
}

TEST_CASE("control: overrides from upstream are refused by default, allowed ones wait for "
          "their record",
          "[pipeline][control][safety]") {
  SECTION("refused by default") {
    ControlRig rig(kRules);
    heat(rig, "S01/P01");
    rig.command("S01/P01", "relay", Value(true), Writer::Upstream, true);
    rig.commitRecords();
    REQUIRE(rig.outcomes.size() == 1);
    CHECK(rig.outcomes[0].status == ActuationStatus::Refused);
    CHECK(rig.outcomes[0].error.find("allow_override") != std::string::npos);
    CHECK(countValue(rig.writesTo("S01/P01", "relay"), true) == 0);
  }
  SECTION("allowed by the local policy, executed only once recorded") {
    ControlRig rig(kRules, true);
    heat(rig, "S01/P01");
    rig.command("S01/P01", "relay", Value(true), Writer::Upstream, true);
    CHECK(countValue(rig.writesTo("S01/P01", "relay"), true) == 0);
    rig.commitRecords();
    CHECK(countValue(rig.writesTo("S01/P01", "relay"), true) == 1);
    rig.feed("S01/P01", "relay", Value(true));
    REQUIRE(rig.outcomes.size() == 1);
    CHECK(rig.outcomes[0].ok);
    CHECK(rig.control->interlocks().latched(rig.dev("S01/P01"), rig.pt("relay")) == nullptr);
    // The confirming report is not taken for a breach of the latch it lifted.
    CHECK(countValue(rig.writesTo("S01/P01", "relay"), false) == 1);
    CHECK(rig.outputs.latch_log.back().second == false);
  }
  SECTION("an operator override whose record cannot be written is not executed") {
    ControlRig rig(kRules);
    heat(rig, "S01/P01");
    rig.command("S01/P01", "relay", Value(true), Writer::Operator, true);
    rig.commitRecords(false);
    REQUIRE(rig.outcomes.size() == 1);
    CHECK(rig.outcomes[0].status == ActuationStatus::Failed);
    CHECK(countValue(rig.writesTo("S01/P01", "relay"), true) == 0);
  }
  SECTION("without override nobody re-enables a cut port") {
    ControlRig rig(kRules, true);
    heat(rig, "S01/P01");
    rig.command("S01/P01", "relay", Value(true), Writer::Operator, false);
    rig.command("S01/P01", "relay", Value(true), Writer::Upstream, false);
    rig.commitRecords();
    REQUIRE(rig.outcomes.size() == 2);
    CHECK(rig.outcomes[0].status == ActuationStatus::Refused);
    CHECK(rig.outcomes[1].status == ActuationStatus::Refused);
    CHECK(countValue(rig.writesTo("S01/P01", "relay"), true) == 0);
  }
}

TEST_CASE("control: an override waiting for its record is superseded by a new cut",
          "[pipeline][control][safety]") {
  ControlRig rig(kRules);
  heat(rig, "S01/P02");
  rig.command("S01/P02", "relay", Value(true), Writer::Operator, true);
  rig.feed("S01", "smoke", Value(true));  // the shed cuts every port
  rig.commitRecords();
  REQUIRE(rig.outcomes.size() == 1);
  CHECK(rig.outcomes[0].status == ActuationStatus::Superseded);
  CHECK(countValue(rig.writesTo("S01/P02", "relay"), true) == 0);
  for (const char* p : {"S01/P01", "S01/P02", "S01/P03"}) {
    CHECK(countValue(rig.writesTo(p, "relay"), false) >= 1);
  }
}

TEST_CASE("control: enabling a port is refused while its shed draws over the limit",
          "[pipeline][control][interlock]") {
  ControlRig rig(kRules);
  rig.feed("M01", "power_w", Value(8'500.0));
  rig.command("M01/P02", "relay", Value(true), Writer::Operator, false);
  REQUIRE(rig.outcomes.size() == 1);
  CHECK(rig.outcomes[0].status == ActuationStatus::Refused);
  CHECK(rig.outcomes[0].error.find("over its limit of 8000 W") != std::string::npos);
  // A cut is never refused by it.
  rig.command("M01/P02", "relay", Value(false), Writer::Operator, false);
  CHECK(rig.writesTo("M01/P02", "relay").size() == 1);
  rig.feed("M01", "power_w", Value(7'000.0));
  rig.command("M01/P03", "relay", Value(true), Writer::Operator, false);
  // The limit is asked again when the record is durable: the shed went over meanwhile.
  rig.feed("M01", "power_w", Value(9'000.0));
  rig.commitRecords();
  CHECK(rig.writesTo("M01/P03", "relay").empty());
  CHECK(rig.outcomes.back().status == ActuationStatus::Refused);
  // A shed without a meter: its ports' own readings add up.
  for (const char* p : {"S01/P01", "S01/P02", "S01/P03"}) {
    rig.feed(p, "power_w", Value(2'900.0));
  }
  rig.command("S01/P01", "relay", Value(true), Writer::Operator, false);
  CHECK(rig.outcomes.back().status == ActuationStatus::Refused);
}

TEST_CASE("control: a Modbus cut the device ignores fails after the driver's own retry and "
          "escalates at once",
          "[pipeline][control][safety]") {
  ControlRig rig(kRules);
  heat(rig, "M01/P05");
  auto ws = rig.writesTo("M01/P05", "relay");
  REQUIRE(ws.size() == 1);
  rig.result(ws[0], false, 2);  // wrote twice, read back the old value twice
  CHECK(rig.writesTo("M01/P05", "relay").size() == 1);
  bool failed = false;
  for (const auto& a : rig.outputs.raised) {
    if (a.rule == "actuation_failed") {
      failed = true;
      CHECK(a.severity == hgj::rules::Severity::Critical);
      CHECK(a.escalate_now);
    }
  }
  CHECK(failed);
  CHECK(rig.journal.states[ws[0].id] == "failed");
}

TEST_CASE("control: an MQTT cut the port ignores is sent twice, then fails and escalates",
          "[pipeline][control][safety]") {
  ControlRig rig(kRules);
  heat(rig, "S01/P03");
  REQUIRE(rig.writesTo("S01/P03", "relay").size() == 1);
  rig.run(9'900ms);
  CHECK(rig.writesTo("S01/P03", "relay").size() == 1);
  rig.run(200ms);  // confirm_timeout (10 s) of the shipped profile: sent again
  CHECK(rig.writesTo("S01/P03", "relay").size() == 2);
  rig.run(10s);
  CHECK(rig.writesTo("S01/P03", "relay").size() == 2);
  auto id = rig.writesTo("S01/P03", "relay")[0].id;
  CHECK(rig.journal.states[id] == "failed");
  bool failed = false;
  for (const auto& a : rig.outputs.raised) {
    failed = failed || (a.rule == "actuation_failed" && a.escalate_now);
  }
  CHECK(failed);
}

TEST_CASE("control: a first hazardous sample asks the device for a fresh one, rate-limited",
          "[pipeline][control][refresh]") {
  ControlRig rig(kRules);
  rig.feed("S01/P01", "temp_c", Value(75.0));
  REQUIRE(rig.driver.refreshes.size() == 1);
  CHECK(rig.driver.refreshes[0].device == rig.dev("S01/P01"));
  CHECK(rig.driver.refreshes[0].origin == "rule:port_over_temperature");
  // The refreshed sample confirms it; the hold then completes on the tick, without waiting
  // for the port's next regular report.
  rig.run(50ms);
  rig.feed("S01/P01", "temp_c", Value(75.5));
  CHECK(rig.driver.refreshes.size() == 1);
  rig.run(2s);
  CHECK(countValue(rig.writesTo("S01/P01", "relay"), false) == 1);

  // Unanswered: at the end of the hold it asks again (at most once a second).
  rig.feed("S01/P02", "temp_c", Value(80.0));
  REQUIRE(rig.driver.refreshes.size() == 2);
  rig.run(2'100ms);
  CHECK(rig.driver.refreshes.size() == 3);
  rig.run(1'100ms);
  CHECK(rig.driver.refreshes.size() == 4);
  CHECK(rig.writesTo("S01/P02", "relay").empty());
  rig.feed("S01/P02", "temp_c", Value(80.0));
  CHECK(countValue(rig.writesTo("S01/P02", "relay"), false) == 1);
}

TEST_CASE("control: cuts go out before their record, enables only after theirs",
          "[pipeline][control][safety]") {
  ControlRig rig(kRules);
  size_t records_before = rig.journal.records.size();
  rig.driver.on_write = [&](const hgj::drivers::WriteRequest& w) {
    if (w.value == Value(false)) {
      // The cut reaches the driver before anything was journaled for it.
      CHECK(rig.journal.records.size() == records_before);
    }
  };
  heat(rig, "S01/P01");
  REQUIRE(rig.journal.records.size() == records_before + 1);
  CHECK(rig.journal.records.back().state == "sent");
  CHECK(rig.journal.records.back().origin == "rule:port_over_temperature");
  rig.driver.on_write = nullptr;
  rig.command("S01/P02", "relay", Value(false), Writer::Operator, false);
  CHECK(rig.writesTo("S01/P02", "relay").size() == 1);  // an operator's cut: at once too
  rig.command("S01/P03", "relay", Value(true), Writer::Operator, false);
  CHECK(rig.writesTo("S01/P03", "relay").empty());
  CHECK(rig.journal.records.back().state == "decided");
  CHECK(rig.journal.records.back().origin == "api:operator");
  rig.commitRecords();
  CHECK(rig.writesTo("S01/P03", "relay").size() == 1);
}
