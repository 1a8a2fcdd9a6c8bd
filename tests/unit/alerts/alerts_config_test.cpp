#include <catch2/catch.hpp>

#include "core/config_node.h"
#include "gateway/alerts/alerts_config.h"
#include "gateway/alerts/message_format.h"
#include "gateway/config/config.h"
#include "tests/unit/alerts/alerts_fixture.h"

using namespace hgj;
using namespace hgj::alerts;
using hgj::alerts::testing::makeCompound;

namespace {

std::string problems(const core::Diagnostics& d) { return d.format(); }

AlertsConfig parse(const std::string& yaml, const model::Compound& c, core::Diagnostics& diag) {
  return hgj::alerts::testing::parseConfig(yaml, c, diag);
}

} // namespace

TEST_CASE("alerts config: the shipped conf/alerts.yaml is valid and complete", "[alerts][config]") {
  auto compound = makeCompound({"upstream", "wecom-property", "dingtalk-community", "ops-webhook"},
                               {"wecom-property"});
  core::Diagnostics diag;
  auto root = core::loadYamlFile(std::string(HGJ_SOURCE_DIR) + "/conf/alerts.yaml", diag);
  REQUIRE(root);
  AlertsConfig c = parseAlertsConfig(root->child("alerts"), *compound);
  INFO(problems(diag));
  REQUIRE(diag.ok());
  REQUIRE(c.channels.size() == 4);
  const ChannelConfig* ding = c.channel("dingtalk-community");
  REQUIRE(ding != nullptr);
  CHECK(ding->type == ChannelType::DingTalk);
  CHECK(ding->secret.rfind("SEC", 0) == 0);
  CHECK(ding->rate_per_minute == 20);
  CHECK(c.policy(Severity::Critical).ack_timeout == std::chrono::minutes(5));
  CHECK(c.policy(Severity::Info).renotify.count() == 0);
  CHECK(c.flood.threshold == 5);
  CHECK(c.utc_offset_minutes == 480);
  CHECK(c.site_name == "示例小区");
  CHECK(c.templates.raised.find("{where}") != std::string::npos);
}

TEST_CASE("alerts config: an absent section gives the defaults", "[alerts][config]") {
  auto compound = makeCompound({}, {});
  core::Diagnostics diag;
  auto root = core::loadYamlText("other: 1\n", "gateway.yaml", diag);
  REQUIRE(root);
  AlertsConfig c = parseAlertsConfig(root->child("alerts"), *compound);
  CHECK(diag.ok());
  CHECK(c.channels.empty());
  CHECK(c.policy(Severity::Warning).ack_timeout == std::chrono::minutes(30));
  CHECK(c.delivery.retry_initial == std::chrono::seconds(2));
}

TEST_CASE("alerts config: unknown keys, bad values and unknown grid channels are reported with "
          "file, line and key path",
          "[alerts][config]") {
  auto compound = makeCompound({"wecom", "dingtlk"}, {"wecom"});
  core::Diagnostics diag;
  parse(R"(alerts:
  channels:
    - id: wecom
      type: wecom
      url: "ftp://example"
      rate_per_minit: 20
    - id: dingtalk
      type: dingtalk
      url: "http://127.0.0.1:1/robot/send"
    - id: wecom
      type: wecom
      url: "http://127.0.0.1:1/x"
    - id: hook
      type: webhook
      url: "http://127.0.0.1:1/x"
      secret: "SECx"
  escalation:
    critical: {ack_timeout: soon}
  flood: {threshold: -1}
  utc_offset: "8"
)",
        *compound, diag);
  std::string text = problems(diag);
  INFO(text);
  CHECK(text.find("alerts.yaml:6: alerts.channels[0].rate_per_minit") != std::string::npos);
  CHECK(text.find("did you mean \"rate_per_minute\"") != std::string::npos);
  CHECK(text.find("alerts.channels[0].url: expected an http:// or https:// URL") !=
        std::string::npos);
  CHECK(text.find("duplicate channel id \"wecom\"") != std::string::npos);
  CHECK(text.find("alerts.channels[3].secret: only DingTalk") != std::string::npos);
  CHECK(text.find("alerts.escalation.critical.ack_timeout") != std::string::npos);
  CHECK(text.find("alerts.flood.threshold") != std::string::npos);
  CHECK(text.find("alerts.utc_offset") != std::string::npos);
  CHECK(text.find("grid \"g1\" names unknown channel \"dingtlk\" (did you mean \"dingtalk\"?)") !=
        std::string::npos);
}

TEST_CASE("alerts config: a robot channel needs a url", "[alerts][config]") {
  auto compound = makeCompound({}, {});
  core::Diagnostics diag;
  parse("alerts:\n  channels:\n    - {id: w, type: wecom}\n", *compound, diag);
  INFO(problems(diag));
  CHECK(problems(diag).find("alerts.channels[0]") != std::string::npos);
  CHECK(problems(diag).find("url") != std::string::npos);
  CHECK_FALSE(diag.ok());
}

TEST_CASE("alerts config: a grid naming a channel when no alerts section exists is reported",
          "[alerts][config]") {
  auto compound = makeCompound({}, {"wecom"});
  core::Diagnostics diag;
  auto root = core::loadYamlText("other: 1\n", "gateway.yaml", diag);
  REQUIRE(root);
  parseAlertsConfig(root->child("alerts"), *compound);
  INFO(problems(diag));
  CHECK(problems(diag).find("alerts.channels: grid \"g2\" names unknown channel \"wecom\"") !=
        std::string::npos);
}

TEST_CASE("alerts config: the shipped gateway config's alerts section fits its grids",
          "[alerts][config]") {
  core::Diagnostics diag;
  auto cfg = config::loadConfig(std::string(HGJ_SOURCE_DIR) + "/conf/gateway.yaml", {}, diag);
  INFO(diag.format());
  REQUIRE(diag.ok());
  REQUIRE(cfg.alerts);
  AlertsConfig c = parseAlertsConfig(*cfg.alerts, *cfg.compound);
  INFO(diag.format());
  CHECK(diag.ok());
  for (const auto& g : cfg.compound->grids) {
    for (const auto& id : g.channels) {
      CHECK(c.channel(id) != nullptr);
    }
  }
  // A port of an e-bike shed reads as a place a person can find.
  const model::Device* port = cfg.compound->device("S03/P07");
  REQUIRE(port != nullptr);
  CHECK(describeWhere(*cfg.compound, *port).find("7号口") != std::string::npos);
}
