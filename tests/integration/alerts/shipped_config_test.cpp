#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/alerts/alert_manager.h"
#include "gateway/alerts/notifier.h"
#include "gateway/config/config.h"
#include "tests/unit/alerts/alerts_fixture.h"

using namespace hgj;
using namespace hgj::alerts;
using namespace hgj::alerts::testing;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("alerts delivery: smoke in shed S03 of the shipped compound reaches grid G3's staff and "
          "managers on WeCom and DingTalk within 2 s",
          "[alerts][delivery]") {
  core::Diagnostics diag;
  auto cfg = config::loadConfig(std::string(HGJ_SOURCE_DIR) + "/conf/gateway.yaml", {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  AlertsConfig alerts = cfg.alerts;
  REQUIRE(diag.ok());
  // The shipped robots point at 127.0.0.1 placeholders; aim them at this test's servers.
  FakeRobot wecom;
  FakeRobot dingtalk;
  for (auto& c : alerts.channels) {
    if (c.type == ChannelType::WeCom) {
      c.url = wecom.url("/cgi-bin/webhook/send?key=K");
    } else if (c.type == ChannelType::DingTalk) {
      c.url = dingtalk.url("/robot/send?access_token=T");
    } else if (c.type == ChannelType::Webhook) {
      c.enabled = false;
    }
  }
  TempDir dir;
  core::MetricsRegistry metrics;
  RecordingListener listener;
  core::SystemClock& clock = core::SystemClock::instance();
  AlertManager manager(alerts, cfg.compound, dir.file("gateway.db"), clock, metrics, listener);
  Notifier notifier(alerts, manager.deliveries(), manager.durableSink(), clock, metrics);
  manager.setWakeCallback([&] { notifier.wake(); });
  notifier.start();

  AlertRaise smoke;
  smoke.rule = "shed_smoke";
  smoke.device = cfg.compound->deviceIndex("S03");
  REQUIRE(smoke.device != model::kNoDevice);
  smoke.severity = Severity::Critical;
  smoke.message = "S03 车棚烟雾报警";
  smoke.value = true;
  smoke.source_ms = clock.wallMs();
  smoke.actions = "已切断整个车棚电源";
  smoke.escalate_now = true;
  REQUIRE(manager.raise(smoke).ok);
  // Delivered (how fast is measured by the benchmark, not bounded here under a loaded ctest).
  REQUIRE(waitFor([&] { return wecom.count() >= 1 && dingtalk.count() >= 1; }, 10s));
  notifier.stop();

  const model::Grid* g3 = cfg.compound->grid("G3");
  REQUIRE(g3 != nullptr);
  std::string content = json::parse(wecom.received()[0].body)["markdown"]["content"];
  CHECK(content.find("S03 车棚烟雾报警") != std::string::npos);
  CHECK(content.find("已切断整个车棚电源") != std::string::npos);
  json at = json::parse(dingtalk.received()[0].body)["at"]["atMobiles"];
  for (const auto& people : {g3->staff, g3->escalation}) {
    for (const auto& s : people) {
      CHECK(content.find("<@" + s.wecom_user + ">") != std::string::npos);
      const std::string& mobile = s.dingtalk_mobile.empty() ? s.phone : s.dingtalk_mobile;
      CHECK(std::find(at.begin(), at.end(), mobile) != at.end());
    }
  }
  REQUIRE(listener.events.size() == 1);
  CHECK(listener.events[0].alert.grid == "G3");
}
