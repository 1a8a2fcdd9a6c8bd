#include <optional>

#include <catch2/catch.hpp>

#include "tests/unit/rules/rules_rig.h"

using namespace std::chrono_literals;
using hgj::model::Quality;
using hgj::model::Value;
using hgj::rules::occupancy::SpaceState;
using hgj::rules::test::Rig;

namespace {

const char* kOccupancy = R"Y(
occupancy:
  debounce: 5s
  thresholds:
    - {name: level_full, scope: level, free_at_most: 0, clear_free_at_least: 2, for: 10s,
       max_unknown_ratio: 0.2, message: "{scope} full ({free}/{total})"}
  display_type: display
  display_min_interval: 1s
)Y";

void fillLevel(Rig& rig, const char* level, bool occupied) {
  for (int n = 1; n <= 8; ++n) {
    rig.feed(std::string("P-") + level + "-000" + std::to_string(n), "occupied", Value(occupied));
  }
}

} // namespace

TEST_CASE("occupancy: never-seen sensors are unknown, never free", "[rules][occupancy]") {
  Rig rig(kOccupancy);
  const auto& occ = rig.engine->occupancy();
  CHECK(occ.total().total == 16);
  CHECK(occ.total().unknown == 16);
  CHECK(occ.total().free == 0);
  REQUIRE(occ.levels().size() == 2);
  CHECK(occ.levels()[0].level == "B1");
  REQUIRE(occ.levels()[0].zones.size() == 4);
  CHECK(occ.levels()[0].zones[0].zone == "A");
  CHECK(occ.levels()[0].zones[0].counts.total == 2);
  rig.feed("P-B1-0001", "occupied", Value(false));
  rig.feed("P-B1-0002", "occupied", Value(true));
  CHECK(occ.total().free == 1);
  CHECK(occ.total().occupied == 1);
  CHECK(occ.total().unknown == 14);
  CHECK(occ.levels()[0].zones[0].counts.free == 1);
  CHECK(occ.space(rig.dev("P-B1-0002")).state == SpaceState::Occupied);
}

TEST_CASE("occupancy: a space changes only after its sensor held the new state",
          "[rules][occupancy]") {
  Rig rig(kOccupancy);
  const auto& occ = rig.engine->occupancy();
  rig.feed("P-B1-0001", "occupied", Value(false));
  REQUIRE(occ.total().free == 1);
  uint64_t v = occ.version();
  // A car passing over the sensor: occupied for 2 s.
  rig.feed("P-B1-0001", "occupied", Value(true));
  rig.run(2s);
  rig.feed("P-B1-0001", "occupied", Value(false));
  rig.run(10s);
  CHECK(occ.total().free == 1);
  CHECK(occ.version() == v);
  // A car that parks.
  rig.feed("P-B1-0001", "occupied", Value(true));
  rig.run(4800ms);
  CHECK(occ.total().free == 1);
  rig.run(400ms);
  CHECK(occ.total().free == 0);
  CHECK(occ.total().occupied == 1);
  CHECK(occ.pending() == 0);
}

TEST_CASE("occupancy: stale sensors become unknown at once", "[rules][occupancy]") {
  Rig rig(kOccupancy);
  const auto& occ = rig.engine->occupancy();
  rig.feed("P-B1-0001", "occupied", Value(false));
  rig.feed("P-B1-0002", "occupied", Value(false));
  rig.offline("P-B1-0001");
  CHECK(occ.total().free == 1);
  CHECK(occ.total().unknown == 15);
  rig.feed("P-B1-0002", "occupied", Value(false), Quality::Bad);
  CHECK(occ.total().free == 0);
}

TEST_CASE("occupancy: a full level raises after its hold and clears with free spaces",
          "[rules][occupancy]") {
  Rig rig(kOccupancy);
  fillLevel(rig, "B1", true);
  rig.run(9s);
  CHECK(rig.sink.raised.empty());
  rig.run(1200ms);
  REQUIRE(rig.sink.raised.size() == 1);
  CHECK(rig.sink.raised[0].rule == "level_full:B1");
  CHECK(rig.sink.raised[0].device == hgj::model::kNoDevice);
  CHECK(rig.sink.raised[0].message == "B1 full (0/8)");
  // B2 is all unknown: no verdict.
  rig.feed("P-B1-0001", "occupied", Value(false));
  rig.run(6s);
  CHECK(rig.sink.cleared.empty());  // one free, clears at 2
  rig.feed("P-B1-0002", "occupied", Value(false));
  rig.run(6s);
  REQUIRE(rig.sink.cleared.size() == 1);
  CHECK(rig.sink.cleared[0].rule == "level_full:B1");
}

TEST_CASE("occupancy: free counts are written to the display only when they change",
          "[rules][occupancy]") {
  Rig rig(kOccupancy);
  rig.tick();
  auto disp = rig.dev("DISP-ENTRANCE");
  size_t first = rig.sink.writes.size();
  CHECK(first == 4);  // free_total, free_B1, free_B2, free_B1_A
  for (const auto& w : rig.sink.writes) {
    CHECK(w.device == disp);
    CHECK(w.value == Value(0.0));
  }
  rig.sink.reset();
  rig.run(3s);
  CHECK(rig.sink.writes.empty());
  rig.feed("P-B2-0003", "occupied", Value(false));
  rig.run(1s);
  REQUIRE(rig.sink.writes.size() == 2);  // free_total and free_B2
  for (const auto& w : rig.sink.writes) {
    CHECK(w.value == Value(1.0));
    CHECK((w.point == rig.pt("free_total") || w.point == rig.pt("free_B2")));
  }
}

TEST_CASE("occupancy: display points must name a level or zone", "[rules][occupancy][config]") {
  hgj::rules::test::CompoundSpec spec;
  auto compound = hgj::rules::test::makeCompound(spec);
  // Rename B2's spaces to B3: the display's free_B2 no longer names a level.
  for (auto& d : compound->devices) {
    if (d.location.level == "B2" && d.type() == "parking_sensor") {
      d.location.level = "B3";
    }
  }
  std::string problems = Rig::problems("occupancy: {display_type: display, debonce: 5s}", *compound);
  CHECK(problems.find("occupancy.debonce: unknown key (did you mean \"debounce\"?)") !=
        std::string::npos);
  CHECK(problems.find("point \"free_B2\" names no level, zone or category") != std::string::npos);
}

TEST_CASE("occupancy: free counts per space category, debounced like every other count",
          "[rules][occupancy][category]") {
  hgj::rules::test::CompoundSpec spec;
  spec.visitor_spaces = 2;  // P-B1-0001, P-B1-0002; P-B2-0007/8 are ev (linked), the rest leased
  Rig rig(kOccupancy, spec);
  const auto& occ = rig.engine->occupancy();
  REQUIRE(occ.categories().size() == 3);
  CHECK(occ.categories()[0].category == "leased");
  CHECK(occ.categories()[1].category == "visitor");
  CHECK(occ.categories()[2].category == "ev");
  CHECK(occ.categories()[0].counts.total == 12);
  CHECK(occ.categories()[1].counts.total == 2);
  CHECK(occ.categories()[2].counts.total == 2);
  CHECK(occ.categories()[1].counts.unknown == 2);

  rig.feed("P-B1-0001", "occupied", Value(false));
  rig.feed("P-B1-0002", "occupied", Value(false));
  rig.run(1s);
  // Leaving unknown counts at once.
  CHECK(occ.categories()[1].counts.free == 2);
  rig.feed("P-B1-0001", "occupied", Value(true));
  rig.run(2s);
  CHECK(occ.categories()[1].counts.free == 2);  // still within the 5 s debounce
  CHECK(occ.space(rig.dev("P-B1-0001")).state == SpaceState::Free);
  rig.run(4s);
  CHECK(occ.categories()[1].counts.free == 1);
  CHECK(occ.categories()[1].counts.occupied == 1);
  CHECK(occ.space(rig.dev("P-B1-0001")).category == 1);
  // The site total and the categories add up to the same spaces.
  int sum = 0;
  for (const auto& c : occ.categories()) {
    sum += c.counts.total;
  }
  CHECK(sum == occ.total().total);
}

TEST_CASE("occupancy: a gate display shows the visitor free count (free_visitor)",
          "[rules][occupancy][category]") {
  hgj::rules::test::CompoundSpec spec;
  spec.visitor_spaces = 2;
  Rig rig(kOccupancy, spec);
  rig.tick();
  const auto visitor = rig.pt("free_visitor");
  auto last_visitor = [&]() -> std::optional<Value> {
    std::optional<Value> v;
    for (const auto& w : rig.sink.writes) {
      if (w.point == visitor) {
        v = w.value;
      }
    }
    return v;
  };
  REQUIRE(last_visitor() == Value(0.0));
  rig.sink.reset();
  rig.feed("P-B1-0001", "occupied", Value(false));
  rig.feed("P-B1-0002", "occupied", Value(false));
  rig.feed("P-B1-0003", "occupied", Value(false));  // leased: not on the visitor count
  rig.run(2s);
  CHECK(last_visitor() == Value(2.0));
  rig.sink.reset();
  rig.feed("P-B1-0002", "occupied", Value(true));
  rig.run(6s);
  CHECK(last_visitor() == Value(1.0));
}
