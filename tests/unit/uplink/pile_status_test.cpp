// The dashboard (GET /api/v1/ev) and the upstream EV summary read a pile's state through one
// classification (model/pile_status.h): they must agree on which occupied spaces are blocked.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "gateway/api/views.h"
#include "gateway/uplink/summaries.h"
#include "model/pile_status.h"
#include "tests/unit/uplink/uplink_fixtures.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;

namespace {

constexpr int64_t kT0 = 1'764'201'600'000;

struct Case {
  std::string state;
  const char* status;  ///< the dashboard's class
};

} // namespace

TEST_CASE("pile status: the dashboard and the upstream summary agree on blocked spaces for IEC "
          "states A-F and the OCPP and vendor names",
          "[uplink][summary][api]") {
  const std::vector<Case> cases = {
      // IEC 61851: A not connected, B connected, C charging, D charging with ventilation,
      // E and F errors.
      {"A", "idle"},
      {"B", "idle"},
      {"C", "charging"},
      {"D", "charging"},
      {"E", "faulted"},
      {"F", "faulted"},
      {"c", "charging"},
      // OCPP 1.6 status names (what the shipped profiles report).
      {"Available", "idle"},
      {"Preparing", "idle"},
      {"Charging", "charging"},
      {"SuspendedEV", "charging"},
      {"SuspendedEVSE", "charging"},
      {"Finishing", "charging"},
      {"Reserved", "idle"},
      {"Unavailable", "faulted"},
      {"Faulted", "faulted"},
      // Vendor words.
      {"charging", "charging"},
      {"idle", "idle"},
      {"fault", "faulted"},
      {"error", "faulted"},
  };
  auto c = makeCompound();
  uplink::SummaryConfig cfg;
  cfg.ev_blocked_after = std::chrono::minutes(15);
  for (const auto& k : cases) {
    INFO("state " << k.state);
    uplink::SummaryBuilder builder(cfg);
    auto s = emptySnapshot(c);
    // P-B1-0004 is EV-01's space, occupied for 20 minutes (past the summary's hold).
    setPoint(s, "P-B1-0004", "occupied", true, kT0);
    setPoint(s, "EV-01", "state", k.state, kT0);
    const int64_t now = kT0 + 20 * 60'000;

    json dash = api::evView(s);
    json pile;
    for (const auto& p : dash["piles"]) {
      if (p["id"] == "EV-01") {
        pile = p;
      }
    }
    REQUIRE(pile.is_object());
    CHECK(pile["status"] == k.status);
    const bool dashboard_blocked = pile["space"]["blocked"].get<bool>();
    const bool upstream_blocked = builder.ev(s, now)["blocked"].get<int>() == 1;
    CHECK(dashboard_blocked == upstream_blocked);
    CHECK(dashboard_blocked == (std::string(k.status) != "charging"));
    CHECK(model::pileStatusName(model::pileStatus(k.state)) == std::string(k.status));
  }
}

TEST_CASE("pile status: no state is unknown, and an unknown pile's occupied space is blocked "
          "for both",
          "[uplink][summary][api]") {
  CHECK(model::pileStatus("") == model::PileStatus::Unknown);
  auto c = makeCompound();
  uplink::SummaryConfig cfg;
  cfg.ev_blocked_after = std::chrono::minutes(15);
  uplink::SummaryBuilder builder(cfg);
  auto s = emptySnapshot(c);
  setPoint(s, "P-B1-0004", "occupied", true, kT0);
  setPoint(s, "EV-01", "power_kw", 0.0, kT0);  // online, no state yet
  json dash = api::evView(s);
  json pile;
  for (const auto& p : dash["piles"]) {
    if (p["id"] == "EV-01") {
      pile = p;
    }
  }
  REQUIRE(pile.is_object());
  CHECK(pile["status"] == "unknown");
  CHECK(pile["space"]["blocked"] == true);
  CHECK(builder.ev(s, kT0 + 20 * 60'000)["blocked"] == 1);
}
