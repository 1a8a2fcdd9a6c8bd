#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "gateway/alerts/message_format.h"
#include "tests/unit/alerts/alerts_fixture.h"

using namespace hgj;
using namespace hgj::alerts;

TEST_CASE("alerts format: DingTalk signature matches the documented HMAC-SHA256 recipe",
          "[alerts][format]") {
  // Reference computed independently (Python hmac/base64/urllib.parse.quote_plus).
  CHECK(dingTalkSign("SEC0123456789abcdef", 1700000000000) ==
        "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D");
}

TEST_CASE("alerts format: templates substitute known placeholders and keep unknown ones",
          "[alerts][format]") {
  CHECK(renderTemplate("{a}-{b}-{c}", {{"a", "1"}, {"b", "二"}}) == "1-二-{c}");
  CHECK(renderTemplate("{unterminated", {{"unterminated", "x"}}) == "{unterminated");
}

TEST_CASE("alerts format: local time, durations and UTF-8 safe truncation", "[alerts][format]") {
  CHECK(formatLocalTime(1700000000000, 480) == "2023-11-15 06:13:20");
  CHECK(formatLocalTime(1700000000000, 0) == "2023-11-14 22:13:20");
  CHECK(formatDurationZh(45'000) == "45秒");
  CHECK(formatDurationZh(12 * 60'000) == "12分钟");
  CHECK(formatDurationZh(2 * 3600'000 + 5 * 60'000) == "2小时5分钟");
  CHECK(formatDurationZh(3 * 86400'000LL + 4 * 3600'000) == "3天4小时");
  std::string s = "烟雾告警烟雾告警";  // 3 bytes per character
  std::string t = truncateUtf8(s, 10);
  CHECK(t.size() <= 10);
  CHECK(t == "烟雾…");
  CHECK(nlohmann::json(t).dump().size() > 0);  // still valid UTF-8
}

TEST_CASE("alerts format: where a charging port is, for people", "[alerts][format]") {
  auto c = hgj::alerts::testing::makeCompound();
  CHECK(describeWhere(*c, *c->device("S03/P07")) == "3号楼 S03车棚 7号口");
  CHECK(describeWhere(*c, *c->device("S03")) == "3号楼");
  CHECK(describeWhere(*c, *c->device("P-B1-0130")) == "B1 B区 P-B1-0130");
}

TEST_CASE("alerts format: URLs split into host and path with the query kept", "[alerts][format]") {
  auto u = parseUrl("https://oapi.dingtalk.com/robot/send?access_token=T");
  REQUIRE(u);
  CHECK(u->https);
  CHECK(u->scheme_host_port == "https://oapi.dingtalk.com");
  CHECK(u->path_query == "/robot/send?access_token=T");
  auto v = parseUrl("http://127.0.0.1:8081");
  REQUIRE(v);
  CHECK(v->path_query == "/");
  CHECK_FALSE(parseUrl("ftp://x/y"));
  CHECK_FALSE(parseUrl("no-scheme"));
}

TEST_CASE("alerts format: robot bodies carry markdown and mentions in each robot's format",
          "[alerts][format]") {
  OutgoingItem a;
  a.id = 1;
  a.kind = "raised";
  a.body = "### A";
  a.wecom_users = {"zhangsan"};
  a.mobiles = {"13800000001"};
  OutgoingItem b = a;
  b.id = 2;
  b.body = "### B";
  b.wecom_users = {"zhangsan", "limanager"};
  b.mobiles = {"13900000009"};
  auto wecom = nlohmann::json::parse(buildWeComBody("T", {a, b}));
  CHECK(wecom == nlohmann::json::parse(
                     R"({"msgtype":"markdown","markdown":{"content":"**T（2 条）**\n\n### A\n\n### B\n<@zhangsan><@limanager>"}})"));
  auto ding = nlohmann::json::parse(buildDingTalkBody("T", {a}));
  CHECK(ding == nlohmann::json::parse(
                    R"({"msgtype":"markdown","markdown":{"title":"T","text":"### A\n\n@13800000001"},"at":{"atMobiles":["13800000001"],"isAtAll":false}})"));
}

TEST_CASE("alerts format: the HTTP client is built with TLS, so real https robot URLs work",
          "[alerts][format]") {
  // Debian's cpp-httplib defines CPPHTTPLIB_OPENSSL_SUPPORT (pkg-config) and links OpenSSL.
  httplib::Client https("https://127.0.0.1:1");
  CHECK(https.is_valid());
}

TEST_CASE("alerts format: values for people: 是/否, at most one decimal, units", "[alerts][format]") {
  using hgj::model::Value;
  CHECK(formatValueZh(Value(true)) == "是");
  CHECK(formatValueZh(Value(false)) == "否");
  CHECK(formatValueZh(Value(std::string("true"))) == "是");
  CHECK(formatValueZh(Value(std::string("false"))) == "否");
  CHECK(formatValueZh(Value(75.0), "°C") == "75°C");
  CHECK(formatValueZh(Value(75.26), "°C") == "75.3°C");
  CHECK(formatValueZh(Value(1200.0), "W") == "1200 W");
  CHECK(formatValueZh(Value(-0.04), "A") == "0 A");
  CHECK(formatValueZh(Value(35.0), "ppm") == "35 ppm");
  CHECK(formatValueZh(Value(std::string("Faulted"))) == "Faulted");
  CHECK(formatValueZh(Value()) == "—");
}

TEST_CASE("alerts format: the responsible staff by name and phone", "[alerts][format]") {
  std::vector<hgj::model::Staff> staff{{"刘强", "13800000003", "liuqiang", ""},
                                       {"陈静", "13800000004", "chenjing", ""}};
  CHECK(staffText(staff) == "刘强 13800000003、陈静 13800000004");
  CHECK(staffNames(staff) == "刘强、陈静");
  CHECK(staffPhones(staff) == "13800000003、13800000004");
  CHECK(staffText({}) == "—");
  CHECK(staffText({{"社区办公室", "", "", ""}}) == "社区办公室");
}

TEST_CASE("alerts format: a place never repeats the device id beside it", "[alerts][format]") {
  hgj::model::Compound c;
  hgj::model::Profile shed;
  shed.device_type = "ebike_shed";
  hgj::model::Device s05;
  s05.id = "S05";
  s05.profile = &shed;
  s05.location = {"1号车棚区", "", "", "S05"};
  hgj::model::Device space;
  space.id = "P-B1-0042";
  space.profile = &shed;
  space.location = {"地库", "B1", "A", "0042"};
  hgj::model::Device other;
  other.id = "DISP-1";
  other.profile = &shed;
  other.location = {"", "B1", "", "入口"};
  c.devices = {s05, space, other};
  c.buildIndexes();
  // "{device} {location}" in the shipped rules: "S05 1号车棚区", not "S05 1号车棚区 S05".
  CHECK(c.placeOf(c.devices[0]) == "1号车棚区");
  CHECK(c.placeOf(c.devices[1]) == "地库 B1 A区");
  CHECK(c.placeOf(c.devices[2]) == "B1 入口");
}
