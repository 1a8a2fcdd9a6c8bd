#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <thread>

#include "core/time_format.h"
#include "gateway/api/http_server.h"
#include "tests/integration/api/api_fixture.h"
#include "tests/integration/api/harness.h"

using namespace hgj;
using api::testing::Harness;
using api::testing::kOperator;
using api::testing::kViewer;
using api::testing::LiveState;
using api::testing::kNow;
using api::testing::tokenConfig;
using api::testing::withOperator;
using hgj::test::waitFor;
using nlohmann::json;

namespace {

json getJson(httplib::Client& c, const std::string& path, int expect = 200) {
  auto r = c.Get(path);
  REQUIRE(r);
  INFO(path << " -> " << r->status << " " << r->body);
  REQUIRE(r->status == expect);
  REQUIRE(r->get_header_value("Content-Type").rfind("application/json", 0) == 0);
  return json::parse(r->body);
}

httplib::Result postJson(httplib::Client& c, const std::string& path, const std::string& body) {
  return c.Post(path, body, "application/json");
}


void checkCounts(const json& j) {
  CHECK(j["total"].get<int>() ==
        j["occupied"].get<int>() + j["free"].get<int>() + j["unknown"].get<int>());
}

// A strict reader of the Prometheus text exposition format 0.0.4: every line is a HELP, a TYPE or
// a sample; names and labels are well formed; values parse; a family's TYPE precedes its samples
// and is given once; histogram buckets are cumulative and end in +Inf equal to _count.
std::map<std::string, double> parsePrometheus(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
  static const std::regex type(
      R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")*,?)?\})? ([^ ]+)( -?[0-9]+)?)");
  std::map<std::string, std::string> types;
  std::map<std::string, double> values;
  std::map<std::string, double> last_bucket;
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    std::smatch m;
    if (line.empty()) {
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) {
      REQUIRE(std::regex_match(line, m, help));
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      REQUIRE(std::regex_match(line, m, type));
      REQUIRE(types.count(m[1]) == 0);
      types[m[1]] = m[2];
      continue;
    }
    REQUIRE(line[0] != '#');
    REQUIRE(std::regex_match(line, m, sample));
    std::string name = m[1];
    std::string labels = m[2];
    std::string v = m[7];
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (types.count(family) == 0 && name.size() > s.size() &&
          name.compare(name.size() - s.size(), s.size(), s) == 0) {
        family = name.substr(0, name.size() - s.size());
      }
    }
    REQUIRE(types.count(family) == 1);
    double value = 0;
    if (v == "+Inf") {
      value = HUGE_VAL;
    } else if (v == "-Inf") {
      value = -HUGE_VAL;
    } else if (v == "NaN") {
      value = NAN;
    } else {
      char* end = nullptr;
      value = std::strtod(v.c_str(), &end);
      REQUIRE(end == v.c_str() + v.size());
    }
    if (types[family] == "histogram" && name == family + "_bucket") {
      REQUIRE(labels.find("le=\"") != std::string::npos);
      std::string series = std::regex_replace(labels, std::regex(R"(,?le="[^"]*")"), "");
      auto it = last_bucket.find(family + series);
      if (it != last_bucket.end()) {
        REQUIRE(value >= it->second);
      }
      last_bucket[family + series] = value;
    }
    if (types[family] == "counter") {
      REQUIRE(value >= 0);
    }
    values[name + labels] = value;
  }
  for (const auto& [key, v] : values) {
    auto pos = key.find("_bucket{");
    if (pos != std::string::npos && key.find("le=\"+Inf\"") != std::string::npos) {
      std::string series =
          std::regex_replace(key.substr(pos + 7), std::regex(R"(,?le="\+Inf")"), "");
      if (series == "{}") {
        series.clear();
      }
      REQUIRE(values.count(key.substr(0, pos) + "_count" + series) == 1);
      CHECK(values[key.substr(0, pos) + "_count" + series] == v);
    }
  }
  return values;
}

} // namespace

TEST_CASE("api http: parking totals equal the sum of levels, zones and spaces", "[api][http]") {
  Harness h;
  auto c = h.client();
  json p = getJson(c, "/api/v1/parking");
  CHECK(p["site"] == "demo-001");
  CHECK(p["updated_at"] == core::rfc3339(kNow));
  checkCounts(p);
  CHECK(p["total"] == 80);
  CHECK(p["unknown"].get<int>() > 0);
  REQUIRE(p["levels"].size() == 2);
  json spaces_all = getJson(c, "/api/v1/parking/spaces");
  CHECK(spaces_all["spaces"].size() == p["total"].get<size_t>());
  std::map<std::string, int> level_sum{{"total", 0}, {"occupied", 0}, {"free", 0}, {"unknown", 0}};
  for (const auto& l : p["levels"]) {
    checkCounts(l);
    std::map<std::string, int> zone_sum{{"total", 0}, {"occupied", 0}, {"free", 0}, {"unknown", 0}};
    REQUIRE(l["zones"].size() == 4);
    for (const auto& z : l["zones"]) {
      checkCounts(z);
      for (auto& [k, v] : zone_sum) {
        v += z[k].get<int>();
      }
      json spaces = getJson(c, "/api/v1/parking/spaces?level=" + l["level"].get<std::string>() +
                                   "&zone=" + z["zone"].get<std::string>());
      REQUIRE(spaces["spaces"].size() == z["total"].get<size_t>());
      std::map<std::string, int> by_state;
      for (const auto& s : spaces["spaces"]) {
        CHECK(s["level"] == l["level"]);
        CHECK(s["zone"] == z["zone"]);
        ++by_state[s["state"].get<std::string>()];
      }
      CHECK(by_state["occupied"] == z["occupied"].get<int>());
      CHECK(by_state["free"] == z["free"].get<int>());
      CHECK(by_state["unknown"] == z["unknown"].get<int>());
    }
    for (auto& [k, v] : zone_sum) {
      CHECK(v == l[k].get<int>());
      level_sum[k] += l[k].get<int>();
    }
  }
  for (auto& [k, v] : level_sum) {
    CHECK(v == p[k].get<int>());
  }
}

TEST_CASE("api http: a space that goes silent is unknown, never free", "[api][http]") {
  Harness h;
  auto c = h.client();
  h.live.setSpace("P-B1-0002", false);
  h.live.publish(h.read_model);
  json before = getJson(c, "/api/v1/parking/spaces?level=B1&zone=A");
  auto find = [](const json& spaces, const std::string& id) {
    for (const auto& s : spaces["spaces"]) {
      if (s["id"] == id) {
        return s;
      }
    }
    return json();
  };
  CHECK(find(before, "P-B1-0002")["state"] == "free");
  CHECK(find(before, "P-B1-0002")["since"] == core::rfc3339(kNow));
  CHECK(find(before, "P-B1-0002")["linked"] == "EV-02");
  json p0 = getJson(c, "/api/v1/parking");
  h.live.setSpace("P-B1-0002", std::nullopt);
  h.live.publish(h.read_model);
  json after = getJson(c, "/api/v1/parking/spaces?level=B1&zone=A");
  CHECK(find(after, "P-B1-0002")["state"] == "unknown");
  json p1 = getJson(c, "/api/v1/parking");
  CHECK(p1["free"].get<int>() == p0["free"].get<int>() - 1);
  CHECK(p1["unknown"].get<int>() == p0["unknown"].get<int>() + 1);
}

TEST_CASE("api http: bad parking filters are refused", "[api][http]") {
  Harness h;
  auto c = h.client();
  getJson(c, "/api/v1/parking/spaces?level=B9", 404);
  getJson(c, "/api/v1/parking/spaces?level=B1&zone=Q", 404);
  json e = getJson(c, "/api/v1/parking/spaces?level=", 400);
  CHECK(e["status"] == 400);
  CHECK(e["error"].is_string());
  getJson(c, "/api/v1/parking/spaces?level=" + std::string(40, 'x'), 400);
}

TEST_CASE("api http: without a published snapshot the state endpoints answer 503", "[api][http]") {
  Harness h({}, false);
  auto c = h.client();
  for (const char* path : {"/api/v1/parking", "/api/v1/parking/spaces", "/api/v1/devices",
                           "/api/v1/devices/EV-01", "/api/v1/ev", "/api/v1/ebike"}) {
    json e = getJson(c, path, 503);
    CHECK(e["status"] == 503);
  }
}

TEST_CASE("api http: devices list, filters and details", "[api][http]") {
  Harness h;
  auto c = h.client();
  h.live.setOnline("EV-03", false);
  h.live.setPoint("S01/P02", "power_w", 400.0);
  h.live.publish(h.read_model);
  json all = getJson(c, "/api/v1/devices");
  size_t n = h.compound->devices.size();
  CHECK(all["devices"].size() == n);
  CHECK(all["summary"]["total"] == n);
  CHECK(all["summary"]["offline"].get<int>() >= 1);
  CHECK(all["summary"]["by_type"]["ev_pile"]["total"] == 6);
  json piles = getJson(c, "/api/v1/devices?type=ev_pile");
  CHECK(piles["devices"].size() == 6);
  json offline = getJson(c, "/api/v1/devices?type=ev_pile&online=false");
  REQUIRE(offline["devices"].size() == 1);
  CHECK(offline["devices"][0]["id"] == "EV-03");
  getJson(c, "/api/v1/devices?online=maybe", 400);

  json port = getJson(c, "/api/v1/devices/S01/P02");
  CHECK(port["id"] == "S01/P02");
  CHECK(port["type"] == "ebike_port");
  CHECK(port["parent"] == "S01");
  CHECK(port["online"] == true);
  CHECK(port["last_seen"] == core::rfc3339(kNow));
  CHECK(port["points"]["power_w"]["value"] == 400.0);
  CHECK(port["points"]["power_w"]["unit"] == "W");
  CHECK(port["points"]["power_w"]["quality"] == "good");
  CHECK(port["points"]["relay"]["writable"] == true);
  CHECK(port["points"]["temp_c"]["since"] == core::rfc3339(kNow));
  json encoded = getJson(c, "/api/v1/devices/S01%2FP02");
  CHECK(encoded["id"] == "S01/P02");
  json shed = getJson(c, "/api/v1/devices/S01");
  CHECK(shed["children"].size() == 10);
  json pile = getJson(c, "/api/v1/devices/EV-03");
  CHECK(pile["online"] == false);
  CHECK(pile["points"]["state"]["quality"] == "stale");
  json e = getJson(c, "/api/v1/devices/NOPE-1", 404);
  CHECK(e["error"].get<std::string>().find("NOPE-1") != std::string::npos);
}

TEST_CASE("api http: EV piles show state, power and blocked spaces", "[api][http]") {
  Harness h;
  auto c = h.client();
  h.live.setPoint("EV-01", "state", std::string("idle"));
  h.live.setPoint("EV-01", "power_kw", 0.0);
  h.live.setSpace("P-B1-0001", true);
  h.live.setPoint("EV-02", "state", std::string("Charging"));
  h.live.setPoint("EV-02", "power_kw", 7.0);
  h.live.publish(h.read_model);
  json ev = getJson(c, "/api/v1/ev");
  CHECK(ev["total"] == 6);
  CHECK(ev["charging"].get<int>() + ev["idle"].get<int>() + ev["faulted"].get<int>() +
            ev["offline"].get<int>() + ev["unknown"].get<int>() ==
        6);
  json p1 = ev["piles"][0];
  CHECK(p1["id"] == "EV-01");
  CHECK(p1["status"] == "idle");
  CHECK(p1["space"]["id"] == "P-B1-0001");
  CHECK(p1["space"]["state"] == "occupied");
  CHECK(p1["space"]["blocked"] == true);
  CHECK(ev["blocked_spaces"].get<int>() >= 1);
  CHECK(ev["piles"][1]["status"] == "charging");
  CHECK(ev["piles"][1]["power_kw"] == 7.0);
  CHECK(ev["power_kw"].get<double>() >= 7.0);
}

TEST_CASE("api http: e-bike sheds show ports in use, cut ports and temperatures", "[api][http]") {
  Harness h;
  auto c = h.client();
  h.live.setPoint("S02/P03", "temp_c", 72.5);
  h.live.setPoint("S02/P03", "relay", false);
  h.live.setSafetyCut("S02/P03", true);
  h.live.publish(h.read_model);
  json eb = getJson(c, "/api/v1/ebike");
  REQUIRE(eb["sheds"].size() == 3);
  CHECK(eb["ports_total"] == 30);
  json s2 = eb["sheds"][1];
  CHECK(s2["id"] == "S02");
  CHECK(s2["ports_total"] == 10);
  CHECK(s2["ports_cut"] == 1);
  CHECK(s2["max_port_temp_c"] == 72.5);
  CHECK(s2["smoke"] == false);
  CHECK(s2["temp_c"] == 24.0);
  json p3 = s2["ports"][2];
  CHECK(p3["id"] == "S02/P03");
  CHECK(p3["n"] == 3);
  CHECK(p3["cut"] == true);
  CHECK(p3["safety_cut"] == true);
  CHECK(p3["relay"] == false);
  int in_use = 0;
  for (const auto& p : s2["ports"]) {
    in_use += p["in_use"].get<bool>() ? 1 : 0;
  }
  CHECK(s2["ports_in_use"] == in_use);
}

TEST_CASE("api http: alerts are listed by state in the fixed shape", "[api][http]") {
  Harness h;
  auto c = h.client();
  auto a1 = api::testing::insertAlert(h.db, "port_over_temp", "S02/P03", "G2", "critical", "active",
                                      "S02/P03 温度 72.5°C", "72.5", kNow - 60'000);
  api::testing::insertAlert(h.db, "device_offline", "EV-03", "G1", "warning", "cleared",
                            "EV-03 offline", "\"offline\"", kNow - 120'000);
  json active = getJson(c, "/api/v1/alerts?state=active");
  REQUIRE(active.size() == 1);
  json a = active[0];
  for (const char* key : {"id", "rule", "device", "grid", "severity", "state", "message", "value",
                          "raised_at", "acked_at", "acked_by", "cleared_at"}) {
    CHECK(a.contains(key));
  }
  CHECK(a["id"] == a1);
  CHECK(a["severity"] == "critical");
  CHECK(a["value"] == 72.5);
  CHECK(a["raised_at"] == core::rfc3339(kNow - 60'000));
  CHECK(a["acked_at"].is_null());
  CHECK(a["location"].get<std::string>().find("1F") != std::string::npos);
  json all = getJson(c, "/api/v1/alerts");
  REQUIRE(all.size() == 2);
  CHECK(all[1]["value"] == "offline");
  CHECK(getJson(c, "/api/v1/alerts?state=cleared").size() == 1);
  CHECK(getJson(c, "/api/v1/alerts?device=EV-03").size() == 1);
  CHECK(getJson(c, "/api/v1/alerts?limit=1").size() == 1);
  getJson(c, "/api/v1/alerts?state=open", 400);
  getJson(c, "/api/v1/alerts?state=", 400);
  getJson(c, "/api/v1/alerts?limit=0", 400);
  getJson(c, "/api/v1/alerts?limit=abc", 400);
}

TEST_CASE("api http: alerts answer 503 while the database is missing", "[api][http]") {
  Harness h;
  std::filesystem::remove(h.db);
  std::filesystem::remove(h.db + "-wal");
  std::filesystem::remove(h.db + "-shm");
  auto c = h.client();
  json e = getJson(c, "/api/v1/alerts", 503);
  CHECK(e["error"].get<std::string>().find("alerts unavailable") == 0);
}

TEST_CASE("api http: acking an alert goes through the command sink", "[api][http]") {
  Harness h;
  auto c = h.client(kOperator);
  auto id = api::testing::insertAlert(h.db, "smoke", "S01", "G1", "critical", "active", "烟雾",
                                      "true", kNow);
  std::string path = "/api/v1/alerts/" + std::to_string(id) + "/ack";
  auto r = postJson(c, path, R"({"by":"李四","note":"到场处理"})");
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  json body = json::parse(r->body);
  CHECK(body["ok"] == true);
  CHECK(body["alert"]["state"] == "acked");
  auto cmds = h.sink.received();
  REQUIRE(cmds.size() == 1);
  CHECK(cmds[0].kind == pipeline::Command::Kind::AckAlert);
  CHECK(cmds[0].alert_id == id);
  CHECK(cmds[0].by == "李四");
  CHECK(cmds[0].note == "到场处理");
  CHECK(cmds[0].origin == "api");
  json a = getJson(c, "/api/v1/alerts?state=acked")[0];
  CHECK(a["acked_by"] == "李四");
  CHECK(a["acked_at"] == core::rfc3339(kNow + 1000));

  auto again = postJson(c, path, R"({"by":"李四"})");
  CHECK(again->status == 409);
  CHECK(json::parse(again->body)["status"] == 409);
  CHECK(postJson(c, "/api/v1/alerts/99999/ack", R"({"by":"x"})")->status == 404);
}

TEST_CASE("api http: bad ack requests are refused with 400", "[api][http]") {
  Harness h;
  auto c = h.client(kOperator);
  CHECK(postJson(c, "/api/v1/alerts/abc/ack", R"({"by":"x"})")->status == 400);
  CHECK(postJson(c, "/api/v1/alerts/0/ack", R"({"by":"x"})")->status == 400);
  CHECK(postJson(c, "/api/v1/alerts/1/ack", R"({"note":"no by"})")->status == 400);
  CHECK(postJson(c, "/api/v1/alerts/1/ack", R"({"by":""})")->status == 400);
  CHECK(postJson(c, "/api/v1/alerts/1/ack", R"({"by":"x","extra":1})")->status == 400);
  CHECK(postJson(c, "/api/v1/alerts/1/ack", R"({"by":"x","note":7})")->status == 400);
  CHECK(postJson(c, "/api/v1/alerts/1/ack", "{not json")->status == 400);
  CHECK(postJson(c, "/api/v1/alerts/1/ack", "[1,2]")->status == 400);
  auto r = c.Post("/api/v1/alerts/1/ack", R"({"by":"x"})", "text/plain");
  CHECK(r->status == 415);
  CHECK(json::parse(r->body)["error"].is_string());
  CHECK(h.sink.received().empty());
}

TEST_CASE("api http: point writes are validated against the profile", "[api][http]") {
  Harness h;
  auto c = h.client(kOperator);
  auto r = postJson(c, "/api/v1/devices/S01/P02/points/relay", R"({"value":false,"by":"王五"})");
  REQUIRE(r);
  INFO(r->body);
  CHECK(r->status == 200);
  auto cmds = h.sink.received();
  REQUIRE(cmds.size() == 1);
  CHECK(cmds[0].kind == pipeline::Command::Kind::WritePoint);
  CHECK(cmds[0].device == "S01/P02");
  CHECK(cmds[0].point == "relay");
  CHECK(cmds[0].value == model::Value(false));
  CHECK(cmds[0].by == "王五");
  CHECK(postJson(c, "/api/v1/devices/S01/P02/points/relay",
                 R"({"value":true,"override_safety":true})")
            ->status == 200);
  CHECK(h.sink.received().back().override_safety);
  CHECK(postJson(c, "/api/v1/devices/S01/P02/points/temp_c", R"({"value":1})")->status == 403);
  CHECK(postJson(c, "/api/v1/devices/S01/P02/points/nope", R"({"value":1})")->status == 404);
  CHECK(postJson(c, "/api/v1/devices/NOPE/points/relay", R"({"value":true})")->status == 404);
  CHECK(postJson(c, "/api/v1/devices/S01/P02/points/relay", R"({"value":"maybe"})")->status == 400);
  CHECK(postJson(c, "/api/v1/devices/S01/P02/points/relay", R"({"value":[1]})")->status == 400);
  CHECK(postJson(c, "/api/v1/devices/S01/P02/points/relay", R"({})")->status == 400);
  CHECK(postJson(c, "/api/v1/devices/S01/P02/points/relay", R"({"value":true,"x":1})")->status ==
        400);
  CHECK(h.sink.received().size() == 2);
}

TEST_CASE("api http: a pipeline that does not answer gives 504", "[api][http]") {
  api::HttpConfig cfg;
  cfg.command_timeout = std::chrono::milliseconds(200);
  Harness h(withOperator(cfg));
  h.sink.setHang(true);
  auto c = h.client(kOperator);
  auto r = postJson(c, "/api/v1/devices/S01/P02/points/relay", R"({"value":false})");
  REQUIRE(r);
  CHECK(r->status == 504);
  CHECK(json::parse(r->body)["status"] == 504);
}

TEST_CASE("api http: tokens: no token 401, viewer reads, viewer ack 403, operator acks",
          "[api][http][auth]") {
  Harness h(tokenConfig());
  auto id = api::testing::insertAlert(h.db, "smoke", "S01", "G1", "critical", "active", "烟雾",
                                      "true", kNow);
  std::string ack = "/api/v1/alerts/" + std::to_string(id) + "/ack";
  auto anon = h.client();
  for (const char* path : {"/api/v1/parking", "/api/v1/parking/spaces", "/api/v1/devices",
                           "/api/v1/devices/EV-01", "/api/v1/ev", "/api/v1/ebike", "/api/v1/alerts",
                           "/api/v1/events", "/healthz", "/metrics"}) {
    auto r = anon.Get(path);
    REQUIRE(r);
    INFO(path);
    CHECK(r->status == 401);
    CHECK(r->get_header_value("WWW-Authenticate").find("Bearer") == 0);
    CHECK(json::parse(r->body)["status"] == 401);
  }
  CHECK(postJson(anon, ack, R"({"by":"x"})")->status == 401);
  auto wrong = h.client("not-the-right-token-000");
  CHECK(wrong.Get("/api/v1/parking")->status == 401);
  // The dashboard itself carries no data and loads without a token.
  CHECK(anon.Get("/")->status == 200);

  auto viewer = h.client(kViewer);
  getJson(viewer, "/api/v1/parking");
  getJson(viewer, "/api/v1/alerts");
  auto r = postJson(viewer, ack, R"({"by":"viewer"})");
  CHECK(r->status == 403);
  CHECK(postJson(viewer, "/api/v1/devices/S01/P02/points/relay", R"({"value":false})")->status ==
        403);
  CHECK(h.sink.received().empty());

  auto op = h.client(kOperator);
  getJson(op, "/api/v1/parking");
  CHECK(postJson(op, ack, R"({"by":"operator"})")->status == 200);
  CHECK(h.metrics.value("hgj_http_rejected_total", {{"reason", "unauthorized"}}) >= 12);
  CHECK(h.metrics.value("hgj_http_rejected_total", {{"reason", "forbidden"}}) == 2);
}

TEST_CASE("api http: wrong Host header is refused with 400", "[api][http][security]") {
  Harness h;
  auto c = h.client();
  auto r = c.Get("/api/v1/parking", {{"Host", "evil.example.com"}});
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(json::parse(r->body)["error"] == "host not allowed");
  CHECK(c.Get("/api/v1/parking", {{"Host", "localhost:8080"}})->status == 200);
}

TEST_CASE("api http: cross-origin posts are refused, CORS is closed by default",
          "[api][http][security]") {
  Harness h;
  auto id = api::testing::insertAlert(h.db, "smoke", "S01", "G1", "critical", "active", "烟雾",
                                      "true", kNow);
  std::string ack = "/api/v1/alerts/" + std::to_string(id) + "/ack";
  auto c = h.client(kOperator);
  auto r =
      c.Post(ack, {{"Origin", "https://evil.example.com"}}, R"({"by":"x"})", "application/json");
  REQUIRE(r);
  CHECK(r->status == 403);
  auto pre = c.Options(
      ack, {{"Origin", "https://evil.example.com"}, {"Access-Control-Request-Method", "POST"}});
  CHECK(pre->status == 403);
  auto get = c.Get("/api/v1/parking", {{"Origin", "https://evil.example.com"}});
  CHECK(get->status == 200);
  CHECK_FALSE(get->has_header("Access-Control-Allow-Origin"));
  CHECK(h.sink.received().empty());
  std::string own = "http://127.0.0.1:" + std::to_string(h.server->port());
  CHECK(c.Post(ack, {{"Origin", own}}, R"({"by":"x"})", "application/json")->status == 200);
}

TEST_CASE("api http: listed CORS origins get preflight and allow headers",
          "[api][http][security]") {
  api::HttpConfig cfg;
  cfg.cors_origins = {"https://pm.example.com"};
  Harness h(cfg);
  auto c = h.client();
  auto pre = c.Options("/api/v1/alerts/1/ack", {{"Origin", "https://pm.example.com"},
                                                {"Access-Control-Request-Method", "POST"}});
  REQUIRE(pre);
  CHECK(pre->status == 204);
  CHECK(pre->get_header_value("Access-Control-Allow-Origin") == "https://pm.example.com");
  auto get = c.Get("/api/v1/parking", {{"Origin", "https://pm.example.com"}});
  CHECK(get->get_header_value("Access-Control-Allow-Origin") == "https://pm.example.com");
}

TEST_CASE("api http: a body over the limit is refused with 413", "[api][http][security]") {
  api::HttpConfig cfg;
  cfg.max_body_bytes = 1024;
  Harness h(cfg);
  auto c = h.client();
  std::string big = R"({"by":")" + std::string(4096, 'x') + R"("})";
  auto r = postJson(c, "/api/v1/alerts/1/ack", big);
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(json::parse(r->body)["status"] == 413);
  CHECK(h.sink.received().empty());
  auto c2 = h.client();
  CHECK(c2.Get("/api/v1/parking")->status == 200);
}

TEST_CASE("api http: a slow client is disconnected and others are served",
          "[api][http][security]") {
  api::HttpConfig cfg;
  cfg.header_timeout = std::chrono::milliseconds(300);
  Harness h(cfg);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(h.server->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::string partial = "GET /api/v1/parking HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  REQUIRE(send(fd, partial.data(), partial.size(), 0) == static_cast<ssize_t>(partial.size()));
  auto c = h.client();
  CHECK(c.Get("/api/v1/parking")->status == 200);
  // The server closes the half-sent request once its header timeout passes.
  bool closed = waitFor(
      [&] {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 0) <= 0) {
          return false;
        }
        char buf[256];
        return recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0;
      },
      std::chrono::seconds(5));
  CHECK(closed);
  close(fd);
}

TEST_CASE("api http: /metrics is valid Prometheus text with the API's series", "[api][http]") {
  Harness h;
  h.metrics.counter("hgj_readings_dropped_total", "Readings dropped.", {{"reason", "malformed"}})
      .inc(3);
  h.metrics.histogram("hgj_sqlite_commit_seconds", "Commit latency.", {0.001, 0.01, 0.1})
      .observe(0.004);
  h.metrics.gauge("hgj_label_escaping", "Escaping check.", {{"path", "a\"b\\c"}}).set(1.5);
  api::testing::insertAlert(h.db, "smoke", "S01", "G1", "critical", "active", "x", "true", kNow);
  auto c = h.client();
  getJson(c, "/api/v1/parking");
  c.Get("/api/v1/nothing-here");
  auto r = c.Get("/metrics");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  auto values = parsePrometheus(r->body);
  CHECK(values["process_resident_memory_bytes"] > 1e6);
  CHECK(values["hgj_alerts_by_state{state=\"active\"}"] == 1);
  CHECK(values["hgj_readings_dropped_total{reason=\"malformed\"}"] == 3);
  CHECK(values["hgj_http_requests_total{code=\"200\"}"] >= 1);
  CHECK(values["hgj_http_requests_total{code=\"404\"}"] >= 1);
  CHECK(values.count("hgj_http_sse_clients") == 1);
}

TEST_CASE("api http: /healthz reports the subsystems and fails when down", "[api][http]") {
  Harness h;
  auto c = h.client();
  json ok = getJson(c, "/healthz");
  CHECK(ok["status"] == "ok");
  CHECK(ok["ingest"]["status"] == "ok");
  CHECK(ok["api"]["status"] == "ok");
  CHECK(ok["state"]["version"] == 1);
  h.health_value = json{{"status", "down"}, {"storage", {{"status", "down"}}}};
  json down = getJson(c, "/healthz", 503);
  CHECK(down["storage"]["status"] == "down");
}

TEST_CASE("api http: the dashboard is served with a content security policy", "[api][http]") {
  Harness h;
  auto c = h.client();
  auto r = c.Get("/");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "text/html; charset=utf-8");
  CHECK(r->get_header_value("Content-Security-Policy").find("default-src 'self'") == 0);
  CHECK(r->get_header_value("X-Content-Type-Options") == "nosniff");
  CHECK(c.Get("/index.html")->status == 200);
  CHECK(c.Get("/nothing.js")->status == 404);
  CHECK(c.Get("/../etc/passwd")->status == 400); // dot segments are refused
  CHECK(json::parse(c.Get("/api/v1/nothing")->body)["status"] == 404);
}

TEST_CASE("api http: dashboard files can be served from http.static_dir", "[api][http]") {
  hgj::test::TempDir dir;
  {
    std::ofstream f(dir.file("index.html"));
    f << "<p>custom</p>";
  }
  api::HttpConfig cfg;
  cfg.static_dir = dir.path();
  Harness h(cfg);
  auto c = h.client();
  CHECK(c.Get("/")->body == "<p>custom</p>");
  CHECK(c.Get("/app.js")->status == 404);
}

TEST_CASE("api http: events stream live changes and replay after Last-Event-ID",
          "[api][http][sse]") {
  api::HttpConfig cfg;
  cfg.sse_heartbeat = std::chrono::milliseconds(1000);
  Harness h(cfg);
  std::mutex mu;
  std::condition_variable cv;
  std::string received;
  std::atomic<bool> done{false};
  auto c = h.client();
  std::thread reader([&] {
    c.Get("/api/v1/events", [&](const char* data, size_t len) {
      std::lock_guard lock(mu);
      received.append(data, len);
      cv.notify_all();
      return !done.load();
    });
  });
  auto has = [&](const std::string& s) {
    std::lock_guard lock(mu);
    return received.find(s) != std::string::npos;
  };
  REQUIRE(waitFor([&] { return has(": connected"); }, std::chrono::seconds(5)));
  h.live.setSpace("P-B2-0005", true);
  h.live.publish(h.read_model);
  CHECK(waitFor([&] { return has("event: space\ndata: {\"id\":\"P-B2-0005\""); },
                std::chrono::seconds(3)));
  CHECK(waitFor([&] { return has("event: snapshot"); }, std::chrono::seconds(3)));
  // The pipeline's "spaces" event (ids only) reaches clients as one "space" event per id.
  h.live.setPoint("P-B2-0007", "occupied", true);
  h.live.publish(h.read_model);
  h.read_model.pushEvent("spaces", R"(["P-B2-0007","NOPE"])");
  CHECK(waitFor(
      [&] {
        return has("event: space\ndata: {\"id\":\"P-B2-0007\",\"level\":\"B2\","
                   "\"zone\":\"A\",\"state\":\"occupied\"");
      },
      std::chrono::seconds(3)));
  h.read_model.pushEvent("snapshot", R"({"version":99})");
  h.read_model.pushEvent("device", R"({"id":"EV-01"})");
  CHECK(waitFor([&] { return has("event: device"); }, std::chrono::seconds(3)));
  CHECK_FALSE(has("\"version\":99"));
  CHECK(h.metrics.value("hgj_http_sse_clients") == 1);
  done = true;
  h.read_model.pushEvent("alert", R"({"id":1})");
  reader.join();
  // The server notices the client left at its next heartbeat writes.
  CHECK(waitFor([&] { return h.metrics.value("hgj_http_sse_clients") == 0; },
                std::chrono::seconds(5)));

  // A reconnecting client gets what it missed.
  auto c2 = h.client();
  std::string replay;
  c2.Get("/api/v1/events", {{"Last-Event-ID", "0"}}, [&](const char* data, size_t len) {
    replay.append(data, len);
    return replay.find("event: alert") == std::string::npos;
  });
  CHECK(replay.find("id: 1\nevent: space") != std::string::npos);
  CHECK(replay.find("event: alert") != std::string::npos);
}

TEST_CASE("api http: the live event ring keeps a minute of events, and a view that missed "
          "more is told to resync",
          "[api][http][sse]") {
  core::ManualClock clock;
  pipeline::ReadModel rm(4096, std::chrono::seconds(60), clock);
  rm.pushEvent("device", R"({"id":"EV-01"})");
  clock.advance(std::chrono::seconds(30));
  rm.pushEvent("device", R"({"id":"EV-02"})");
  CHECK(rm.eventsKept() == 2);
  bool gap = true;
  CHECK(rm.eventsAfter(0, std::chrono::milliseconds(0), &gap).size() == 2);
  CHECK_FALSE(gap);
  // 31 s later the first is over a minute old: a push drops it, and a view that had seen
  // nothing is told it missed something.
  clock.advance(std::chrono::seconds(31));
  rm.pushEvent("device", R"({"id":"EV-03"})");
  CHECK(rm.eventsKept() == 2);
  auto after0 = rm.eventsAfter(0, std::chrono::milliseconds(0), &gap);
  CHECK(gap);
  REQUIRE(after0.size() == 2);
  CHECK(after0.front().seq == 2);
  // With nothing pushed, a snapshot's publish ages the rest out; the ring is empty, and a view
  // behind the head still hears that it missed events, one at the head does not.
  clock.advance(std::chrono::seconds(61));
  rm.publish(std::make_shared<pipeline::Snapshot>());
  CHECK(rm.eventsKept() == 0);
  CHECK(rm.eventsAfter(1, std::chrono::milliseconds(0), &gap).empty());
  CHECK(gap);
  CHECK(rm.eventsAfter(rm.lastSeq(), std::chrono::milliseconds(0), &gap).empty());
  CHECK_FALSE(gap);
  // The count bound still holds within the minute.
  pipeline::ReadModel small(3, std::chrono::seconds(60), clock);
  for (int i = 0; i < 5; ++i) {
    small.pushEvent("device", "{}");
  }
  CHECK(small.eventsKept() == 3);
}

TEST_CASE("api http: event streams end when the read model closes", "[api][http][sse]") {
  Harness h;
  auto c = h.client();
  std::atomic<bool> connected{false};
  std::thread reader([&] {
    c.Get("/api/v1/events", [&](const char*, size_t) {
      connected = true;
      return true;
    });
  });
  REQUIRE(waitFor([&] { return connected.load(); }, std::chrono::seconds(5)));
  h.read_model.close();
  reader.join(); // the server ended the stream
  CHECK(waitFor([&] { return h.metrics.value("hgj_http_sse_clients") == 0; },
                std::chrono::seconds(3)));
}

TEST_CASE("api http: event streams are capped and need the token in the query",
          "[api][http][sse]") {
  api::HttpConfig cfg = tokenConfig();
  cfg.threads = 4;
  cfg.sse_max_clients = 1;
  Harness h(cfg);
  std::atomic<bool> done{false};
  std::atomic<bool> connected{false};
  auto c = h.client();
  std::thread reader([&] {
    c.Get("/api/v1/events?access_token=" + kViewer, [&](const char*, size_t) {
      connected = true;
      return !done.load();
    });
  });
  REQUIRE(waitFor([&] { return connected.load(); }, std::chrono::seconds(5)));
  auto second = h.client(kViewer);
  auto r = second.Get("/api/v1/events");
  REQUIRE(r);
  CHECK(r->status == 503);
  done = true;
  h.read_model.pushEvent("alert", "{}");
  reader.join();
  auto bad = h.client();
  CHECK(bad.Get("/api/v1/events?access_token=wrong-token-0000000")->status == 401);
}

TEST_CASE("api http: start fails clearly when the port is taken", "[api][http]") {
  Harness h;
  api::HttpConfig cfg;
  cfg.port = h.server->port();
  pipeline::ReadModel rm;
  core::MetricsRegistry metrics;
  api::testing::TestCommandSink sink(h.db, nullptr, kNow);
  api::HttpServer second(cfg, rm, sink, metrics, h.db, nullptr);
  CHECK_THROWS_WITH(second.start(), Catch::Contains("http: cannot listen on 127.0.0.1:" +
                                                    std::to_string(cfg.port)));
  h.server->stop();
  h.server->stop();
}
