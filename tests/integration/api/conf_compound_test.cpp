#include <catch2/catch.hpp>

#include <httplib.h>

#include <filesystem>
#include <map>

#include "gateway/api/http_config.h"
#include "gateway/api/http_server.h"
#include "gateway/config/config.h"
#include "tests/integration/api/api_fixture.h"
#include "tests/support/test_support.h"

using namespace hgj;
using nlohmann::json;

namespace {

json get(httplib::Client& c, const std::string& path) {
  auto r = c.Get(path);
  REQUIRE(r);
  INFO(path << " -> " << r->body.substr(0, 200));
  REQUIRE(r->status == 200);
  return json::parse(r->body);
}

} // namespace

TEST_CASE("api conf: the example compound's http section parses and its views add up",
          "[api][conf]") {
  core::Diagnostics diag;
  config::GatewayConfig cfg = config::loadConfig("conf/gateway.yaml", {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  api::HttpConfig http = cfg.http;
  CHECK(diag.ok());
  CHECK(http.bind == "127.0.0.1");
  CHECK(http.port == 8080);

  api::testing::LiveState live(cfg.compound, 1'790'000'000'000);
  live.fillDefaults();
  pipeline::ReadModel rm;
  live.publish(rm);
  core::MetricsRegistry metrics;
  hgj::test::TempDir dir;
  std::string db = dir.file("gateway.db");
  api::testing::createAlertsTable(db);
  api::testing::TestCommandSink sink(db, &rm, 0);
  http.port = 0;
  http.operator_token = "operator-token-0123456789";
  api::HttpServer server(http, rm, sink, metrics, db, nullptr);
  server.start();
  httplib::Client c("127.0.0.1", server.port());

  json p = get(c, "/api/v1/parking");
  CHECK(p["site"] == "hgj-demo-001");
  CHECK(p["total"].get<int>() >= 1000);
  json spaces = get(c, "/api/v1/parking/spaces");
  CHECK(spaces["spaces"].size() == p["total"].get<size_t>());
  std::map<std::string, int> free_by_zone;
  for (const auto& s : spaces["spaces"]) {
    if (s["state"] == "free") {
      ++free_by_zone[s["level"].get<std::string>() + "-" + s["zone"].get<std::string>()];
    }
  }
  int free_sum = 0;
  for (const auto& l : p["levels"]) {
    for (const auto& z : l["zones"]) {
      CHECK(free_by_zone[l["level"].get<std::string>() + "-" + z["zone"].get<std::string>()] ==
            z["free"].get<int>());
      free_sum += z["free"].get<int>();
    }
  }
  CHECK(free_sum == p["free"].get<int>());

  json port = get(c, "/api/v1/devices/S03/P07");
  CHECK(port["type"] == "ebike_port");
  CHECK(port["points"]["relay"]["writable"] == true);
  std::map<std::string, size_t> by_type;
  for (const auto& d : cfg.compound->devices) {
    ++by_type[d.type()];
  }
  CHECK(by_type["ebike_shed"] >= 37);
  json eb = get(c, "/api/v1/ebike");
  CHECK(eb["sheds_total"] == by_type["ebike_shed"]);
  CHECK(eb["ports_total"] == by_type["ebike_port"]);
  json ev = get(c, "/api/v1/ev");
  CHECK(ev["total"] == by_type["ev_pile"]);
  json devices = get(c, "/api/v1/devices");
  CHECK(devices["summary"]["total"] == cfg.compound->devices.size());
  CHECK(ev["piles"][0]["space"]["id"] == "P-B2-0436");
  c.set_bearer_token_auth("operator-token-0123456789");
  auto w = c.Post("/api/v1/devices/S03/P07/points/relay", R"({"value":false})", "application/json");
  REQUIRE(w);
  CHECK(w->status == 200);
  server.stop();
  std::filesystem::remove_all(std::filesystem::path(db).parent_path());
}
