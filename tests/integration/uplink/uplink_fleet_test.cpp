// Fleet behaviour of the uplink (docs/uplink.md "Replay pacing", "Coalescing"): the replay rate
// stays under replay.max_rate against a real broker, it backs off when PUBACKs come back slowly
// (a scripted broker that delays them), and after an outage only the newest summary of each
// kind is sent while every alert arrives exactly once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <map>

#include "core/clock.h"
#include "core/metrics.h"
#include "gateway/uplink/uplink.h"
#include "tests/integration/uplink/uplink_common.h"
#include "tests/support/scripted_broker.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using hgj::test::Bytes;
using hgj::test::ScriptedBroker;
using hgj::test::ScriptedConn;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

namespace {

void enqueueAlerts(uplink::Uplink& u, int from, int to) {
  for (int i = from; i <= to; ++i) {
    REQUIRE(u.enqueue(uplink::Kind::Alert, "alerts",
                      json{{"id", i}, {"rule", "ebike_overtemp"}, {"state", "raised"},
                           {"source_ts", 1'700'000'000'000 + i}}));
  }
}

/// The most messages counted in any window of `window` among (time, running count) samples.
int64_t peakInWindow(const std::vector<std::pair<SteadyClock::time_point, int64_t>>& samples,
                     milliseconds window) {
  int64_t peak = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < samples.size(); ++hi) {
    while (samples[hi].first - samples[lo].first > window) {
      ++lo;
    }
    peak = std::max(peak, samples[hi].second - samples[lo].second);
  }
  return peak;
}

} // namespace

TEST_CASE("uplink fleet: the replay after an outage stays under replay.max_rate on a real broker",
          "[uplink][integration][fleet]") {
  test::Broker broker;
  // A persistent session: it gets what was published while it was reconnecting.
  Recorder rec(broker.url(), {"hgj/site1/alerts"});
  broker.stop();  // the outage
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  cfg.replay.max_rate = 100;
  cfg.replay.start_rate = 50;
  cfg.replay.increase = 100;
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  enqueueAlerts(up, 1, 500);
  up.start();
  REQUIRE(waitFor([&] { return w.metrics.value("hgj_uplink_connect_failures_total") >= 1; }));
  broker.start();
  // Sampled while waiting: what the uplink has published so far (the broker acknowledges it).
  std::vector<std::pair<SteadyClock::time_point, int64_t>> samples;
  REQUIRE(waitFor(
      [&] {
        auto n = static_cast<int64_t>(w.metrics.value("hgj_uplink_published_total"));
        samples.emplace_back(SteadyClock::now(), n);
        return n >= 501;  // the status message and the 500 alerts
      },
      seconds(30)));
  while (!samples.empty() && samples.front().second == 0) {
    samples.erase(samples.begin());  // before the connection
  }
  REQUIRE_FALSE(samples.empty());
  const auto took = samples.back().first - samples.front().first;
  // 500 messages at <= 100/s (plus one burst of 10) take at least 4.9 s.
  CHECK(took >= milliseconds(4'500));
  // No second saw more than the bound (+ the burst, + a sample's slack).
  const int64_t peak = peakInWindow(samples, milliseconds(1000));
  INFO("peak per second " << peak);
  CHECK(peak <= 100 + 10 + 5);
  REQUIRE(waitFor([&] { return firstSeen(rec, "hgj/site1/alerts").size() == 500; }));
  REQUIRE(waitFor([&] { return up.outboxStats().rows == 0; }));
  CHECK(w.metrics.value("hgj_uplink_replay_rate") == 100);
}

TEST_CASE("uplink fleet: slow PUBACKs slow the replay down",
          "[uplink][integration][fleet]") {
  // Acks the first 150 publishes at once, then every PUBACK 800 ms late (a platform broker
  // under load). Records when each PUBLISH arrived.
  std::mutex mu;
  std::vector<SteadyClock::time_point> arrivals;
  std::atomic<bool> done{false};
  ScriptedBroker broker([&](ScriptedConn& c, int) {
    if (!c.handshake()) {
      return;
    }
    std::deque<std::pair<SteadyClock::time_point, uint16_t>> due;
    int publishes = 0;
    while (!done && !c.closedByClient()) {
      auto p = c.read(milliseconds(5));
      const auto now = SteadyClock::now();
      if (p && p->type() == 3) {
        const int qos = (p->first_byte >> 1) & 3;
        ++publishes;
        if (qos > 0 && p->body.size() >= 2) {
          const size_t topic_len = (static_cast<size_t>(p->body[0]) << 8) | p->body[1];
          if (p->body.size() >= topic_len + 4) {
            const auto id = static_cast<uint16_t>((p->body[topic_len + 2] << 8) |
                                                  p->body[topic_len + 3]);
            due.emplace_back(now + (publishes <= 150 ? milliseconds(0) : milliseconds(800)), id);
          }
        }
        std::lock_guard lock(mu);
        arrivals.push_back(now);
      } else if (p && p->type() == 12) {
        c.send(std::vector<uint8_t>{0xD0, 0x00});
      } else if (!p && c.closedByClient()) {
        return;
      }
      while (!due.empty() && due.front().first <= SteadyClock::now()) {
        c.send(Bytes::packet(0x40, Bytes().u16(due.front().second)));
        due.pop_front();
      }
    }
  });
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  cfg.replay.max_rate = 200;
  cfg.replay.start_rate = 200;
  cfg.replay.min_rate = 5;
  cfg.replay.slow_ack = milliseconds(200);
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  enqueueAlerts(up, 1, 3000);
  up.start();
  auto count = [&] {
    std::lock_guard lock(mu);
    return arrivals.size();
  };
  auto at = [&](size_t i) {
    std::lock_guard lock(mu);
    return arrivals.at(i);
  };
  REQUIRE(waitFor([&] { return count() >= 150; }, seconds(15)));
  // Fast acks: the first 150 (after the status message) at about the ceiling.
  const auto fast = at(149) - at(1);
  CHECK(fast < milliseconds(2'000));
  // Then the rate is halved (at most once per smoothed round trip) down towards min_rate.
  REQUIRE(waitFor([&] { return w.metrics.value("hgj_uplink_replay_backoffs_total") >= 3; },
                  seconds(20)));
  const size_t from = count();
  const auto t0 = SteadyClock::now();
  REQUIRE(waitFor([&] { return SteadyClock::now() - t0 >= seconds(3); }, seconds(5)));
  const size_t sent_in_3s = count() - from;
  INFO("published in 3 s after the backoffs: " << sent_in_3s);
  // Without pacing the window alone would allow 64 per 0.8 s = 80/s (240 in 3 s).
  CHECK(sent_in_3s <= 3 * 25 + 25);
  CHECK(w.metrics.value("hgj_uplink_replay_rate") <= 25);
  CHECK(w.metrics.value("hgj_uplink_ack_rtt_seconds") > 0.2);
  up.stop();
  done = true;
  broker.stop();
}

TEST_CASE("uplink fleet: after an outage only the newest summary of each kind is sent, every "
          "alert exactly once",
          "[uplink][integration][fleet]") {
  test::Broker broker;
  Recorder rec(broker.url(), {"hgj/site1/#"});
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  cfg.summaries.coalesce = true;
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  // Before the outage: sent as they come.
  REQUIRE(up.enqueue(uplink::Kind::Summary, "summary/parking", json{{"n", -1}}));
  REQUIRE(waitFor([&] { return rec.on("hgj/site1/summary/parking").size() == 1; }));

  broker.stop();
  REQUIRE(waitFor([&] { return !up.connected(); }));
  int alert = 0;
  for (int n = 0; n < 100; ++n) {
    REQUIRE(up.enqueue(uplink::Kind::Summary, "summary/parking", json{{"n", n}}));
    REQUIRE(up.enqueue(uplink::Kind::Summary, "summary/ev", json{{"n", n}}));
    if (n % 2 == 0) {
      ++alert;
      enqueueAlerts(up, alert, alert);
    }
  }
  CHECK(up.outboxStats().rows == 2 + 50);
  broker.start();
  REQUIRE(waitFor([&] { return up.connected() && up.outboxStats().rows == 0; }, seconds(20)));
  REQUIRE(waitFor([&] { return rec.on("hgj/site1/alerts").size() >= 50; }));

  // First occurrences: the pre-outage summary may come twice (its PUBACK raced the stop),
  // with the same msg_id, which the platform drops.
  auto field = [&](const std::string& topic) { return firstSeenField(rec, topic, "n"); };
  CHECK(field("hgj/site1/summary/parking") == std::vector<int64_t>{-1, 99});
  CHECK(field("hgj/site1/summary/ev") == std::vector<int64_t>{99});
  // Every alert, once each, in order (nothing was in flight when the outage began).
  auto alerts = jsonOn(rec, "hgj/site1/alerts");
  std::vector<int64_t> ids;
  for (const auto& j : alerts) {
    ids.push_back(j.value("id", int64_t{-1}));
  }
  std::vector<int64_t> expected(50);
  for (int i = 0; i < 50; ++i) {
    expected[static_cast<size_t>(i)] = i + 1;
  }
  CHECK(ids == expected);
  CHECK(w.metrics.value("hgj_outbox_coalesced_total") == 99 + 99);
  CHECK(w.metrics.value("hgj_outbox_messages_total", {{"kind", "alert"}}) == 50);
  CHECK(w.metrics.value("hgj_outbox_messages_total", {{"kind", "summary"}}) == 201);
}

TEST_CASE("uplink fleet: in ThingsBoard mode every summary type survives coalescing",
          "[uplink][integration][fleet][thingsboard]") {
  // Every summary goes to v1/devices/me/telemetry there: coalescing must key on the summary's
  // type, not the topic, or the EV summary replaces the parking one during an outage.
  test::Broker broker;
  Recorder rec(broker.url(), {"v1/devices/me/telemetry"});
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  cfg.mode = uplink::Mode::ThingsBoard;
  cfg.thingsboard_access_token = "GW_TOKEN";
  cfg.summaries.coalesce = true;
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  REQUIRE(waitFor([&] { return up.connected(); }));
  broker.stop();
  REQUIRE(waitFor([&] { return !up.connected(); }));
  for (int n = 0; n < 20; ++n) {
    REQUIRE(up.enqueue(uplink::Kind::Summary, "summary/parking", json{{"n", n}}));
    REQUIRE(up.enqueue(uplink::Kind::Summary, "summary/ev", json{{"n", n}}));
  }
  CHECK(up.outboxStats().rows == 2);
  broker.start();
  REQUIRE(waitFor([&] { return up.connected() && up.outboxStats().rows == 0; }, seconds(20)));
  std::map<std::string, std::vector<int64_t>> seen;
  REQUIRE(waitFor([&] {
    seen.clear();
    for (const auto& j : jsonOn(rec, "v1/devices/me/telemetry")) {
      for (const char* key : {"parking_n", "ev_n"}) {
        if (j["values"].contains(key)) {
          seen[key].push_back(j["values"][key].get<int64_t>());
        }
      }
    }
    return seen.size() == 2;
  }));
  CHECK(seen["parking_n"] == std::vector<int64_t>{19});
  CHECK(seen["ev_n"] == std::vector<int64_t>{19});
  CHECK(w.metrics.value("hgj_outbox_coalesced_total") == 19 + 19);
}

TEST_CASE("uplink fleet: PUBACKs of the device announcements raise the paced rate",
          "[uplink][integration][fleet][thingsboard]") {
  // A ThingsBoard gateway announces each device on connect; those messages are paced like the
  // outbox. Their acks must count as fast round trips, or a compound's hundreds of
  // announcements (and an RPC answer queued behind them) crawl at start_rate for ever.
  test::Broker broker;
  Recorder rec(broker.url(), {"v1/gateway/#", "v1/devices/me/rpc/response/+"});
  TempDir dir;
  World w;
  auto cfg = testConfig(broker.url());
  cfg.mode = uplink::Mode::ThingsBoard;
  cfg.thingsboard_access_token = "GW_TOKEN";
  cfg.replay = uplink::ReplaySettings{};  // the shipped defaults: paced, adaptive
  w.read_model.publish(std::make_shared<pipeline::Snapshot>(emptySnapshot(w.compound)));
  uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                    core::SystemClock::instance(), w.metrics);
  up.start();
  const size_t devices = w.compound->devices.size();
  REQUIRE(waitFor([&] {
    return rec.on("v1/gateway/connect").size() >= devices &&
           !rec.on("v1/gateway/attributes").empty();
  }));
  // Every announcement acknowledged, and each ack counted by the pacer.
  REQUIRE(waitFor([&] { return w.metrics.value("hgj_uplink_ack_rtt_seconds") > 0; }));
  CHECK(w.metrics.value("hgj_uplink_replay_rate") > cfg.replay.start_rate);
  // The answer to an RPC comes next, not after a crawl.
  rec.publish("v1/devices/me/rpc/request/7", json{{"method", "summary_now"}}.dump());
  REQUIRE(waitFor([&] { return !rec.on("v1/devices/me/rpc/response/7").empty(); }));
  up.stop();
}
