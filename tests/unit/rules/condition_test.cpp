#include <catch2/catch.hpp>

#include "rules/condition/expression.h"
#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Quality;
using hgj::model::Value;
using hgj::rules::test::Rig;

namespace {

const char* kHotAndDrawing = R"Y(
rules:
  - name: port_hot_while_charging
    kind: condition
    select: {type: ebike_port}
    expr: "current_a > 0.5 && temp_c > 55"
    clear_expr: "temp_c < 50 || current_a < 0.1"
    for: 5s
    severity: warning
)Y";

} // namespace

TEST_CASE("condition: an expression over two points fires after its hold", "[rules][condition]") {
  Rig rig(kHotAndDrawing);
  rig.feed("S01/P02", "current_a", Value(1.2));
  rig.feed("S01/P02", "temp_c", Value(57.0));
  rig.advance(3s);
  rig.feed("S01/P02", "temp_c", Value(57.5));
  rig.tick();
  CHECK(rig.sink.raised.empty());
  rig.run(2200ms);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].value == "current_a=1.2 temp_c=57.5");
}

TEST_CASE("condition: one sample satisfying the expression does not act", "[rules][condition]") {
  Rig rig(kHotAndDrawing);
  rig.feed("S01/P02", "temp_c", Value(57.0));
  rig.feed("S01/P02", "current_a", Value(1.2));  // the first time the whole expression is true
  rig.run(20s);
  CHECK(rig.sink.raised.empty());
}

TEST_CASE("condition: the clear expression gives hysteresis", "[rules][condition]") {
  Rig rig(kHotAndDrawing);
  rig.feed("S01/P02", "current_a", Value(1.2));
  rig.feed("S01/P02", "temp_c", Value(57.0));
  rig.advance(5s);
  rig.feed("S01/P02", "temp_c", Value(57.0));
  REQUIRE(rig.sink.raised.size() == 1);
  rig.feed("S01/P02", "temp_c", Value(52.0));  // the expression is false but not clear yet
  CHECK(rig.sink.cleared.empty());
  rig.feed("S01/P02", "current_a", Value(0.0));
  CHECK(rig.sink.cleared.size() == 1);
}

TEST_CASE("condition: a stale variable makes the expression unknown", "[rules][condition]") {
  Rig rig(kHotAndDrawing);
  rig.feed("S01/P02", "current_a", Value(1.2), Quality::Stale);
  for (int i = 0; i < 10; ++i) {
    rig.feed("S01/P02", "temp_c", Value(70.0));
    rig.advance(1s);
    rig.tick();
  }
  CHECK(rig.sink.raised.empty());
}

TEST_CASE("condition: expressions are compiled once with muParser and checked at load",
          "[rules][condition][config]") {
  auto compound = hgj::rules::test::makeCompound();
  std::string err;
  auto e = hgj::rules::Expression::compile("current_a > 0.5 && (temp_c > 55 || power_w >= 900)",
                                           *compound, &err);
  REQUIRE(e);
  CHECK(e->points().size() == 3);
  CHECK_FALSE(hgj::rules::Expression::compile("current_a > ", *compound, &err));
  CHECK(err.find("invalid expression") == 0);
  CHECK_FALSE(hgj::rules::Expression::compile("curent_a > 1", *compound, &err));
  CHECK(err.find("did you mean \"current_a\"") != std::string::npos);

  std::string problems = Rig::problems(R"Y(
rules:
  - {name: a, kind: condition, select: {type: ebike_port}, expr: "temp_c >> 3"}
  - {name: b, kind: condition, select: {type: ebike_port}, expr: "occupied > 0"}
  - {name: c, kind: condition, select: {type: ev_pile}, expr: "state > 0"}
)Y",
                                       *compound);
  CHECK(problems.find("rules.yaml:3: rules[0].expr: invalid expression") != std::string::npos);
  CHECK(problems.find("rules[1].expr: profile \"ebike_port_mqtt\" has no point \"occupied\"") !=
        std::string::npos);
  CHECK(problems.find("rules[2].expr: point \"state\" is text") != std::string::npos);
}
