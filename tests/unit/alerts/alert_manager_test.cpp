#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/alerts/alert_manager.h"
#include "tests/unit/alerts/alerts_fixture.h"

using namespace hgj;
using namespace hgj::alerts;
using namespace hgj::alerts::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const char* kYaml = R"(alerts:
  channels:
    - {id: upstream, type: upstream}
    - {id: wecom, type: wecom, url: "http://127.0.0.1:9/cgi-bin/webhook/send?key=K"}
    - {id: dingtalk, type: dingtalk, url: "http://127.0.0.1:9/robot/send?access_token=T",
       secret: SECx}
    - {id: hook, type: webhook, url: "http://127.0.0.1:9/hook"}
  escalation:
    warning: {ack_timeout: 30m, renotify: 10m}
    critical: {ack_timeout: 5m, renotify: 5m}
  flood: {window: 60s, threshold: 5}
)";

// tests/support's query helper (columns joined by '|'). The copy this file had tripped GCC 12's
// -Werror=restrict false positive in Release builds ("|" + std::string).
constexpr auto rows = hgj::test::queryRows;

std::string one(const std::string& db_path, const std::string& sql) {
  auto r = rows(db_path, sql);
  return r.empty() ? "" : r.front();
}

/// Forwards to a DirectSink and counts the submissions (one per transaction).
struct CountingSink : storage::DurableSink {
  explicit CountingSink(const std::string& path) : direct(path) {}
  void submit(std::vector<storage::DurableWrite> writes) override {
    ++submits;
    direct.submit(std::move(writes));
  }
  storage::DirectSink direct;
  int submits = 0;
};

/// A disk that takes nothing: writes are kept until releaseTo().
struct HoldingSink : storage::DurableSink {
  void submit(std::vector<storage::DurableWrite> writes) override {
    for (auto& w : writes) {
      held.push_back(std::move(w));
    }
  }
  void releaseTo(storage::DurableSink& sink) { sink.submit(std::exchange(held, {})); }
  std::vector<storage::DurableWrite> held;
};

/// A disk that loses everything.
struct DroppingSink : storage::DurableSink {
  void submit(std::vector<storage::DurableWrite>) override {}
};

struct Env {
  TempDir dir;
  std::shared_ptr<model::Compound> compound = makeCompound();
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  RecordingListener listener;
  AlertsConfig config;
  std::unique_ptr<AlertManager> manager;

  Env() {
    core::Diagnostics diag;
    config = parseConfig(kYaml, *compound, diag);
    REQUIRE(diag.ok());
    start();
  }
  void start() {
    manager = std::make_unique<AlertManager>(config, compound, dir.file("gateway.db"), clock, metrics, listener);
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
};

} // namespace

TEST_CASE("alerts manager: one open alert per rule and device, a repeat updates it",
          "[alerts][manager]") {
  Env env;
  auto first = env.manager->raise(env.overTemp());
  REQUIRE(first.ok);
  CHECK(first.created);
  AlertRaise again = env.overTemp();
  again.value = 78.5;
  auto second = env.manager->raise(again);
  CHECK(second.ok);
  CHECK_FALSE(second.created);
  CHECK(second.alert_id == first.alert_id);
  env.manager->tick();
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts") == "1");
  CHECK(one(env.dir.file("gateway.db"), "SELECT value, state, grid, severity FROM alerts") ==
        "78.5|active|g1|critical");
  CHECK(env.metrics.value("hgj_alerts_raised_total") == 1);
  CHECK(env.metrics.value("hgj_alerts_open", {{"state", "active"}}) == 1);
  // Each HTTP channel of grid g1 got one notification; upstream is the listener, not a row.
  CHECK(rows(env.dir.file("gateway.db"), "SELECT channel, kind, state, level FROM alert_notifications "
                           "ORDER BY channel") ==
        std::vector<std::string>{"dingtalk|raised|pending|0", "hook|raised|pending|0",
                                 "wecom|raised|pending|0"});
  REQUIRE(env.listener.events.size() == 1);
  CHECK(env.listener.events[0].kind == AlertEventKind::Raised);
  CHECK(env.listener.events[0].alert.source_ts == env.clock.wallMs() - 120);
}

TEST_CASE("alerts manager: the notification text says what, where, value, since, what was done "
          "and how to ack",
          "[alerts][manager]") {
  Env env;
  auto r = env.manager->raise(env.overTemp());
  std::string body = one(env.dir.file("gateway.db"), "SELECT body FROM alert_notifications WHERE channel='wecom'");
  std::string id = std::to_string(r.alert_id);
  CHECK(body == "### 【紧急】S03/P07 温度 75°C，超过 60°C\n"
                "> 位置：3号楼 S03车棚 7号口\n"
                "> 设备：S03/P07（一网格）\n"
                "> 负责人：张三 13800000001\n"
                "> 数值：75\n"
                "> 发生时间：2023-11-15 06:13:20\n"
                "> 已处置：已自动断电\n"
                "> 编号：" + id + "，请尽快处理并在[值守页面](http://127.0.0.1:8080/#alert-" + id +
                    ")确认");
  auto mentions = nlohmann::json::parse(
      one(env.dir.file("gateway.db"), "SELECT mentions FROM alert_notifications WHERE channel='wecom'"));
  CHECK(mentions == nlohmann::json::parse(R"({"wecom":["zhangsan"],"mobiles":["13800000001"]})"));
}

TEST_CASE("alerts manager: ack answers ok, already acked, unknown id and already cleared",
          "[alerts][manager]") {
  Env env;
  auto r = env.manager->raise(env.overTemp());
  env.clock.advance(30s);
  auto ok = env.manager->ack(r.alert_id, "张三", "已到现场");
  CHECK(ok.status == AckStatus::Ok);
  CHECK(ok.alert.state == AlertState::Acked);
  CHECK(env.manager->ack(r.alert_id, "李四", "").status == AckStatus::AlreadyAcked);
  CHECK(env.manager->ack(9999, "张三", "").status == AckStatus::UnknownId);
  CHECK(one(env.dir.file("gateway.db"), "SELECT state, acked_by, ack_note, acked_at - raised_at FROM alerts") ==
        "acked|张三|已到现场|30000");
  CHECK(env.metrics.value("hgj_alerts_open", {{"state", "acked"}}) == 1);

  CHECK(env.manager->clear("port_over_temp", env.compound->deviceIndex("S03/P07")));
  CHECK_FALSE(env.manager->clear("port_over_temp", env.compound->deviceIndex("S03/P07")));
  CHECK(env.manager->ack(r.alert_id, "张三", "").status == AckStatus::AlreadyCleared);
  CHECK(one(env.dir.file("gateway.db"), "SELECT state FROM alerts") == "cleared");
  CHECK(rows(env.dir.file("gateway.db"), "SELECT kind, actor FROM alert_events ORDER BY id") ==
        std::vector<std::string>{"raised|gateway", "acked|张三", "cleared|gateway"});
  REQUIRE(env.listener.events.size() == 3);
  CHECK(env.listener.events[1].kind == AlertEventKind::Acked);
  CHECK(env.listener.events[1].actor == "张三");
  CHECK(env.listener.events[2].kind == AlertEventKind::Cleared);
  // The group hears about the ack and the clearance too (critical policy), without mentions.
  CHECK(rows(env.dir.file("gateway.db"), "SELECT kind, mentions FROM alert_notifications WHERE channel='wecom' "
                           "ORDER BY id") ==
        std::vector<std::string>{"raised|{\"mobiles\":[\"13800000001\"],\"wecom\":[\"zhangsan\"]}",
                                 "acked|{\"mobiles\":[],\"wecom\":[]}",
                                 "cleared|{\"mobiles\":[],\"wecom\":[]}"});
  // Raised again after clearing: a new incident, a new alert.
  auto again = env.manager->raise(env.overTemp());
  CHECK(again.created);
  CHECK(again.alert_id != r.alert_id);
}

TEST_CASE("alerts manager: unacknowledged alerts escalate after the ack timeout and re-notify "
          "until acked",
          "[alerts][manager]") {
  Env env;
  AlertRaise r = env.overTemp("P-B1-0001");
  r.rule = "ev_space_blocked";
  r.severity = Severity::Warning;
  r.actions = "";
  env.compound = makeCompound();
  // Use g1 so there are escalation contacts.
  r.device = env.compound->deviceIndex("S03/P01");
  auto raised = env.manager->raise(r);
  REQUIRE(raised.ok);
  auto count = [&](const std::string& kind) {
    return one(env.dir.file("gateway.db"),
               "SELECT COUNT(*) FROM alert_notifications WHERE channel='wecom' AND kind='" + kind +
                   "'");
  };
  env.clock.advance(29min);
  env.manager->tick();
  CHECK(count("escalated") == "0");
  env.clock.advance(1min);
  env.manager->tick();
  CHECK(count("escalated") == "1");
  CHECK(one(env.dir.file("gateway.db"), "SELECT escalation_level FROM alerts") == "1");
  auto mentions = nlohmann::json::parse(one(
      env.dir.file("gateway.db"), "SELECT mentions FROM alert_notifications WHERE kind='escalated' AND "
                    "channel='dingtalk'"));
  CHECK(mentions["mobiles"] == nlohmann::json::parse(R"(["13800000001","13900000009"])"));
  CHECK(mentions["wecom"] == nlohmann::json::parse(R"(["zhangsan","limanager"])"));
  REQUIRE(env.listener.events.size() == 2);
  CHECK(env.listener.events[1].kind == AlertEventKind::Escalated);
  CHECK(env.listener.events[1].alert.escalation_level == 1);
  std::string body = one(env.dir.file("gateway.db"),
                         "SELECT body FROM alert_notifications WHERE kind='escalated' LIMIT 1");
  CHECK(body.find("已 30分钟 无人确认") != std::string::npos);

  env.clock.advance(9min);
  env.manager->tick();
  CHECK(count("renotify") == "0");
  env.clock.advance(1min);
  env.manager->tick();
  CHECK(count("renotify") == "1");
  env.clock.advance(10min);
  env.manager->tick();
  CHECK(count("renotify") == "2");

  env.manager->ack(raised.alert_id, "张三", "");
  env.clock.advance(60min);
  env.manager->tick();
  CHECK(count("renotify") == "2");
  CHECK(count("escalated") == "1");
}

TEST_CASE("alerts manager: smoke goes to staff and escalation contacts in the first message",
          "[alerts][manager]") {
  Env env;
  AlertRaise r;
  r.rule = "shed_smoke";
  r.device = env.compound->deviceIndex("S03");
  r.severity = Severity::Critical;
  r.message = "S03 车棚烟雾报警";
  r.value = true;
  r.actions = "已切断整个车棚电源";
  r.escalate_now = true;
  env.manager->raise(r);
  auto mentions = nlohmann::json::parse(
      one(env.dir.file("gateway.db"), "SELECT mentions FROM alert_notifications WHERE channel='wecom'"));
  CHECK(mentions["wecom"] == nlohmann::json::parse(R"(["zhangsan","limanager"])"));
  CHECK(one(env.dir.file("gateway.db"), "SELECT escalation_level FROM alerts") == "1");
  // Then re-notified every 5 minutes (critical) until acked.
  env.clock.advance(5min);
  env.manager->tick();
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE kind='renotify' AND "
                          "channel='wecom'") == "1");
}

TEST_CASE("alerts manager: open alerts and their timers survive a restart", "[alerts][manager]") {
  Env env;
  AlertRaise r = env.overTemp("S03/P02");
  r.severity = Severity::Warning;
  auto raised = env.manager->raise(r);
  auto other = env.manager->raise(env.overTemp("S03/P03"));
  env.manager->ack(other.alert_id, "张三", "");
  env.clock.advance(20min);
  env.manager.reset();
  env.listener.events.clear();
  env.start();

  auto open = env.manager->openAlerts();
  REQUIRE(open.size() == 2);
  CHECK(open[0].id == raised.alert_id);
  CHECK(open[1].state == AlertState::Acked);
  CHECK(env.manager->find("port_over_temp", "S03/P02").has_value());
  // A repeat after the restart updates the restored alert rather than raising a new one.
  CHECK_FALSE(env.manager->raise(r).created);
  // 30 minutes after the raise, counted across the restart, it escalates.
  env.clock.advance(9min);
  env.manager->tick();
  CHECK(env.listener.events.empty());
  env.clock.advance(1min);
  env.manager->tick();
  REQUIRE(env.listener.events.size() == 1);
  CHECK(env.listener.events[0].kind == AlertEventKind::Escalated);
  CHECK(env.manager->ack(other.alert_id, "x", "").status == AckStatus::AlreadyAcked);
  CHECK(env.manager->clear("port_over_temp", "S03/P03"));
}

TEST_CASE("alerts manager: a storm of one kind becomes a few messages and one summary",
          "[alerts][manager]") {
  Env env;
  for (int n = 1; n <= 200; ++n) {
    char id[32];
    std::snprintf(id, sizeof id, "P-B1-%04d", n);
    AlertRaise r;
    r.rule = "device_offline";
    r.device = env.compound->deviceIndex(id);
    r.severity = Severity::Warning;
    r.message = std::string(id) + " 离线";
    REQUIRE(env.manager->raise(r).ok);
  }
  CHECK(env.metrics.value("hgj_alerts_raised_total") == 200);
  CHECK(env.listener.events.size() == 200);  // upstream still gets every alert
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE state='pending'") ==
        "5");
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE state='held'") ==
        "195");
  env.clock.advance(5s);
  env.manager->tick();
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE kind='summary'") == "0");
  env.clock.advance(5s);
  env.manager->tick();
  auto summary = rows(env.dir.file("gateway.db"), "SELECT id, channel, state, body FROM alert_notifications "
                                    "WHERE kind='summary'");
  REQUIRE(summary.size() == 1);
  CHECK(summary[0].find("wecom|pending|### 【汇总·警告】195 条告警：P-B1-0006 离线 等") !=
        std::string::npos);
  CHECK(summary[0].find("P-B1-0006、P-B1-0007") != std::string::npos);
  CHECK(summary[0].find("等 195 个设备") != std::string::npos);
  // Every held notification points at the summary that carried it.
  std::string summary_id = summary[0].substr(0, summary[0].find('|'));
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE state='summarised' AND "
                          "summary_id=" + summary_id) == "195");
}

TEST_CASE("alerts manager: held storm notifications are summarised after a crash",
          "[alerts][manager]") {
  Env env;
  for (int n = 1; n <= 8; ++n) {
    char id[32];
    std::snprintf(id, sizeof id, "P-B1-%04d", n);
    AlertRaise r;
    r.rule = "device_offline";
    r.device = env.compound->deviceIndex(id);
    r.message = std::string(id) + " 离线";
    env.manager->raise(r);
  }
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE state='held'") == "3");
  env.manager.reset();
  env.start();
  env.manager->tick();
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE state='held'") == "0");
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications WHERE kind='summary'") == "1");
}

TEST_CASE("alerts manager: a batch is one transaction, each alert is announced at once, before "
          "its commit",
          "[alerts][manager]") {
  Env env;
  CountingSink sink(env.dir.file("gateway.db"));
  env.manager.reset();
  env.manager = std::make_unique<AlertManager>(env.config, env.compound, env.dir.file("gateway.db"), sink,
                                               env.clock, env.metrics, env.listener);
  int wakes = 0;
  env.manager->setWakeCallback([&] { ++wakes; });
  env.manager->beginBatch();
  for (int n = 1; n <= 4; ++n) {
    char id[32];
    std::snprintf(id, sizeof id, "S03/P%02d", n);
    REQUIRE(env.manager->raise(env.overTemp(id)).ok);
  }
  // Announced (dashboard, upstream) before anything is written; the robots' queue is filled
  // with the commit's submission.
  CHECK(env.listener.events.size() == 4);
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts") == "0");
  CHECK(env.manager->deliveries().pendingCount("wecom") == 0);
  CHECK(wakes == 0);
  CHECK(sink.submits == 0);
  CHECK(env.manager->commitBatch());
  CHECK(sink.submits == 1);
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts") == "4");
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alert_notifications") == "12");
  CHECK(env.manager->deliveries().pendingCount("wecom") == 4);
  CHECK(wakes == 1);
}

TEST_CASE("alerts manager: the upstream message is written in the alert's own transaction",
          "[alerts][manager]") {
  Env env;
  CountingSink sink(env.dir.file("gateway.db"));
  env.manager.reset();
  env.manager = std::make_unique<AlertManager>(env.config, env.compound, env.dir.file("gateway.db"), sink,
                                               env.clock, env.metrics, env.listener);
  std::vector<std::string> sent;
  env.manager->setUpstream([&](const AlertEvent& ev) {
    sent.push_back(eventKindName(ev.kind));  // "published" now, before any write
    std::optional<storage::DurableWrite> w = storage::DurableWrite{};
    w->apply = [id = ev.alert.id, kind = std::string(eventKindName(ev.kind))](
                   storage::Database& db) {
      db.exec("CREATE TABLE IF NOT EXISTS upstream_probe(alert_id, kind)");
      db.prepare("INSERT INTO upstream_probe VALUES(?, ?)").bind(1, id).bind(2, kind).run();
    };
    return w;
  });
  auto r = env.manager->raise(env.overTemp());
  REQUIRE(r.ok);
  CHECK(sent == std::vector<std::string>{"raised"});
  CHECK(sink.submits == 1);  // the alert, its event, notifications and message: one commit
  CHECK(one(env.dir.file("gateway.db"), "SELECT alert_id, kind FROM upstream_probe") ==
        std::to_string(r.alert_id) + "|raised");
}

TEST_CASE("alerts manager: an alert id is never given twice, even when a crash lost the rows of "
          "alerts that were already announced",
          "[alerts][manager]") {
  Env env;
  // Writes that never land: the disk died, then the box (this manager is never stopped in
  // order while the next one starts).
  DroppingSink dead;
  AlertManager lost(env.config, env.compound, env.dir.file("gateway.db"), dead, env.clock, env.metrics,
                    env.listener);
  auto first = lost.raise(env.overTemp("S03/P01"));
  auto second = lost.raise(env.overTemp("S03/P02"));
  REQUIRE(first.ok);
  REQUIRE(second.ok);
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts WHERE id IN (" +
                              std::to_string(first.alert_id) + "," +
                              std::to_string(second.alert_id) + ")") == "0");
  AlertManager next(env.config, env.compound, env.dir.file("gateway.db"), env.clock, env.metrics,
                    env.listener);
  auto third = next.raise(env.overTemp("S03/P03"));
  REQUIRE(third.ok);
  CHECK(third.alert_id > second.alert_id);
}

TEST_CASE("alerts manager: records its schema version beside the store's", "[alerts][manager]") {
  Env env;
  CHECK(one(env.dir.file("gateway.db"), "SELECT version, updated_ms FROM schema_versions WHERE "
                          "component='alerts'") ==
        std::to_string(kAlertsSchemaVersion) + "|" + std::to_string(env.clock.wallMs()));
  CHECK(one(env.dir.file("gateway.db"), "PRAGMA journal_mode") == "wal");
}

TEST_CASE("alerts manager: upstream events carry the alert's fields, the event kind and the "
          "source time",
          "[alerts][manager]") {
  Env env;
  auto r = env.manager->raise(env.overTemp());
  env.manager->ack(r.alert_id, "张三", "处理中");
  REQUIRE(env.listener.events.size() == 2);
  json j = toJson(env.listener.events[1]);
  CHECK(j["event"] == "acked");
  CHECK(j["actor"] == "张三");
  CHECK(j["id"] == r.alert_id);
  CHECK(j["rule"] == "port_over_temp");
  CHECK(j["device"] == "S03/P07");
  CHECK(j["grid"] == "g1");
  CHECK(j["severity"] == "critical");
  CHECK(j["state"] == "acked");
  CHECK(j["value"] == 75.0);
  CHECK(j["source_ts"] == env.clock.wallMs() - 120);
  CHECK(j["raised_at"] == env.clock.wallMs());
  CHECK(j["acked_at"] == env.clock.wallMs());
  CHECK(j["acked_by"] == "张三");
  CHECK(j["ack_note"] == "处理中");
  CHECK(j["cleared_at"].is_null());
  CHECK(j["actions"] == "已自动断电");
}

TEST_CASE("alerts manager: the gateway's own alerts have no grid and go to the default channels",
          "[alerts][manager]") {
  TempDir dir;
  auto compound = makeCompound();
  core::ManualClock clock;
  core::MetricsRegistry metrics;
  RecordingListener listener;
  core::Diagnostics diag;
  AlertsConfig config = parseConfig(std::string(kYaml) + "  default_channels: [upstream, hook]\n",
                                    *compound, diag);
  REQUIRE(diag.ok());
  AlertManager m(config, compound, dir.file("gateway.db"), clock, metrics, listener);
  AlertRaise r;
  r.rule = "outbox_full";
  r.device_id = "gateway";
  r.severity = Severity::Warning;
  r.message = "上行缓存已满，已丢弃最早的汇总";
  auto res = m.raise(r);
  REQUIRE(res.ok);
  CHECK(one(dir.file("gateway.db"), "SELECT device, grid IS NULL FROM alerts") == "gateway|1");
  CHECK(rows(dir.file("gateway.db"), "SELECT channel FROM alert_notifications") ==
        std::vector<std::string>{"hook"});
  CHECK(m.clear("outbox_full", std::string("gateway")));
}

TEST_CASE("alerts manager: a batch without alert changes writes nothing",
          "[alerts][manager]") {
  Env env;
  CountingSink sink(env.dir.file("gateway.db"));
  env.manager.reset();
  env.manager = std::make_unique<AlertManager>(env.config, env.compound, env.dir.file("gateway.db"), sink,
                                               env.clock, env.metrics, env.listener);
  env.manager->beginBatch();
  CHECK(env.manager->commitBatch());
  env.manager->beginBatch();
  env.manager->tick();  // nothing dirty, nothing due
  CHECK(env.manager->commitBatch());
  CHECK(sink.submits == 0);
}

TEST_CASE("alerts manager: with the disk refusing writes, alerts are still announced and queued "
          "for the robots, and written once it takes them again",
          "[alerts][manager]") {
  Env env;
  HoldingSink held;
  env.manager.reset();
  env.manager = std::make_unique<AlertManager>(env.config, env.compound, env.dir.file("gateway.db"), held,
                                               env.clock, env.metrics, env.listener);
  auto r = env.manager->raise(env.overTemp());
  REQUIRE(r.ok);
  CHECK(env.listener.events.size() == 1);
  auto waiting = env.manager->deliveries().pending("wecom", 10);
  REQUIRE(waiting.size() == 1);
  CHECK(waiting[0].alert_id == r.alert_id);
  CHECK(one(env.dir.file("gateway.db"), "SELECT COUNT(*) FROM alerts") == "0");
  env.clock.advance(30s);
  CHECK(env.manager->ack(r.alert_id, "张三", "").status == AckStatus::Ok);
  // Space again: everything lands, in order.
  storage::DirectSink disk(env.dir.file("gateway.db"));
  held.releaseTo(disk);
  CHECK(one(env.dir.file("gateway.db"), "SELECT state, acked_by FROM alerts") == "acked|张三");
  CHECK(rows(env.dir.file("gateway.db"), "SELECT kind FROM alert_events ORDER BY id") ==
        std::vector<std::string>{"raised", "acked"});
}

TEST_CASE("alerts manager: values are written for people (是/否, one decimal, the point's unit) "
          "and templates name the responsible staff",
          "[alerts][manager][format]") {
  Env env;
  env.manager->setUnitResolver([](const AlertRecord& a) {
    return a.rule == "port_over_temp" ? std::string("°C") : std::string();
  });
  auto hot = env.overTemp();
  hot.value = 75.2345;
  env.manager->raise(hot);
  std::string body = one(env.dir.file("gateway.db"), "SELECT body FROM alert_notifications WHERE channel='wecom'");
  CHECK(body.find("> 数值：75.2°C\n") != std::string::npos);
  CHECK(body.find("> 负责人：张三 13800000001\n") != std::string::npos);

  AlertRaise smoke;
  smoke.rule = "shed_smoke";
  smoke.device = env.compound->deviceIndex("S03");
  smoke.severity = Severity::Critical;
  smoke.message = "S03 3号楼: 充电棚烟雾报警";
  smoke.value = std::string("true");  // how the pipeline hands over a boolean reading
  env.manager->raise(smoke);
  std::string sbody = one(env.dir.file("gateway.db"), "SELECT body FROM alert_notifications WHERE "
                                        "channel='wecom' ORDER BY id DESC LIMIT 1");
  CHECK(sbody.find("> 数值：是\n") != std::string::npos);
  CHECK(sbody.find("true") == std::string::npos);
}
