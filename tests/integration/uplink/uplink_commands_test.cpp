#include <catch2/catch.hpp>

#include "tests/integration/uplink/uplink_common.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

/// Sends a command and waits for the result with its id.
json call(Recorder& rec, const std::string& payload, const json& id) {
  rec.publish("hgj/site1/cmd", payload);
  json found;
  waitFor([&] {
    for (const auto& r : jsonOn(rec, "hgj/site1/cmd/result")) {
      if (r.is_object() && r["id"] == id) {
        found = r;
        return true;
      }
    }
    return false;
  });
  return found;
}

} // namespace

TEST_CASE("uplink commands: writes, refusals, acks, summaries on request, each answered",
          "[uplink][integration][commands]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/cmd/result", "hgj/site1/summary/#"});
  TempDir dir;
  World w;
  auto snap = std::make_shared<pipeline::Snapshot>(emptySnapshot(w.compound));
  setPoint(*snap, "P-B1-0001", "occupied", true, 1'700'000'000'000);
  countParking(*snap);
  w.read_model.publish(snap);
  auto cfg = testConfig(broker.url());
  cfg.commands.timeout = milliseconds(300);
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));

  json r = call(rec,
                R"({"id":"w1","method":"write","device":"S01/P01","point":"relay","value":false,"override":true})",
                "w1");
  CHECK(r["ok"] == true);
  CHECK(r["method"] == "write");
  CHECK(r["message"] == "written and verified");
  CHECK(r.contains("msg_id"));
  auto received = w.sink.received();
  REQUIRE(received.size() == 1);
  CHECK(received[0].kind == pipeline::Command::Kind::WritePoint);
  CHECK(received[0].device == "S01/P01");
  CHECK(received[0].point == "relay");
  CHECK(received[0].value == model::Value(false));
  CHECK(received[0].override_safety);
  CHECK(received[0].origin == "upstream");

  r = call(rec, R"({"id":"w2","method":"write","device":"S01/P01","point":"temp_c","value":20})",
           "w2");
  CHECK(r["ok"] == false);
  CHECK(r["status"] == 403);
  CHECK(r["reason"].get<std::string>().find("not writable") != std::string::npos);

  r = call(rec, R"({"id":"w3","method":"write","device":"NOPE","point":"relay","value":true})",
           "w3");
  CHECK(r["ok"] == false);
  CHECK(r["status"] == 404);

  r = call(rec, R"({"id":42,"method":"ack_alert","alert_id":7,"by":"Li Wei"})", 42);
  CHECK(r["ok"] == true);
  CHECK(w.sink.received().back().alert_id == 7);
  CHECK(w.sink.received().back().by == "Li Wei");
  r = call(rec, R"({"id":43,"method":"ack_alert","alert_id":99,"by":"Li Wei"})", 43);
  CHECK(r["ok"] == false);
  CHECK(r["status"] == 404);

  // Malformed and unknown commands never reach the pipeline.
  const size_t before = w.sink.received().size();
  r = call(rec, R"({"id":"m1","method":"reboot"})", "m1");
  CHECK(r["ok"] == false);
  CHECK(r["reason"].get<std::string>().find("unknown method") != std::string::npos);
  rec.publish("hgj/site1/cmd", "{not json");
  REQUIRE(waitFor([&] {
    for (const auto& x : jsonOn(rec, "hgj/site1/cmd/result")) {
      if (x["id"].is_null() && x["reason"].get<std::string>().find("malformed") == 0) {
        return true;
      }
    }
    return false;
  }));
  CHECK(w.sink.received().size() == before);
  CHECK(w.metrics.value("hgj_uplink_commands_total", {{"result", "refused"}}) == 2);

  // A repeated id is answered again with the first result, not executed twice.
  r = call(rec, R"({"id":"w1","method":"write","device":"S01/P01","point":"relay","value":false})",
           "w1");
  CHECK(w.sink.received().size() == before);

  // A command the pipeline does not answer in time.
  w.sink.setHang(true);
  r = call(rec, R"({"id":"slow","method":"write","device":"S01/P02","point":"relay","value":true})",
           "slow");
  CHECK(r["ok"] == false);
  CHECK(r["status"] == 504);

  // summary_now: every summary is sent.
  r = call(rec, R"({"id":"s1","method":"summary_now"})", "s1");
  CHECK(r["ok"] == true);
  REQUIRE(waitFor([&] {
    return !rec.on("hgj/site1/summary/parking").empty() &&
           !rec.on("hgj/site1/summary/ev").empty() &&
           !rec.on("hgj/site1/summary/ebike").empty() &&
           !rec.on("hgj/site1/summary/health").empty();
  }));
  json parking = jsonOn(rec, "hgj/site1/summary/parking").back();
  CHECK(parking["total"] == 4);
  CHECK(parking["occupied"] == 1);
  CHECK(parking["unknown"] == 3);
  CHECK(parking["levels"][0]["zones"][0]["zone"] == "A");
  CHECK(parking["msg_id"].get<std::string>().rfind("site1:", 0) == 0);
}

TEST_CASE("uplink summaries: sent on their period and on significant change",
          "[uplink][integration][summary]") {
  Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/summary/#"});
  TempDir dir;
  World w;
  auto snap = std::make_shared<pipeline::Snapshot>(emptySnapshot(w.compound));
  countParking(*snap);
  w.read_model.publish(snap);
  auto cfg = testConfig(broker.url());
  cfg.summaries.health = std::chrono::hours(1);
  cfg.summaries.on_change = true;
  cfg.summaries.min_interval = milliseconds(100);
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  // The first round goes out at once.
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/summary/health").size() == 1; }));
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/summary/parking").size() == 1; }));
  // A car parks: a new parking summary, not a new health one... until the sensor's device comes
  // online, which is a health change too.
  auto next = std::make_shared<pipeline::Snapshot>(*snap);
  next->version = 2;
  setPoint(*next, "P-B1-0002", "occupied", true, 1'700'000'000'000);
  countParking(*next);
  w.read_model.publish(next);
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/summary/parking").size() == 2; }));
  CHECK(jsonOn(rec, "hgj/site1/summary/parking").back()["occupied"] == 1);
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/summary/health").size() == 2; }));
  CHECK(jsonOn(rec, "hgj/site1/summary/health").back()["online"] == 1);
  // Nothing changes: no new messages (the periods are an hour).
  auto total = [&] {
    size_t n = 0;
    for (const char* t : {"parking", "ev", "ebike", "health"}) {
      n += firstSeen(rec, std::string("hgj/site1/summary/") + t).size();
    }
    return n;
  };
  const size_t count = total();
  auto version3 = std::make_shared<pipeline::Snapshot>(*next);
  version3->version = 3;
  w.read_model.publish(version3);
  CHECK_FALSE(waitFor([&] { return total() > count; }, milliseconds(800)));
}
