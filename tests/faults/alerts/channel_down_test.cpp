// docs/reliability.md rows 20 and 15 against the daemon. Row 20: the alert channel (the WeCom robot
// of conf/alerts.yaml, played by the toolkit's WebhookSink) hangs, then is down: hot ports are
// still cut after their hold, the alerts wait durably across a restart and reach the robot once it
// answers. Row 15: one hot sample (or a 0xFFFF-sized one) between normal ones cuts nothing, a held
// one does.
#include <csignal>
#include <fstream>
#include <iterator>

#include <catch2/catch.hpp>

#include "tests/support/fault_webhook.h"
#include "tests/support/test_support.h"

using namespace std::chrono_literals;
using hgj::test::WebhookSink;

namespace {

constexpr auto kHold = 10s;  // conf/rules.yaml port_over_temperature: > 60 C for 10 s

/// An MQTT e-bike port of the example compound and its relay command topic.
struct Port {
  Port(const std::string& broker_url, const std::string& id)
      : id(id), device(broker_url, "port-" + id.substr(0, 3)),
        commands(broker_url, "commands-" + id.substr(0, 3)) {
    commands.subscribe("compound/ebike/" + id + "/set");
  }
  void report(double temp_c) {
    device.publish("compound/ebike/" + id + "/telemetry",
                   R"({"current_a":1.8,"power_w":400,"temp_c":)" + std::to_string(temp_c) + "}");
  }
  /// Reports `temp_c` twice a second until the relay is commanded or `limit` passes; how long
  /// that took (limit when never).
  std::chrono::steady_clock::duration holdUntilCut(double temp_c,
                                                   std::chrono::milliseconds limit) {
    const auto from = std::chrono::steady_clock::now();
    auto last = from - 1s;
    hgj::test::waitFor(
        [&] {
          if (std::chrono::steady_clock::now() - last >= 500ms) {
            last = std::chrono::steady_clock::now();
            report(temp_c);
          }
          return commands.count() > 0;
        },
        limit);
    return std::chrono::steady_clock::now() - from;
  }
  std::string id;
  hgj::test::TestClient device;
  hgj::test::TestClient commands;
};

bool mentions(const std::vector<std::string>& bodies, const std::string& text) {
  for (const auto& b : bodies) {
    if (b.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

} // namespace

TEST_CASE("faults alerts: with the robot hung, then down, hot ports are still cut after their "
          "hold and the alerts reach the robot after a restart once it answers",
          "[faults][alerts]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  const std::string db = dir.file("hgj.db");
  WebhookSink robot;
  robot.setMode(WebhookSink::Mode::Slow, 60s);  // accepts, never answers in time
  // The shipped alerts.yaml with the WeCom robot at the sink and short retries.
  std::ifstream in(hgj::test::sourcePath("conf/alerts.yaml"));
  std::string alerts((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string placeholder = "http://127.0.0.1:18081/cgi-bin/webhook/send?key=EXAMPLE-KEY";
  REQUIRE(alerts.find(placeholder) != std::string::npos);
  alerts.replace(alerts.find(placeholder), placeholder.size(),
                 robot.url("/cgi-bin/webhook/send?key=T"));
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"retry_initial: 2s",
                                                                     "retry_initial: 200ms"},
                                 {"retry_max: 5m", "retry_max: 1s"}}) {
    REQUIRE(alerts.find(from) != std::string::npos);
    alerts.replace(alerts.find(from), from.size(), to);
  }
  std::ofstream(dir.file("alerts.yaml")) << alerts;
  const std::vector<std::string> sets{"include.alerts=" + dir.file("alerts.yaml")};
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw1.log"), sets);

  Port first(broker.url(), "S07/P01");
  auto took = first.holdUntilCut(72.5, kHold + 30s);
  INFO("hung robot: cut after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms");
  REQUIRE(first.commands.count() > 0);
  CHECK(took >= kHold);

  robot.setMode(WebhookSink::Mode::Down);
  Port second(broker.url(), "S08/P01");
  took = second.holdUntilCut(72.5, kHold + 30s);
  INFO("robot down: cut after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                << " ms");
  REQUIRE(second.commands.count() > 0);
  CHECK(took >= kHold);
  REQUIRE(hgj::test::waitFor(
      [&] {
        return hgj::test::queryInt(
                   db, "SELECT count(*) FROM alerts WHERE rule='port_over_temperature'") == 2;
      },
      10s));
  CHECK(robot.received().empty());

  // Stopped while the robot is away (the stop does not wait for it), started again, robot back.
  gw->signal(SIGTERM);
  REQUIRE(gw->wait(30s) == 0);
  gw = hgj::test::startGateway(broker.url(), db, dir.file("gw2.log"), sets);
  robot.setMode(WebhookSink::Mode::Ok);
  REQUIRE(hgj::test::waitFor(
      [&] {
        auto bodies = robot.received();
        return mentions(bodies, "S07/P01") && mentions(bodies, "S08/P01");
      },
      60s));
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}

TEST_CASE("faults alerts: one hot sample or one 0xFFFF sample among normal ones cuts nothing, "
          "the same heat held for the rule's time does",
          "[faults][alerts]") {
  hgj::test::Broker broker(false);
  hgj::test::TempDir dir;
  const std::string db = dir.file("hgj.db");
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"));
  Port port(broker.url(), "S09/P01");
  port.report(30.0);
  port.report(72.5);
  port.report(30.0);
  port.report(65535);  // a register read as 0xFFFF
  // Normal reports for longer than the hold: no command, no alert.
  const auto took = port.holdUntilCut(30.0, kHold + 5s);
  CHECK(took >= kHold + 5s);
  CHECK(port.commands.count() == 0);
  CHECK(hgj::test::queryInt(db, "SELECT count(*) FROM alerts WHERE rule='port_over_temperature'") ==
        0);
  // The control: held hot, the same port is cut.
  port.holdUntilCut(72.5, kHold + 30s);
  CHECK(port.commands.count() > 0);
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}
