#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/alerts/alert_manager.h"
#include "gateway/alerts/delivery_query.h"
#include "gateway/alerts/notifier.h"
#include "tests/unit/alerts/alerts_fixture.h"

using namespace hgj;
using namespace hgj::alerts;
using namespace hgj::alerts::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::string kSecret = "SEC7f3e0c0ffee1234567890abcdef";

std::string one(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(st); ++i) {
      const unsigned char* t = sqlite3_column_text(st, i);
      if (i > 0) {
        out += '|';
      }
      out += t != nullptr ? reinterpret_cast<const char*>(t) : "";
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

/// The DingTalk check, written independently of the gateway's code: base64 of
/// HMAC-SHA256(secret, timestamp + "\n" + secret), compared with the (URL-decoded) sign.
bool dingTalkSignatureValid(const std::string& secret, const std::string& timestamp,
                            const std::string& sign) {
  std::string msg = timestamp + "\n" + secret;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  unsigned char b64[128];
  int n = EVP_EncodeBlock(b64, mac, static_cast<int>(len));
  return !timestamp.empty() && sign == std::string(reinterpret_cast<char*>(b64), n);
}

struct Env {
  TempDir dir;
  std::shared_ptr<model::Compound> compound = makeCompound();
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  RecordingListener listener;
  FakeRobot wecom;
  FakeRobot dingtalk;
  FakeRobot hook;
  AlertsConfig config;
  std::unique_ptr<AlertManager> manager;
  std::unique_ptr<Notifier> notifier;

  explicit Env(const std::string& extra = "  flood: {threshold: 5}\n", int max_batch = 10,
               const std::string& secret = kSecret) {
    dingtalk.setReply([](const httplib::Request& req, httplib::Response& res) {
      bool ok = dingTalkSignatureValid(kSecret, req.get_param_value("timestamp"),
                                       req.get_param_value("sign"));
      res.set_content(ok ? R"({"errcode":0,"errmsg":"ok"})"
                         : R"({"errcode":310000,"errmsg":"sign not match"})",
                      "application/json");
    });
    std::string yaml = "alerts:\n  channels:\n"
                       "    - {id: upstream, type: upstream}\n"
                       "    - {id: wecom, type: wecom, max_batch: " +
                       std::to_string(max_batch) + ", url: \"" +
                       wecom.url("/cgi-bin/webhook/send?key=K1") + "\"}\n" +
                       "    - {id: dingtalk, type: dingtalk, secret: \"" + secret + "\", url: \"" +
                       dingtalk.url("/robot/send?access_token=T1") + "\"}\n" +
                       "    - {id: hook, type: webhook, url: \"" + hook.url("/hgj/alerts") +
                       "\"}\n" +
                       "  delivery: {batch_delay: 0s, retry_initial: 2s, retry_max: 60s}\n" + extra;
    core::Diagnostics diag;
    config = parseConfig(yaml, *compound, diag);
    INFO(diag.format());
    REQUIRE(diag.ok());
    start();
  }
  void start() {
    manager = std::make_unique<AlertManager>(config, compound, dir.file("gateway.db"), clock, metrics, listener);
    notifier = std::make_unique<Notifier>(config, manager->deliveries(), manager->durableSink(),
                                          clock, metrics);
    manager->setWakeCallback([this] { notifier->wake(); });
  }
  void restart() {
    notifier.reset();
    manager.reset();
    start();
  }
  AlertRaise overTemp(const std::string& device = "S03/P07") {
    AlertRaise r;
    r.rule = "port_over_temp";
    r.device = compound->deviceIndex(device);
    r.severity = Severity::Critical;
    r.message = device + " 温度 75°C，超过 60°C";
    r.value = 75.0;
    r.source_ms = clock.wallMs() - 120;
    r.actions = "已自动断电";
    return r;
  }
  AlertRaise offline(int n) {
    char id[32];
    std::snprintf(id, sizeof id, "P-B1-%04d", n);
    AlertRaise r;
    r.rule = "device_offline";
    r.device = compound->deviceIndex(id);
    r.severity = Severity::Warning;
    r.message = std::string(id) + " 离线";
    return r;
  }
};

std::string expectedSection(int64_t id) {
  std::string s = std::to_string(id);
  return "### 【紧急】S03/P07 温度 75°C，超过 60°C\n"
         "> 位置：3号楼 S03车棚 7号口\n"
         "> 设备：S03/P07（一网格）\n"
         "> 负责人：张三 13800000001\n"
         "> 数值：75\n"
         "> 发生时间：2023-11-15 06:13:20\n"
         "> 已处置：已自动断电\n"
         "> 编号：" + s + "，请尽快处理并在[值守页面](http://127.0.0.1:8080/#alert-" + s + ")确认";
}

} // namespace

TEST_CASE("alerts delivery: WeCom gets markdown that mentions the grid staff", "[alerts][delivery]") {
  Env env;
  auto r = env.manager->raise(env.overTemp());
  auto p = env.notifier->pumpOnce("wecom");
  CHECK(p.ok);
  CHECK(p.delivered == 1);
  auto got = env.wecom.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0].path == "/cgi-bin/webhook/send");
  CHECK(json::parse(got[0].body) ==
        json{{"msgtype", "markdown"},
             {"markdown", {{"content", expectedSection(r.alert_id) + "\n<@zhangsan>"}}}});
  CHECK(one(env.dir.file("gateway.db"), "SELECT state, attempts FROM alert_notifications WHERE channel='wecom'") ==
        "sent|1");
  CHECK(env.metrics.value("hgj_alert_messages_sent_total", {{"channel", "wecom"}}) == 1);
  // Nothing more to send.
  CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);
}

TEST_CASE("alerts delivery: DingTalk messages are signed, and the test robot verifies the "
          "signature",
          "[alerts][delivery]") {
  SECTION("right secret") {
    Env env;
    AlertRaise smoke;
    smoke.rule = "shed_smoke";
    smoke.device = env.compound->deviceIndex("S03");
    smoke.severity = Severity::Critical;
    smoke.message = "S03 车棚烟雾报警";
    smoke.value = true;
    smoke.actions = "已切断整个车棚电源";
    smoke.escalate_now = true;
    auto r = env.manager->raise(smoke);
    auto p = env.notifier->pumpOnce("dingtalk");
    CHECK(p.ok);
    auto got = env.dingtalk.received();
    REQUIRE(got.size() == 1);
    CHECK(got[0].timestamp == std::to_string(env.clock.wallMs()));
    std::string id = std::to_string(r.alert_id);
    std::string text = "### 【紧急】S03 车棚烟雾报警\n"
                       "> 位置：3号楼\n"
                       "> 设备：S03（一网格）\n"
                       "> 负责人：张三 13800000001\n"
                       "> 数值：是\n"
                       "> 发生时间：2023-11-15 06:13:20\n"
                       "> 已处置：已切断整个车棚电源\n"
                       "> 编号：" + id + "，请尽快处理并在[值守页面](http://127.0.0.1:8080/#alert-" +
                       id + ")确认\n\n@13800000001 @13900000009";
    CHECK(json::parse(got[0].body) ==
          json{{"msgtype", "markdown"},
               {"markdown", {{"title", "示例小区告警"}, {"text", text}}},
               {"at", {{"atMobiles", {"13800000001", "13900000009"}}, {"isAtAll", false}}}});
  }
  SECTION("wrong secret: the robot refuses, the notification stays queued with the reason") {
    Env env("", 10, "SECwrong");
    env.manager->raise(env.overTemp());
    auto p = env.notifier->pumpOnce("dingtalk");
    CHECK(p.attempted);
    CHECK_FALSE(p.ok);
    CHECK(one(env.dir.file("gateway.db"), "SELECT state, attempts, last_error FROM alert_notifications WHERE "
                            "channel='dingtalk'") == "pending|1|errcode 310000: sign not match");
  }
}

TEST_CASE("alerts delivery: the generic webhook gets the alert's fields as JSON",
          "[alerts][delivery]") {
  Env env;
  auto r = env.manager->raise(env.overTemp());
  REQUIRE(env.notifier->pumpOnce("hook").ok);
  auto got = env.hook.received();
  REQUIRE(got.size() == 1);
  CHECK(got[0].path == "/hgj/alerts");
  json j = json::parse(got[0].body);
  CHECK(j["source"] == "hgj-gateway");
  CHECK(j["site"] == "demo");
  CHECK(j["title"] == "示例小区告警");
  CHECK(j["text"] == expectedSection(r.alert_id));
  CHECK(j["mentions"] == json::parse(R"({"wecom_users":["zhangsan"],"mobiles":["13800000001"]})"));
  REQUIRE(j["notifications"].size() == 1);
  json n = j["notifications"][0];
  CHECK(n["kind"] == "raised");
  CHECK(n["id"] == r.alert_id);
  CHECK(n["rule"] == "port_over_temp");
  CHECK(n["device"] == "S03/P07");
  CHECK(n["grid"] == "g1");
  CHECK(n["severity"] == "critical");
  CHECK(n["state"] == "active");
  CHECK(n["value"] == 75.0);
  CHECK(n["source_ts"] == env.clock.wallMs() - 120);
  CHECK(n["location"] == "3号楼 S03车棚 7号口");
  CHECK(n["actions"] == "已自动断电");
}

TEST_CASE("alerts delivery: 120 alerts at once stay under the robot's 20 messages per minute by "
          "batching",
          "[alerts][delivery]") {
  Env env("  flood: {threshold: 0}\n", 5);
  for (int n = 1; n <= 120; ++n) {
    REQUIRE(env.manager->raise(env.offline(n)).ok);
  }
  int delivered = 0;
  int messages = 0;
  for (int i = 0; i < 100; ++i) {
    auto p = env.notifier->pumpOnce("wecom");
    if (!p.attempted) {
      break;
    }
    REQUIRE(p.ok);
    delivered += p.delivered;
    ++messages;
  }
  CHECK(messages == 20);
  CHECK(delivered == 100);
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE state='pending'") ==
        "20");
  env.clock.advance(59s);
  CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);
  env.clock.advance(1s);
  for (int i = 0; i < 100; ++i) {
    auto p = env.notifier->pumpOnce("wecom");
    if (!p.attempted) {
      break;
    }
    delivered += p.delivered;
    ++messages;
  }
  CHECK(messages == 24);
  CHECK(delivered == 120);
  auto got = env.wecom.received();
  REQUIRE(got.size() == 24);
  std::string content = json::parse(got[0].body)["markdown"]["content"];
  CHECK(content.rfind("**示例小区告警（5 条）**\n\n### 【警告】P-B1-0001 离线", 0) == 0);
  CHECK(content.size() <= 4000);
  CHECK(content.find("<@wangwu>") != std::string::npos);
  CHECK(content.find("<@wangwu><@wangwu>") == std::string::npos);  // mentioned once per message
}

TEST_CASE("alerts delivery: a robot that returns errors is retried with exponential backoff "
          "until it accepts",
          "[alerts][delivery]") {
  Env env;
  std::atomic<int> calls{0};
  env.wecom.setReply([&](const httplib::Request&, httplib::Response& res) {
    int n = ++calls;
    if (n == 1) {
      res.status = 500;
    } else if (n == 2) {
      res.set_content(R"({"errcode":-1,"errmsg":"system busy"})", "application/json");
    } else {
      res.set_content(R"({"errcode":0,"errmsg":"ok"})", "application/json");
    }
  });
  env.manager->raise(env.overTemp());
  auto p = env.notifier->pumpOnce("wecom");
  CHECK(p.attempted);
  CHECK_FALSE(p.ok);
  CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);  // backing off 2 s
  env.clock.advance(1999ms);
  CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);
  env.clock.advance(1ms);
  p = env.notifier->pumpOnce("wecom");
  CHECK(p.attempted);
  CHECK_FALSE(p.ok);
  auto st = env.notifier->status();
  auto w = std::find_if(st.begin(), st.end(), [](const auto& s) { return s.id == "wecom"; });
  REQUIRE(w != st.end());
  CHECK(w->backoff_ms == 4000);
  CHECK(w->last_error == "errcode -1: system busy");
  CHECK(w->pending == 1);
  env.clock.advance(3999ms);
  CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);
  env.clock.advance(1ms);
  p = env.notifier->pumpOnce("wecom");
  CHECK(p.ok);
  CHECK(calls == 3);
  auto got = env.wecom.received();
  REQUIRE(got.size() == 3);
  CHECK(got[0].body == got[2].body);
  CHECK(one(env.dir.file("gateway.db"), "SELECT state, attempts, last_error IS NULL FROM alert_notifications "
                          "WHERE channel='wecom'") == "sent|3|1");
  CHECK(env.metrics.value("hgj_alert_delivery_failures_total", {{"channel", "wecom"}}) == 2);
}

TEST_CASE("alerts delivery: notifications undelivered at a restart are sent after it, and "
          "delivered ones are not sent again",
          "[alerts][delivery]") {
  Env env;
  env.manager->raise(env.overTemp("S03/P01"));
  REQUIRE(env.notifier->pumpOnce("wecom").ok);
  env.wecom.setReply([](const httplib::Request&, httplib::Response& res) { res.status = 503; });
  env.manager->raise(env.overTemp("S03/P02"));
  env.manager->raise(env.overTemp("S03/P03"));
  CHECK_FALSE(env.notifier->pumpOnce("wecom").ok);

  env.restart();
  env.wecom.setReply(nullptr);
  auto p = env.notifier->pumpOnce("wecom");
  CHECK(p.ok);
  CHECK(p.delivered == 2);
  auto got = env.wecom.received();
  REQUIRE(got.size() == 3);
  std::string last = json::parse(got[2].body)["markdown"]["content"];
  CHECK(last.find("S03/P02") != std::string::npos);
  CHECK(last.find("S03/P03") != std::string::npos);
  CHECK(last.find("S03/P01") == std::string::npos);
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE channel='wecom' AND "
                          "state='sent'") == "3");
  CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);
}

TEST_CASE("alerts delivery: a late message says the alert has cleared meanwhile",
          "[alerts][delivery]") {
  Env env;
  env.manager->raise(env.overTemp());
  env.manager->clear("port_over_temp", env.compound->deviceIndex("S03/P07"));
  REQUIRE(env.notifier->pumpOnce("wecom").ok);
  std::string content = json::parse(env.wecom.received().at(0).body)["markdown"]["content"];
  CHECK(content.find("（2 条）") != std::string::npos);
  CHECK(content.find("> 当前状态：已恢复") != std::string::npos);
  CHECK(content.find("### 【已恢复】") != std::string::npos);
}

TEST_CASE("alerts delivery: 200 sensors going offline reach the group as two messages",
          "[alerts][delivery]") {
  Env env;
  for (int n = 1; n <= 200; ++n) {
    env.manager->raise(env.offline(n));
  }
  REQUIRE(env.notifier->pumpOnce("wecom").delivered == 5);
  env.clock.advance(10s);
  env.manager->tick();
  REQUIRE(env.notifier->pumpOnce("wecom").delivered == 1);
  CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);
  auto got = env.wecom.received();
  REQUIRE(got.size() == 2);
  std::string summary = json::parse(got[1].body)["markdown"]["content"];
  CHECK(summary.rfind("### 【汇总·警告】195 条告警：P-B1-0006 离线 等\n> 网格：地库网格", 0) == 0);
  CHECK(summary.find("<@wangwu>") != std::string::npos);
}

TEST_CASE("alerts delivery: with the worker threads running, smoke reaches the robots while a "
          "hung robot delays only itself",
          "[alerts][delivery]") {
  Env env;
  std::atomic<bool> release{false};
  // The WeCom robot hangs (answers only after the client's timeout or the end of the test).
  env.wecom.setReply([&](const httplib::Request&, httplib::Response& res) {
    waitFor([&] { return release.load(); }, 3000ms);
    res.set_content(R"({"errcode":0})", "application/json");
  });
  env.config.channels[1].timeout = 300ms;
  core::SystemClock& real = core::SystemClock::instance();
  env.notifier.reset();
  env.manager.reset();
  env.manager =
      std::make_unique<AlertManager>(env.config, env.compound, env.dir.file("gateway.db"), real, env.metrics,
                                     env.listener);
  env.notifier = std::make_unique<Notifier>(env.config, env.manager->deliveries(),
                                            env.manager->durableSink(), real, env.metrics);
  env.manager->setWakeCallback([&] { env.notifier->wake(); });
  env.notifier->start();

  AlertRaise smoke;
  smoke.rule = "shed_smoke";
  smoke.device = env.compound->deviceIndex("S03");
  smoke.severity = Severity::Critical;
  smoke.message = "S03 车棚烟雾报警";
  smoke.value = true;
  smoke.escalate_now = true;
  auto r = env.manager->raise(smoke);
  REQUIRE(r.ok);
  // The other robots get it while the WeCom request still hangs (it is answered only after
  // `release`): one robot's stall is its own. (No bound on how fast: that is the benchmark's.)
  CHECK(waitFor([&] { return env.dingtalk.count() >= 1 && env.hook.count() >= 1; }, 10s));
  CHECK(waitFor([&] { return env.wecom.count() >= 1; }, 10s));
  CHECK_FALSE(release.load());
  auto got = env.dingtalk.received();
  REQUIRE_FALSE(got.empty());
  CHECK(json::parse(got[0].body)["at"]["atMobiles"] == json{"13800000001", "13900000009"});
  release = true;
  env.notifier->stop();
}

TEST_CASE("alerts delivery: each alert's delivery state per channel is readable for the API",
          "[alerts][delivery]") {
  Env env;
  auto r = env.manager->raise(env.overTemp());
  env.wecom.setReply([](const httplib::Request&, httplib::Response& res) { res.status = 502; });
  REQUIRE(env.notifier->pumpOnce("dingtalk").ok);
  env.notifier->pumpOnce("wecom");
  storage::Database db(env.dir.file("gateway.db"));
  json d = deliveriesJson(db, r.alert_id);
  REQUIRE(d.size() == 3);
  std::map<std::string, json> by_channel;
  for (const auto& x : d) {
    by_channel[x["channel"]] = x;
  }
  CHECK(by_channel["dingtalk"]["state"] == "sent");
  CHECK(by_channel["dingtalk"]["sent_at"] == env.clock.wallMs());
  CHECK(by_channel["wecom"]["state"] == "pending");
  CHECK(by_channel["wecom"]["attempts"] == 1);
  CHECK(by_channel["wecom"]["last_error"] == "http 502");
  CHECK(by_channel["hook"]["state"] == "pending");
  CHECK(by_channel["hook"]["attempts"] == 0);
}

TEST_CASE("alerts delivery: a notification undelivered for a day expires instead of going out "
          "late, unless it was stamped before the wall clock was set",
          "[alerts][delivery]") {
  SECTION("expired after delivery.expire_after") {
    Env env;
    env.manager->raise(env.overTemp());
    env.clock.advance(std::chrono::hours(25));
    CHECK_FALSE(env.notifier->pumpOnce("wecom").attempted);
    CHECK(env.wecom.count() == 0);
    CHECK(one(env.dir.file("gateway.db"), "SELECT state FROM alert_notifications WHERE channel='wecom'") ==
          "expired");
    CHECK(env.metrics.value("hgj_alert_notifications_expired_total", {{"channel", "wecom"}}) == 1);
  }
  SECTION("raised at boot with the clock at 1970, delivered after NTP set it") {
    Env env;
    env.clock.setWallMs(5'000);
    env.manager->raise(env.overTemp());
    env.clock.setWallMs(1'800'000'000'000);
    CHECK(env.notifier->pumpOnce("wecom").ok);
    CHECK(env.wecom.count() == 1);
  }
}
