// The three holes of issue #13, against the real daemon and a real broker, with the test
// playing the MQTT port (so every step is observed, not timed): a stale enable re-sent after a
// cut, a rate limit refusing a cut, an override from upstream.
#include <fstream>
#include <functional>
#include <future>

#include <catch2/catch.hpp>

#include "tests/faults/safety/safety_site.h"

using namespace std::chrono_literals;
using hgj::safety_test::PlayedPort;
using hgj::safety_test::Site;
using hgj::safety_test::SiteOptions;
using hgj::test::waitFor;
using nlohmann::json;

namespace {

/// Only a temperature: the relay's state stays whatever the gateway last saw.
void reportTemp(hgj::test::TestClient& c, const std::string& port, double temp_c) {
  c.publish("compound/ebike/" + port + "/telemetry",
            json{{"temp_c", temp_c},
                 {"ts", std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count()}}
                .dump());
}

/// A hot report, then the answer to the gateway's refresh request: the rule's hold then runs
/// to its end without another regular report.
void overheat(hgj::test::TestClient& c, PlayedPort& port) {
  size_t asked = port.refreshes();
  reportTemp(c, port.id, 75);
  REQUIRE(waitFor([&] { return port.refreshes() > asked; }, 10s));
  reportTemp(c, port.id, 75.5);
}

} // namespace

TEST_CASE("faults safety: an enable still unconfirmed when the port is cut is never re-sent, "
          "and a port found live under its latch is cut again",
          "[faults][safety][daemon]") {
  Site site(SiteOptions{.port_hold = "2s"});
  site.startGateway();
  PlayedPort port(site.broker.url(), "S01/P01");
  hgj::test::TestClient dev(site.broker.url());
  port.report(false, 30);
  REQUIRE(waitFor([&] {
    return site.q("SELECT count(*) FROM point_state WHERE device='S01/P01' AND point='relay' "
                  "AND value=0") == 1;
  }));

  // The operator switches the port on; the controller does not confirm (slow, or the reply is
  // lost).
  auto enable = std::async(std::launch::async,
                           [&] { return site.write("S01/P01", "relay", {{"value", true}}); });
  REQUIRE(waitFor([&] { return port.countCommands(true) == 1; }));
  auto enable_sent = std::chrono::steady_clock::now();

  // Meanwhile the connector overheats: the safety rule cuts it.
  overheat(dev, port);
  REQUIRE(waitFor([&] { return port.countCommands(false) == 1; }, 10s));
  port.report(false, 75);
  auto [status, body] = enable.get();
  INFO(body.dump());
  CHECK(status != 200);
  // Both recorded in parallel with the cut: on disk shortly after.
  CHECK(waitFor([&] {
    return site.q("SELECT count(*) FROM actuations WHERE device='S01/P01' AND value=1 AND "
                  "state='superseded'") == 1;
  }));
  CHECK(waitFor([&] {
    return site.q("SELECT count(*) FROM latches WHERE device='S01/P01' AND "
                  "rule='port_over_temperature'") == 1;
  }));

  // The enable's confirm timeout (10 s in the shipped profile) passes: the old code re-sent it
  // then. Observation window, not synchronisation: nothing may arrive in it.
  auto window_end = enable_sent + 12s;
  CHECK_FALSE(waitFor([&] { return port.countCommands(true) > 1; },
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          window_end - std::chrono::steady_clock::now())));
  CHECK(port.countCommands(true) == 1);

  // Someone switches it on at the controller: cut again at once, and a critical alert.
  port.report(true, 70);
  REQUIRE(waitFor([&] { return port.countCommands(false) == 2; }, 5s));
  CHECK(waitFor([&] {
    return site.q("SELECT count(*) FROM alerts WHERE rule='safety_latch_breach' AND "
                  "device='S01/P01' AND severity='critical'") == 1;
  }));
  port.report(false, 70);
  site.stopGateway();
}

TEST_CASE("faults safety: six operator toggles in a minute neither refuse an operator's cut nor "
          "hold back the safety cut",
          "[faults][safety][daemon]") {
  Site site(SiteOptions{.port_hold = "2s"});
  site.startGateway();
  PlayedPort port(site.broker.url(), "S01/P02");
  hgj::test::TestClient dev(site.broker.url());
  port.report(true, 30);
  REQUIRE(waitFor([&] {
    return site.q("SELECT count(*) FROM point_state WHERE device='S01/P02' AND point='relay' "
                  "AND value=1") == 1;
  }));
  // off, on, off, on, off, on: each sent, confirmed by the port, answered 200.
  auto toggle = [&](bool on) {
    size_t before = port.commands().size();
    auto w = std::async(std::launch::async,
                        [&] { return site.write("S01/P02", "relay", {{"value", on}}); });
    REQUIRE(waitFor([&] { return port.commands().size() == before + 1; }));
    port.report(on, 30);
    auto [status, body] = w.get();
    INFO(body.dump());
    CHECK(status == 200);
  };
  for (int i = 0; i < 6; ++i) {
    toggle(i % 2 == 1);
  }
  // The seventh write, a cut, is not rate-limited...
  toggle(false);
  // ...an eighth enable is.
  auto [status, body] = site.write("S01/P02", "relay", {{"value", true}});
  INFO(body.dump());
  CHECK(status >= 400);
  CHECK(body.dump().find("rate limit") != std::string::npos);
  size_t cuts = port.countCommands(false);
  // Someone switches it on at the controller, and it overheats: cut at once all the same.
  port.report(true, 30);
  overheat(dev, port);
  CHECK(waitFor([&] { return port.countCommands(false) == cuts + 1; }, 10s));
  site.stopGateway();
}

TEST_CASE("faults safety: an override from upstream is refused by default, executed only when "
          "the gateway allows it, and audited with the link's identity",
          "[faults][safety][daemon][uplink]") {
  Site site(SiteOptions{.port_hold = "2s", .uplink = true, .allow_override = false});
  site.startGateway();
  PlayedPort port(site.broker.url(), "S01/P03");
  hgj::test::TestClient dev(site.broker.url());
  hgj::test::TestClient platform(site.broker.url());
  platform.subscribe("hgj/site1/cmd/result");
  auto resultOf = [&](const std::string& id, std::chrono::milliseconds timeout) {
    json found;
    waitFor([&] {
      for (const auto& m : platform.messages()) {
        auto j = json::parse(m.payload, nullptr, false);
        if (j.is_object() && j["id"] == id) {
          found = j;
          return true;
        }
      }
      return false;
    }, timeout);
    return found;
  };
  port.report(true, 30);
  overheat(dev, port);
  REQUIRE(waitFor([&] { return port.countCommands(false) == 1; }, 10s));
  port.report(false, 30);
  REQUIRE(waitFor([&] {
    return site.q("SELECT count(*) FROM latches WHERE device='S01/P03'") == 1;
  }));

  const std::string cmd = R"J({"method":"write","device":"S01/P03","point":"relay","value":true,)J"
                          R"J("override":true,"by":"mallory (platform admin)","id":")J";
  // Sent until answered, as the platform retries a command nobody answered (the uplink may
  // still be subscribing); the gateway answers a repeated id once.
  auto last_sent = std::chrono::steady_clock::time_point{};
  auto sendUntil = [&](const std::string& id, const std::function<bool()>& done) {
    return waitFor([&] {
      if (std::chrono::steady_clock::now() - last_sent > 1s) {
        platform.publish("hgj/site1/cmd", cmd + id + "\"}");
        last_sent = std::chrono::steady_clock::now();
      }
      return done();
    }, 15s);
  };
  REQUIRE(sendUntil("c1", [&] { return !resultOf("c1", 0ms).is_null(); }));
  json r = resultOf("c1", 0ms);
  INFO(r.dump());
  CHECK(r["ok"] == false);
  CHECK(r.dump().find("allow_override") != std::string::npos);
  CHECK(port.countCommands(true) == 0);

  // The installer allows overrides from upstream on this gateway; the latch survives the
  // restart.
  site.stopGateway();
  // Same database, broker and port: only the config differs.
  std::string text = hgj::safety_test::readText(site.config);
  size_t at = text.find("allow_override: false");
  REQUIRE(at != std::string::npos);
  text.replace(at, 21, "allow_override: true");
  std::ofstream(site.config) << text;
  site.startGateway();
  last_sent = {};
  REQUIRE(sendUntil("c2", [&] { return port.countCommands(true) >= 1; }));
  port.report(true, 30);
  r = resultOf("c2", 20s);
  INFO(r.dump());
  CHECK(r["ok"] == true);
  CHECK(waitFor(
      [&] { return site.q("SELECT count(*) FROM latches WHERE device='S01/P03'") == 0; }));
  // The audit trail names the authenticated link and the command, not the sender's claim.
  auto origin = site.rows("SELECT origin FROM actuations WHERE device='S01/P03' AND value=1 AND "
                          "state='confirmed'");
  REQUIRE(origin.size() == 1);
  INFO(origin[0]);
  CHECK(origin[0].rfind("upstream:platform-link#c2", 0) == 0);
  CHECK(port.countCommands(true) == 1);  // however often the platform repeated it
  site.stopGateway();
}
