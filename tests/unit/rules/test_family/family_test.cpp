#include <catch2/catch.hpp>

#include "rules/rule_family.h"
#include "tests/unit/rules/rules_rig.h"
#include "tests/unit/rules/test_family/within_rule.h"

using namespace std::chrono_literals;
using hgj::model::Value;
using hgj::rules::test::Rig;

namespace {

const char* kWithin = R"Y(
rules:
  - name: port_warm
    kind: within
    select: {type: ebike_port}
    point: temp_c
    from: 40
    to: 50
    for: 2s
)Y";

hgj::rules::RulesConfig load(const char* yaml, hgj::model::Compound& compound,
                             const std::vector<const hgj::rules::RuleFamily*>& families,
                             std::string* problems) {
  hgj::core::Diagnostics diag;
  auto root = hgj::core::loadYamlText(yaml, "rules.yaml", diag);
  REQUIRE(root);
  auto cfg = hgj::rules::parseRulesConfig(*root, compound, families);
  *problems = diag.format();
  return cfg;
}

} // namespace

TEST_CASE("rule families: a kind from a test-only folder, registered with one line, is parsed, "
          "evaluated by the engine and raises with its default message",
          "[rules][family]") {
  Rig rig("rules: []\n");
  auto families = hgj::rules::builtinRuleFamilies();
  families.push_back(&hgj::rules::within::kFamily);  // the registration line

  std::string problems;
  rig.config = std::make_unique<hgj::rules::RulesConfig>(
      load(kWithin, *rig.compound, families, &problems));
  INFO(problems);
  REQUIRE(problems.empty());
  REQUIRE(rig.config->rules.size() == 1);
  CHECK(rig.config->rules[0].family == &hgj::rules::within::kFamily);
  rig.engine = std::make_unique<hgj::rules::Engine>(*rig.config, *rig.compound, rig.clock);

  // Out of the band: nothing. In it for its hold (two samples): raised, with the family's
  // default message. Back out: cleared.
  rig.feed("S01/P02", "temp_c", Value(35.0));
  rig.run(3s);
  CHECK(rig.sink.raised.empty());
  rig.feed("S01/P02", "temp_c", Value(45.0));
  rig.run(1s);
  rig.feed("S01/P02", "temp_c", Value(46.0));
  rig.run(2s);
  rig.feed("S01/P02", "temp_c", Value(46.0));
  REQUIRE(rig.sink.raisedCount("port_warm") == 1);
  CHECK(rig.sink.raised[0].device == rig.dev("S01/P02"));
  CHECK(rig.sink.raised[0].message == "S01/P02: temp_c 46 within 40..50");
  rig.feed("S01/P02", "temp_c", Value(55.0));
  rig.run(1s);
  REQUIRE(rig.sink.cleared.size() == 1);
  CHECK(rig.sink.cleared[0].rule == "port_warm");
}

TEST_CASE("rule families: without its registration line the kind is unknown, and a family's "
          "keys are its own",
          "[rules][family]") {
  Rig rig("rules: []\n");
  std::string problems;
  load(kWithin, *rig.compound, hgj::rules::builtinRuleFamilies(), &problems);
  CHECK(problems.find("rules.yaml:4: rules[0].kind: expected threshold | condition | state | "
                      "offline | held | correlation, got \"within\"") != std::string::npos);

  auto families = hgj::rules::builtinRuleFamilies();
  families.push_back(&hgj::rules::within::kFamily);
  load(R"Y(
rules:
  - {name: a, kind: within, select: {type: ebike_port}, point: temp_c, from: 1, to: 2, op: ">"}
  - {name: b, kind: threshold, select: {type: ebike_port}, point: temp_c, op: ">", value: 1,
     from: 1}
)Y",
       *rig.compound, families, &problems);
  CHECK(problems.find("rules[0].op: unknown key") != std::string::npos);
  CHECK(problems.find("rules[1].from: unknown key") != std::string::npos);
}
