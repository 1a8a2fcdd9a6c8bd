#include <catch2/catch.hpp>

#include "gateway/uplink/summaries.h"
#include "tests/unit/uplink/uplink_fixtures.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;
using uplink::SummaryBuilder;
using uplink::SummaryType;

namespace {
constexpr int64_t kT0 = 1'764'201'600'000;  // 2025-11-27T00:00:00Z = 08:00 in +08:00
}

TEST_CASE("summaries: parking per level and zone, stale sensors unknown", "[uplink][summary]") {
  auto c = makeCompound();
  auto s = emptySnapshot(c);
  setPoint(s, "P-B1-0001", "occupied", true, kT0);
  setPoint(s, "P-B1-0002", "occupied", false, kT0);
  setPoint(s, "P-B1-0003", "occupied", true, kT0);
  countParking(s);
  SummaryBuilder b(uplink::SummaryConfig{});
  json p = b.parking(s);
  CHECK(p["total"] == 4);
  CHECK(p["occupied"] == 2);
  CHECK(p["free"] == 1);
  CHECK(p["unknown"] == 1);
  REQUIRE(p["levels"].size() == 1);
  CHECK(p["levels"][0]["level"] == "B1");
  CHECK(p["levels"][0]["zones"][1] == json{{"zone", "B"}, {"total", 2}, {"occupied", 1},
                                           {"free", 0}, {"unknown", 1}});
}

TEST_CASE("summaries: EV states, power, energy today across sessions, blocked spaces",
          "[uplink][summary]") {
  auto c = makeCompound();
  uplink::SummaryConfig cfg;
  cfg.ev_blocked_after = std::chrono::minutes(15);
  SummaryBuilder b(cfg);
  auto s = emptySnapshot(c);
  setPoint(s, "EV-01", "state", std::string("Idle"), kT0);
  setPoint(s, "EV-01", "power_kw", 0.0, kT0);
  setPoint(s, "EV-01", "energy_kwh", 100.0, kT0);
  setPoint(s, "EV-02", "state", std::string("charging"), kT0);
  setPoint(s, "EV-02", "power_kw", 6.8, kT0);
  setPoint(s, "EV-02", "energy_kwh", 2.0, kT0);
  setPoint(s, "P-B1-0004", "occupied", true, kT0);
  json e = b.ev(s, kT0 + 60'000);
  CHECK(e["piles"] == 2);
  CHECK(e["states"] == json{{"idle", 1}, {"charging", 1}});
  CHECK(e["power_kw"] == 6.8);
  CHECK(e["energy_today_kwh"] == 0.0);
  CHECK(e["blocked"] == 0);  // not yet 15 minutes

  setPoint(s, "EV-02", "energy_kwh", 5.5, kT0 + 20 * 60'000);   // +3.5
  setPoint(s, "EV-01", "energy_kwh", 101.0, kT0 + 20 * 60'000);  // +1
  e = b.ev(s, kT0 + 20 * 60'000);
  CHECK(e["energy_today_kwh"] == 4.5);
  CHECK(e["blocked"] == 1);
  CHECK(e["blocked_spaces"][0]["space"] == "P-B1-0004");
  CHECK(e["blocked_spaces"][0]["pile"] == "EV-01");

  // EV-02's session counter restarts: the new session's 1.5 kWh counts.
  setPoint(s, "EV-02", "energy_kwh", 1.5, kT0 + 30 * 60'000);
  CHECK(b.ev(s, kT0 + 30 * 60'000)["energy_today_kwh"] == 6.0);
  // The next local day starts at 0 (16:00 UTC = 00:00 +08:00).
  CHECK(b.ev(s, kT0 + 16 * 3'600'000LL)["energy_today_kwh"] == 0.0);

  // An offline pile counts as offline, whatever its last state.
  s.devices[c->deviceIndex("EV-02")].online = false;
  CHECK(b.ev(s, kT0 + 17 * 3'600'000LL)["states"] == json{{"idle", 1}, {"offline", 1}});
}

TEST_CASE("summaries: e-bike ports in use, cut, energy and shed smoke", "[uplink][summary]") {
  auto c = makeCompound();
  SummaryBuilder b(uplink::SummaryConfig{});
  auto s = emptySnapshot(c);
  setPoint(s, "S01/P01", "current_a", 1.8, kT0);
  setPoint(s, "S01/P01", "power_w", 400.0, kT0);
  setPoint(s, "S01/P01", "temp_c", 35.0, kT0);
  setPoint(s, "S01/P02", "current_a", 0.0, kT0);
  setPoint(s, "S01/P02", "relay", false, kT0);
  setPoint(s, "S01/P03", "current_a", 2.0, kT0);
  setPoint(s, "S01/P03", "power_w", 500.0, kT0);
  s.devices[c->deviceIndex("S01/P03")].safety_cut = true;
  setPoint(s, "S01", "smoke", true, kT0);
  json e = b.ebike(s, kT0);
  CHECK(e["ports"] == 3);
  CHECK(e["in_use"] == 1);
  CHECK(e["cut"] == 2);
  CHECK(e["smoke"] == 1);
  CHECK(e["power_w"] == 900.0);
  CHECK(e["by_shed"][0]["shed"] == "S01");
  CHECK(e["by_shed"][0]["max_temp_c"] == 35.0);
  // 900 W for ten minutes = 0.15 kWh.
  CHECK(b.ebike(s, kT0 + 10 * 60'000)["energy_today_kwh"] == 0.15);
}

TEST_CASE("summaries: device health counts by type", "[uplink][summary]") {
  auto c = makeCompound();
  auto s = emptySnapshot(c);
  setPoint(s, "P-B1-0001", "occupied", true, kT0);
  setPoint(s, "EV-01", "state", std::string("idle"), kT0);
  json h = SummaryBuilder(uplink::SummaryConfig{}).health(s);
  CHECK(h["devices"] == 10);
  CHECK(h["online"] == 2);
  CHECK(h["offline"] == 8);
  CHECK(h["never_seen"] == 8);
  CHECK(h["by_type"]["parking_sensor"] == json{{"total", 4}, {"online", 1}, {"offline", 3}});
}

TEST_CASE("summaries: the signature ignores power and energy, not counts", "[uplink][summary]") {
  auto c = makeCompound();
  SummaryBuilder b(uplink::SummaryConfig{});
  auto s = emptySnapshot(c);
  setPoint(s, "EV-01", "state", std::string("charging"), kT0);
  setPoint(s, "EV-01", "power_kw", 7.0, kT0);
  auto sig1 = SummaryBuilder::signature(SummaryType::Ev, b.ev(s, kT0));
  setPoint(s, "EV-01", "power_kw", 3.0, kT0);
  CHECK(SummaryBuilder::signature(SummaryType::Ev, b.ev(s, kT0)) == sig1);
  setPoint(s, "EV-01", "state", std::string("idle"), kT0);
  CHECK(SummaryBuilder::signature(SummaryType::Ev, b.ev(s, kT0)) != sig1);
}
