#include <catch2/catch.hpp>

#include "tests/integration/uplink/uplink_common.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;
using std::chrono::milliseconds;

TEST_CASE("uplink thingsboard: gateway API topics and JSON shapes, RPC answered",
          "[uplink][integration][thingsboard]") {
  Broker broker;
  Recorder rec(broker.url(), {"v1/#", "hgj/#"});
  TempDir dir;
  World w;
  constexpr int64_t kT = 1'700'000'000'000;
  auto snap = std::make_shared<pipeline::Snapshot>(emptySnapshot(w.compound));
  setPoint(*snap, "P-B1-0001", "occupied", true, kT);
  setPoint(*snap, "EV-01", "state", std::string("charging"), kT + 1);
  setPoint(*snap, "EV-01", "power_kw", 6.8, kT + 1);
  countParking(*snap);
  w.read_model.publish(snap);
  auto cfg = testConfig(broker.url());
  cfg.mode = uplink::Mode::ThingsBoard;
  cfg.thingsboard_access_token = "GW_TOKEN";
  cfg.summaries.on_change = true;
  cfg.telemetry.enabled = true;
  cfg.telemetry.period = milliseconds(100);
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();

  // Every device announced with its type, then its attributes.
  // (Announcements are repeated after a reconnect; the first ten are the first round.)
  REQUIRE(waitFor([&] { return rec.on("v1/gateway/connect").size() >= 10; }));
  auto connects = jsonOn(rec, "v1/gateway/connect");
  CHECK(connects[0] == json{{"device", "P-B1-0001"}, {"type", "parking_sensor"}});
  CHECK(connects[4] == json{{"device", "EV-01"}, {"type", "ev_pile"}});
  CHECK(connects[7] == json{{"device", "S01/P01"}, {"type", "ebike_port"}});
  REQUIRE(waitFor([&] { return !rec.on("v1/gateway/attributes").empty(); }));
  json attrs = jsonOn(rec, "v1/gateway/attributes")[0];
  CHECK(attrs["P-B1-0001"] == json{{"type", "parking_sensor"},
                                   {"profile", "parking_sensor_mqtt"},
                                   {"grid", "G1"},
                                   {"level", "B1"},
                                   {"zone", "A"}});
  CHECK(attrs.size() == 10);

  // Summaries are the gateway device's own telemetry, flattened.
  REQUIRE(waitFor([&] {
    for (const auto& j : jsonOn(rec, "v1/devices/me/telemetry")) {
      if (j["values"].contains("parking_free")) {
        return true;
      }
    }
    return false;
  }));
  for (const auto& j : jsonOn(rec, "v1/devices/me/telemetry")) {
    REQUIRE(j.size() == 2);
    CHECK(j["ts"].is_number_integer());
    CHECK(j["values"].is_object());
    if (j["values"].contains("parking_free")) {
      CHECK(j["values"]["parking_total"] == 4);
      CHECK(j["values"]["parking_occupied"] == 1);
      CHECK(j["values"]["parking_levels_B1_zones_A_occupied"] == 1);
    }
    if (j["values"].contains("ev_power_kw")) {
      CHECK(j["values"]["ev_power_kw"] == 6.8);
      CHECK(j["values"]["ev_states_charging"] == 1);
    }
  }

  // Raw telemetry, batched per device and timestamp.
  REQUIRE(waitFor([&] {
    for (const auto& j : jsonOn(rec, "v1/gateway/telemetry")) {
      if (j.contains("EV-01")) {
        return true;
      }
    }
    return false;
  }));
  for (const auto& j : jsonOn(rec, "v1/gateway/telemetry")) {
    if (j.contains("EV-01")) {
      CHECK(j["EV-01"] == json::array({{{"ts", kT + 1},
                                        {"values", {{"state", "charging"}, {"power_kw", 6.8}}}}}));
      CHECK(j["P-B1-0001"] == json::array({{{"ts", kT}, {"values", {{"occupied", true}}}}}));
    }
  }

  // An alert of a device becomes that device's telemetry.
  REQUIRE(up.enqueue(uplink::Kind::Alert, "alerts",
                     json{{"id", 12}, {"device", "S01/P02"}, {"rule", "ebike_overtemp"},
                          {"severity", "critical"}, {"state", "raised"}, {"source_ts", kT}}));
  REQUIRE(waitFor([&] {
    for (const auto& j : jsonOn(rec, "v1/gateway/telemetry")) {
      if (j.contains("S01/P02")) {
        const json& e = j["S01/P02"][0];
        CHECK(e["values"] == json{{"alert_id", 12}, {"alert_rule", "ebike_overtemp"},
                                  {"alert_severity", "critical"}, {"alert_state", "raised"},
                                  {"alert_source_ts", kT}});
        return true;
      }
    }
    return false;
  }));

  // RPC to a device through the gateway, and server-side RPC to the gateway itself.
  rec.publish("v1/gateway/rpc",
              R"({"device":"S01/P01","data":{"id":5,"method":"write","params":{"point":"relay","value":false}}})");
  REQUIRE(waitFor([&] {
    for (const auto& j : jsonOn(rec, "v1/gateway/rpc")) {
      if (j.contains("id") && j["id"] == 5) {
        CHECK(j == json{{"device", "S01/P01"},
                        {"id", 5},
                        {"data", {{"success", true}, {"status", 200},
                                  {"message", "written and verified"}}}});
        return true;
      }
    }
    return false;
  }));
  CHECK(w.sink.received().at(0).device == "S01/P01");
  rec.publish("v1/devices/me/rpc/request/77",
              R"({"method":"ack_alert","params":{"alert_id":8,"by":"Wang"}})");
  REQUIRE(waitFor([&] { return !rec.on("v1/devices/me/rpc/response/77").empty(); }));
  CHECK(jsonOn(rec, "v1/devices/me/rpc/response/77")[0] ==
        json{{"success", true}, {"status", 200}, {"message", "alert 8 acknowledged by Wang"}});

  // Nothing on the native topics in this mode, and our own answers are not taken for requests.
  CHECK(rec.on("hgj/site1/status").empty());
  CHECK(w.metrics.value("hgj_uplink_commands_total", {{"result", "refused"}}) == 0);
  CHECK(w.sink.received().size() == 2);
}
