#include <catch2/catch.hpp>

#include "gateway/uplink/wire_format.h"

using namespace hgj;
using nlohmann::json;
using uplink::Kind;
using uplink::Mode;
using uplink::ParsedCommand;
using uplink::WireFormat;

namespace {
const std::vector<std::string> kAll{"write", "ack_alert", "summary_now"};
}

TEST_CASE("wire format: native messages carry msg_id and ts on hgj/{site}/...", "[uplink][wire]") {
  WireFormat f(Mode::Native, "site1");
  std::string topic;
  std::string payload;
  f.render(Kind::Alert, "alerts", json{{"id", 3}, {"rule", "hot"}}, "site1:9", 1000, topic,
           payload);
  CHECK(topic == "hgj/site1/alerts");
  CHECK(json::parse(payload) ==
        json{{"id", 3}, {"rule", "hot"}, {"msg_id", "site1:9"}, {"ts", 1000}});
  CHECK(f.commandTopics() == std::vector<std::string>{"hgj/site1/cmd"});
}

TEST_CASE("wire format: thingsboard shapes for summaries, alerts and telemetry",
          "[uplink][wire]") {
  WireFormat f(Mode::ThingsBoard, "site1");
  std::string topic;
  std::string payload;
  json parking = {{"total", 4},
                  {"free", 1},
                  {"levels", json::array({{{"level", "B1"},
                                           {"free", 1},
                                           {"zones", json::array({{{"zone", "A"}, {"free", 1}}})}}})}};
  f.render(Kind::Summary, "summary/parking", parking, "site1:1", 1000, topic, payload);
  CHECK(topic == "v1/devices/me/telemetry");
  CHECK(json::parse(payload) == json{{"ts", 1000},
                                     {"values",
                                      {{"parking_total", 4},
                                       {"parking_free", 1},
                                       {"parking_levels_B1_free", 1},
                                       {"parking_levels_B1_zones_A_free", 1}}}});

  f.render(Kind::Alert, "alerts",
           json{{"device", "S01/P01"}, {"id", 5}, {"state", "raised"}, {"value", 75.0}},
           "site1:2", 2000, topic, payload);
  CHECK(topic == "v1/gateway/telemetry");
  CHECK(json::parse(payload) ==
        json{{"S01/P01",
              json::array({{{"ts", 2000},
                            {"values",
                             {{"alert_id", 5}, {"alert_state", "raised"}, {"alert_value", 75.0}}}}})}});

  json readings = {{"readings", json::array({{{"device", "P-B1-0001"}, {"point", "occupied"},
                                              {"value", true}, {"ts", 10}},
                                             {{"device", "EV-01"}, {"point", "power_kw"},
                                              {"value", 6.8}, {"ts", 11}},
                                             {{"device", "EV-01"}, {"point", "state"},
                                              {"value", "charging"}, {"ts", 11}}})}};
  f.render(Kind::Telemetry, "telemetry", readings, "site1:3", 3000, topic, payload);
  CHECK(topic == "v1/gateway/telemetry");
  CHECK(json::parse(payload) ==
        json{{"P-B1-0001", json::array({{{"ts", 10}, {"values", {{"occupied", true}}}}})},
             {"EV-01",
              json::array({{{"ts", 11}, {"values", {{"power_kw", 6.8}, {"state", "charging"}}}}})}});
}

TEST_CASE("wire format: native commands are validated", "[uplink][wire][commands]") {
  WireFormat f(Mode::Native, "site1");
  const std::string t = "hgj/site1/cmd";
  auto p = uplink::parseCommand(
      f, t, R"({"id":"c1","method":"write","device":"S01/P01","point":"relay","value":false,"override":true})",
      kAll);
  REQUIRE(p.ok);
  CHECK(p.command.kind == pipeline::Command::Kind::WritePoint);
  CHECK(p.command.device == "S01/P01");
  CHECK(p.command.value == model::Value(false));
  CHECK(p.command.override_safety);
  CHECK(p.command.origin == "upstream");

  p = uplink::parseCommand(f, t, R"({"id":12,"method":"ack_alert","alert_id":"7","by":"Li"})", kAll);
  REQUIRE(p.ok);
  CHECK(p.id == "12");
  CHECK(p.command.alert_id == 7);
  CHECK(p.command.by == "Li");

  struct Case {
    const char* payload;
    const char* reason_part;
  };
  for (auto c : {Case{"not json", "malformed"},
                 Case{"[1,2]", "malformed"},
                 Case{R"({"method":"write"})", "\"id\""},
                 Case{R"({"id":"x","method":"reboot"})", "unknown method"},
                 Case{R"({"id":"x","method":"write","device":"S01/P01","point":"relay"})", "value"},
                 Case{R"({"id":"x","method":"write","device":"S01/P01","point":"relay","value":{}})",
                      "value"},
                 Case{R"({"id":"x","method":"write","device":"S01/P01","point":"relay","value":1,"override":"yes"})",
                      "override"},
                 Case{R"({"id":"x","method":"ack_alert","alert_id":-1,"by":"a"})", "alert_id"},
                 Case{R"({"id":"x","method":"ack_alert","alert_id":3})", "by"}}) {
    INFO(c.payload);
    auto r = uplink::parseCommand(f, t, c.payload, kAll);
    CHECK_FALSE(r.ok);
    CHECK(r.reason.find(c.reason_part) != std::string::npos);
  }
  auto big = uplink::parseCommand(f, t, std::string(20'000, ' '), kAll);
  CHECK(big.status == 413);
  auto denied = uplink::parseCommand(
      f, t, R"({"id":"x","method":"write","device":"a","point":"b","value":1})", {"ack_alert"});
  CHECK_FALSE(denied.ok);
  CHECK(denied.status == 403);
  CHECK(denied.reason.find("unauthorized") != std::string::npos);
}

TEST_CASE("wire format: thingsboard RPC requests and their responses", "[uplink][wire][commands]") {
  WireFormat f(Mode::ThingsBoard, "site1");
  auto p = uplink::parseCommand(
      f, "v1/gateway/rpc",
      R"({"device":"S01/P01","data":{"id":42,"method":"write","params":{"point":"relay","value":false}}})",
      kAll);
  REQUIRE(p.ok);
  CHECK(p.route == ParsedCommand::Route::TbGatewayRpc);
  CHECK(p.command.device == "S01/P01");
  std::string topic;
  std::string payload;
  uplink::renderCommandResult(f, p, true, 200, "done", "site1:1", 5, topic, payload);
  CHECK(topic == "v1/gateway/rpc");
  CHECK(json::parse(payload) ==
        json{{"device", "S01/P01"},
             {"id", 42},
             {"data", {{"success", true}, {"status", 200}, {"message", "done"}}}});

  p = uplink::parseCommand(f, "v1/devices/me/rpc/request/17",
                           R"({"method":"ack_alert","params":{"alert_id":7,"by":"Wang"}})", kAll);
  REQUIRE(p.ok);
  uplink::renderCommandResult(f, p, false, 404, "unknown alert 7", "site1:2", 5, topic, payload);
  CHECK(topic == "v1/devices/me/rpc/response/17");
  CHECK(json::parse(payload) ==
        json{{"success", false}, {"status", 404}, {"reason", "unknown alert 7"}});
}

TEST_CASE("wire format: an answer echoing bytes that are not UTF-8 is sent with U+FFFD, never "
          "thrown",
          "[uplink][wire][commands]") {
  // Found by fuzz_uplink_command: a refusal naming a bundle file or id whose bytes are not UTF-8
  // made the JSON serialiser throw on the thread that stages the answer.
  WireFormat f(Mode::Native, "site1");
  auto p = uplink::parseCommand(f, "hgj/site1/cmd",
                                R"({"id":"x","method":"ack_alert","alert_id":3,"by":"a"})", kAll);
  REQUIRE(p.ok);
  p.id = "id-\xf1\x98";  // a 4-byte sequence cut after its second byte
  std::string topic;
  std::string payload;
  REQUIRE_NOTHROW(uplink::renderCommandResult(f, p, false, 400, "bad file \"gw\xff.yaml\"",
                                              "site1:1", 5, topic, payload));
  const json answer = json::parse(payload);
  CHECK(answer["reason"] == "bad file \"gw\xef\xbf\xbd.yaml\"");
  CHECK(answer["id"] == "id-\xef\xbf\xbd");
}

TEST_CASE("wire format: config_push bundles in both modes, limits and refusals",
          "[uplink][wire][commands][config_push]") {
  const std::vector<std::string> with_push{"write", "ack_alert", "summary_now", "config_push"};
  const config_push::BundleLimits limits{4096, 4, 1024};
  WireFormat native(Mode::Native, "site1");
  auto p = uplink::parseCommand(
      native, "hgj/site1/cmd",
      R"({"id":"c1","method":"config_push","version":3,"by":"ops","files":{"gateway.yaml":"site: {id: a}\n","profiles/x.yaml":"name: x\n"}})",
      with_push, &limits);
  REQUIRE(p.ok);
  REQUIRE(p.bundle);
  CHECK(p.bundle->version == 3);
  CHECK(p.bundle->by == "ops");
  CHECK(p.bundle->files.size() == 2);
  CHECK(p.bundle->files.at("profiles/x.yaml") == "name: x\n");

  // Off on this gateway: refused as unauthorized, even when the allow list names it.
  p = uplink::parseCommand(native, "hgj/site1/cmd",
                           R"({"id":"c2","method":"config_push","version":3,"files":{}})", kAll);
  CHECK_FALSE(p.ok);
  CHECK(p.status == 403);
  p = uplink::parseCommand(native, "hgj/site1/cmd",
                           R"({"id":"c2","method":"config_push","version":3,"files":{}})",
                           with_push, nullptr);
  CHECK(p.status == 403);

  struct Case {
    const char* files;
    const char* reason;
  };
  for (const Case& c : {Case{R"({"../gateway.yaml":"x","gateway.yaml":"y"})", "bad file name"},
                        Case{R"({"/etc/passwd":"x","gateway.yaml":"y"})", "bad file name"},
                        Case{R"({".hidden":"x","gateway.yaml":"y"})", "bad file name"},
                        Case{R"({"a/b/c/d.yaml":"x","gateway.yaml":"y"})", "bad file name"},
                        Case{R"({"devices.yaml":"x"})", "no gateway.yaml"},
                        Case{R"({"gateway.yaml":7})", "must be a string"},
                        Case{R"({"a":"1","b":"2","c":"3","d":"4","gateway.yaml":"5"})", "too many files"},
                        Case{R"({"a":"x","a/b":"y","gateway.yaml":"z"})", "both a file and a directory"}}) {
    json cmd = {{"id", "c3"}, {"method", "config_push"}, {"version", 4},
                {"files", json::parse(c.files)}};
    p = uplink::parseCommand(native, "hgj/site1/cmd", cmd.dump(), with_push, &limits);
    INFO(c.files);
    CHECK_FALSE(p.ok);
    CHECK(p.status == 400);
    CHECK(p.reason.find(c.reason) != std::string::npos);
  }
  json big = {{"id", "c4"}, {"method", "config_push"}, {"version", 4},
              {"files", {{"gateway.yaml", std::string(1025, 'x')}}}};
  p = uplink::parseCommand(native, "hgj/site1/cmd", big.dump(), with_push, &limits);
  CHECK(p.reason.find("too large") != std::string::npos);
  p = uplink::parseCommand(native, "hgj/site1/cmd",
                           R"({"id":"c5","method":"config_push","version":0,"files":{"gateway.yaml":""}})",
                           with_push, &limits);
  CHECK(p.reason.find("\"version\"") != std::string::npos);
  const std::string huge(uplink::commandByteLimit(&limits) + 1, ' ');
  p = uplink::parseCommand(native, "hgj/site1/cmd", huge, with_push, &limits);
  CHECK(p.status == 413);

  // ThingsBoard: server-side RPC to the gateway device, and gateway RPC.
  WireFormat tb(Mode::ThingsBoard, "site1");
  p = uplink::parseCommand(
      tb, "v1/devices/me/rpc/request/9",
      R"({"method":"config_push","params":{"version":5,"files":{"gateway.yaml":"x"}}})", with_push,
      &limits);
  REQUIRE(p.ok);
  CHECK(p.bundle->version == 5);
  CHECK(p.bundle->by == "upstream");
  std::string topic;
  std::string payload;
  uplink::renderCommandResult(tb, p, false, 400, "invalid configuration", "site1:1", 5, topic,
                              payload);
  CHECK(topic == "v1/devices/me/rpc/response/9");
  p = uplink::parseCommand(
      tb, "v1/gateway/rpc",
      R"({"device":"gw","data":{"id":3,"method":"config_push","params":{"version":6,"files":{"gateway.yaml":"x"}}}})",
      with_push, &limits);
  REQUIRE(p.ok);
  CHECK(p.bundle->version == 6);
}
