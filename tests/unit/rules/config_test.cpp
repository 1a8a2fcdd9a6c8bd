#include <catch2/catch.hpp>

#include <algorithm>

#include "gateway/config/config.h"
#include "rules/rule_parse.h"
#include "tests/unit/rules/rules_rig.h"

using hgj::rules::test::Rig;

TEST_CASE("rules config: the shipped rule files load against the example-shaped compound",
          "[rules][config]") {
  hgj::rules::test::CompoundSpec spec;
  spec.modbus_sheds = 1;
  for (const char* file : {"conf/rules.yaml", "conf/rules-bench.yaml"}) {
    INFO(file);
    auto compound = hgj::rules::test::makeCompound(spec);
    hgj::core::Diagnostics diag;
    auto root = hgj::core::loadYamlFile(std::string(HGJ_SOURCE_DIR) + "/" + file, diag);
    REQUIRE(root);
    auto cfg = hgj::rules::parseRulesConfig(*root, *compound);
    INFO(diag.format());
    CHECK(diag.ok());
    CHECK_FALSE(cfg.rules.empty());
  }
}

TEST_CASE("rules config: the shipped rules load against the shipped example compound",
          "[rules][config]") {
  hgj::core::Diagnostics diag;
  auto gw = hgj::config::loadConfig(std::string(HGJ_SOURCE_DIR) + "/conf/gateway.yaml", {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  const hgj::rules::RulesConfig& cfg = gw.rules;
  hgj::model::Compound& c = *gw.compound;
  auto count = [&](const std::string& rule) {
    for (const auto& r : cfg.rules) {
      if (r.name == rule) {
        return r.devices.size();
      }
    }
    return size_t{0};
  };
  CHECK(count("port_over_temperature") >= 370);
  CHECK(count("shed_smoke") >= 37);
  CHECK(count("ev_space_blocked") == 65);
  CHECK(count("zombie_vehicle") >= 1000);
  hgj::core::ManualClock clock;
  hgj::rules::Engine engine(cfg, c, clock);
  CHECK(engine.occupancy().total().total >= 1000);
  CHECK(engine.occupancy().total().unknown == engine.occupancy().total().total);
}

TEST_CASE("rules config: the default rule set has every kind the issue lists", "[rules][config]") {
  auto compound = hgj::rules::test::makeCompound();
  hgj::core::Diagnostics diag;
  auto root = hgj::core::loadYamlFile(std::string(HGJ_SOURCE_DIR) + "/conf/rules.yaml", diag);
  REQUIRE(root);
  auto cfg = hgj::rules::parseRulesConfig(*root, *compound);
  std::vector<std::string> names;
  for (const auto& r : cfg.rules) {
    names.push_back(r.name);
  }
  for (const char* n :
       {"port_over_temperature", "shed_smoke", "port_over_power", "session_over_8h",
        "device_offline", "zombie_vehicle", "zombie_vehicle_long", "ev_space_blocked",
        "overstay_after_charging", "co_fans", "co_alarm"}) {
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
  }
  REQUIRE(cfg.occupancy.thresholds.size() == 1);
  CHECK(cfg.occupancy.thresholds[0].name == "level_full");
  CHECK(cfg.occupancy.displays.size() == 5);  // free_total, free_B1, free_B2, free_B1_A, free_visitor
  const auto& t = cfg.rules[0];
  CHECK(t.name == "port_over_temperature");
  CHECK(t.hold == std::chrono::seconds(10));
  CHECK(t.min_samples == 2);
  REQUIRE(t.clear_when.size() == 1);
  CHECK(t.clear_when[0].number == 55);
}

TEST_CASE("rules config: problems are reported with file, line, key path and did-you-mean",
          "[rules][config]") {
  auto compound = hgj::rules::test::makeCompound();
  std::string p = Rig::problems(R"Y(rules:
  - name: a
    kind: threshold
    select: {type: ebike_prot}
    point: temp_c
    op: ">"
    value: 60
  - name: b
    kind: treshold
  - name: c
    kind: threshold
    select: {type: ebike_port}
    point: temp
    op: ">"
    value: 60
    hold: 10s
  - name: d
    kind: state
    select: {type: ebike_shed}
    point: smoke
    equals: true
    message: "{device} {temperature}"
    actions:
      - {target: children, point: current_a, value: 0}
  - name: d
    kind: held
    select: {type: parking_sensor}
    point: occupied
    equals: maybe
    for: 7d
  - name: e
    kind: threshold
    select: {type: ebike_port}
    point: temp_c
    op: ">"
    value: 60
    clear: 65
  - {name: g, kind: offline, select: {grid: G9}}
occupancy: {thresholds: [{name: full, free_at_most: 3, clear_free_at_least: 2}]}
)Y",
                                *compound);
  INFO(p);
  CHECK(p.find("rules.yaml:4: rules[0].select.type: unknown device type \"ebike_prot\" (no profile "
               "has it) (did you mean \"ebike_port\"?)") != std::string::npos);
  CHECK(p.find("rules.yaml:9: rules[1].kind: expected threshold | condition | state | offline | "
               "held | correlation, got \"treshold\" (did you mean \"threshold\"?)") !=
        std::string::npos);
  CHECK(p.find("rules.yaml:13: rules[2].point: profile \"ebike_port_mqtt\" (type ebike_port) has "
               "no point \"temp\" (did you mean \"temp_c\"?)") != std::string::npos);
  CHECK(p.find("rules.yaml:16: rules[2].hold: unknown key") != std::string::npos);
  CHECK(p.find("rules[3].message: unknown placeholder {temperature}") != std::string::npos);
  CHECK(p.find("rules[3].actions[0].point: point \"current_a\" of profile ebike_port_mqtt is not "
               "writable") != std::string::npos);
  CHECK(p.find("rules[4].name: duplicate rule name \"d\"") != std::string::npos);
  CHECK(p.find("rules[6].select.grid: unknown grid \"G9\"") != std::string::npos);
  CHECK(p.find("value \"maybe\" does not fit point occupied (bool)") != std::string::npos);
  CHECK(p.find("rules[5].clear: the clear value must be on the safe side of the limit") !=
        std::string::npos);
  CHECK(p.find("occupancy.thresholds[0].clear_free_at_least: must be above free_at_most") !=
        std::string::npos);
}

TEST_CASE("rules config: an undefined rules file gives no rules", "[rules][config]") {
  auto compound = hgj::rules::test::makeCompound();
  hgj::core::Diagnostics diag;
  auto root = hgj::core::loadYamlText("", "rules.yaml", diag);
  REQUIRE(root);
  auto cfg = hgj::rules::parseRulesConfig(*root, *compound);
  CHECK(diag.ok());
  CHECK(cfg.rules.empty());
  CHECK(cfg.occupancy.enabled);
}

TEST_CASE("rules config: device selection by id glob, grid, tag, level and link",
          "[rules][config]") {
  CHECK(hgj::rules::globMatch("S0*/P1?", "S01/P10"));
  CHECK_FALSE(hgj::rules::globMatch("S0*/P1?", "S01/P01"));
  CHECK(hgj::rules::globMatch("*", ""));
  auto compound = hgj::rules::test::makeCompound();
  compound->devices[compound->deviceIndex("P-B1-0002")].tags["vip"] = "yes";
  hgj::core::Diagnostics diag;
  auto sel = [&](const std::string& yaml) {
    auto n = hgj::core::loadYamlText(yaml, "sel.yaml", diag);
    return hgj::rules::parseSelect(*n, *compound).size();
  };
  CHECK(sel("{id: \"S02/*\"}") == 10);
  CHECK(sel("{id: [\"S01/P01\", \"S02/P01\"]}") == 2);
  CHECK(sel("{type: parking_sensor, level: B1, zone: A}") == 2);
  CHECK(sel("{type: parking_sensor, linked_type: ev_pile}") == 2);
  CHECK(sel("{grid: G2}") == 22);
  CHECK(sel("{tag: vip}") == 1);
  CHECK(sel("{tag: vip=no}") == 0);
  CHECK(diag.ok());
}
