// docs/reliability.md rows 2, 3 and 5 against the daemon: the upstream platform's broker behind a
// scripted relay that refuses connections (the platform is down) or swallows every byte (a
// half-open link). The platform's subscriber is connected to the broker itself throughout, so
// it sees exactly what the gateway delivered. Outbox message ids are `{site}:{seq}`, seq = the
// boot's epoch above bit 32 and a counter from 1 increasing by one per message, so "none
// missing" is "each boot's counters seen form one range from 1".
#include <csignal>
#include <algorithm>
#include <map>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/fault_relay.h"
#include "tests/support/test_support.h"

using namespace std::chrono_literals;
using hgj::test::FaultRelay;

namespace {

int64_t seqOf(const std::string& msg_id) {
  auto colon = msg_id.rfind(':');
  return colon == std::string::npos ? -1 : std::stoll(msg_id.substr(colon + 1));
}

/// What the platform received: per outbox seq the first payload, the order of first arrivals,
/// and whether a repeated msg_id ever carried another payload.
struct Received {
  std::map<int64_t, std::string> first;
  std::vector<int64_t> order;
  bool same_payload_on_repeat = true;

  explicit Received(const hgj::test::TestClient& platform) {
    for (const auto& m : platform.messages()) {
      auto j = nlohmann::json::parse(m.payload, nullptr, false);
      if (!j.is_object() || !j.contains("msg_id")) {
        continue;  // the retained online/offline status
      }
      const int64_t seq = seqOf(j["msg_id"].get<std::string>());
      auto [it, fresh] = first.emplace(seq, m.payload);
      if (fresh) {
        order.push_back(seq);
      } else if (it->second != m.payload) {
        same_payload_on_repeat = false;
      }
    }
  }
  bool has(int64_t seq) const { return first.count(seq) != 0; }
  /// Each boot's seqs (same epoch, the bits above kEpochShift) form one range from its first
  /// message: nothing missing within a boot.
  bool unbroken() const {
    if (first.empty()) {
      return false;
    }
    std::map<int64_t, std::pair<int64_t, int64_t>> per_epoch;  // epoch -> (count, max counter)
    for (const auto& [seq, payload] : first) {
      auto& [count, max] = per_epoch[seq >> kEpochShift];
      ++count;
      max = std::max(max, seq & ((int64_t{1} << kEpochShift) - 1));
    }
    for (const auto& [epoch, cm] : per_epoch) {
      if (cm.first != cm.second) {
        return false;
      }
    }
    return true;
  }
  static constexpr int kEpochShift = 32;  // gateway/uplink/outbox.cpp
};

std::set<int64_t> queuedSeqs(const std::string& db) {
  std::set<int64_t> out;
  for (const auto& r : hgj::test::queryRows(db, "SELECT seq FROM outbox")) {
    out.insert(std::stoll(r));
  }
  return out;
}

std::string uplinkHealth(hgj::test::GatewayProcess& gw) {
  auto [code, body] = gw.get("/healthz");
  auto j = nlohmann::json::parse(body, nullptr, false);
  return j.is_object() && j.contains("uplink") ? j["uplink"].get<std::string>() : std::string();
}

/// A port heating over the alert limit and cooling again: an alert raised and cleared, each an
/// outbox message.
struct HeatCycler {
  explicit HeatCycler(const std::string& url) : client(url, "ebike-ports") {}
  void cycle() {
    char port[32];
    std::snprintf(port, sizeof port, "S%02d/P%02d", 1 + round % 37, 1 + (round / 37) % 10);
    ++round;
    const std::string topic = std::string("compound/ebike/") + port + "/telemetry";
    client.publish(topic, R"({"current_a":1.8,"power_w":400,"temp_c":72.5})");
    client.publish(topic, R"({"current_a":1.8,"power_w":400,"temp_c":30.0})");
  }
  hgj::test::TestClient client;
  int round = 0;
};

/// hgj_outbox_dropped_total of one message kind; -1 when the sample is missing.
double droppedOf(const std::string& metrics, const std::string& kind) {
  const std::string head = "hgj_outbox_dropped_total{kind=\"" + kind + "\"} ";
  const auto at = metrics.find(head);
  return at == std::string::npos ? -1 : std::stod(metrics.substr(at + head.size()));
}

std::vector<std::string> gatewaySets(const FaultRelay& relay) {
  return {"include.rules=" + hgj::test::sourcePath("conf/rules-bench.yaml"),
          "uplink.enabled=true",
          "uplink.url=" + relay.url(),
          "uplink.keepalive=2s",
          "uplink.connect_timeout=2s",
          "uplink.backoff.min=100ms",
          "uplink.backoff.max=1s",
          "uplink.summaries.parking=1s",
          // These cases prove "nothing committed is lost" by msg_ids without gaps, and replay
          // 10,000 messages within their deadlines: coalescing (which leaves counted gaps) and
          // pacing have their own tests (tests/integration/uplink/uplink_fleet_test.cpp).
          "uplink.summaries.coalesce=false",
          "uplink.replay.max_rate=0"};
}

} // namespace

TEST_CASE("faults uplink: upstream down for 20 s with a gateway restart in the outage: every "
          "outbox message arrives in order, none missing, a repeat carries the same msg_id",
          "[faults][uplink]") {
  hgj::test::Broker broker(false);
  hgj::test::Broker upstream(false);
  FaultRelay relay(upstream.port());
  hgj::test::TempDir dir;
  const std::string db = dir.file("hgj.db");
  hgj::test::TestClient platform(upstream.url(), "platform");
  platform.subscribe("hgj/#");
  const auto sets = gatewaySets(relay);
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw1.log"), sets);
  HeatCycler heat(broker.url());

  // Connected: alerts and summaries flow.
  REQUIRE(hgj::test::waitFor(
      [&] {
        heat.cycle();
        return Received(platform).first.size() >= 20;
      },
      30s));
  relay.setMode(FaultRelay::Mode::Refuse);
  REQUIRE(hgj::test::waitFor([&] { return uplinkHealth(*gw) != "ok"; }, 15s));
  // The outage: what is queued meanwhile is sampled, so that its arrival can be checked.
  std::set<int64_t> queued_in_outage;
  auto outage = [&](std::chrono::seconds length) {
    const auto until = std::chrono::steady_clock::now() + length;
    while (std::chrono::steady_clock::now() < until) {
      heat.cycle();  // two QoS 1 round trips: paces the loop
      for (int64_t s : queuedSeqs(db)) {
        queued_in_outage.insert(s);
      }
    }
  };
  outage(10s);
  // Row 3: the gateway restarted during the outage.
  gw->signal(SIGTERM);
  REQUIRE(gw->wait(30s) == 0);
  const auto queued_at_stop = queuedSeqs(db);
  CHECK(!queued_at_stop.empty());
  gw = hgj::test::startGateway(broker.url(), db, dir.file("gw2.log"), sets);
  outage(10s);
  CHECK(uplinkHealth(*gw) != "ok");
  const int64_t last_queued = *queued_in_outage.rbegin();
  INFO(queued_in_outage.size() << " messages queued in the outage, the last seq " << last_queued);

  relay.setMode(FaultRelay::Mode::Pass);
  REQUIRE(hgj::test::waitFor(
      [&] {
        Received r(platform);
        return r.has(last_queued) && r.unbroken();
      },
      60s));
  Received r(platform);
  for (int64_t s : queued_in_outage) {
    INFO("seq " << s);
    CHECK(r.has(s));
  }
  CHECK(r.unbroken());
  CHECK(std::is_sorted(r.order.begin(), r.order.end()));
  CHECK(r.same_payload_on_repeat);
  CHECK(uplinkHealth(*gw) == "ok");
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}

TEST_CASE("faults uplink: a half-open upstream link is noticed by the keepalive, the gateway "
          "reconnects and loses nothing",
          "[faults][uplink]") {
  hgj::test::Broker broker(false);
  hgj::test::Broker upstream(false);
  FaultRelay relay(upstream.port());
  hgj::test::TempDir dir;
  const std::string db = dir.file("hgj.db");
  hgj::test::TestClient platform(upstream.url(), "platform");
  platform.subscribe("hgj/#");
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"), gatewaySets(relay));
  HeatCycler heat(broker.url());
  REQUIRE(hgj::test::waitFor(
      [&] {
        heat.cycle();
        return Received(platform).first.size() >= 10;
      },
      30s));
  const int accepted_before = relay.accepted();
  relay.setMode(FaultRelay::Mode::Blackhole);
  // The connection stays open but nothing comes back: only the keepalive (2 s) can tell.
  std::set<int64_t> queued;
  REQUIRE(hgj::test::waitFor(
      [&] {
        heat.cycle();
        for (int64_t s : queuedSeqs(db)) {
          queued.insert(s);
        }
        return uplinkHealth(*gw) != "ok";
      },
      20s));
  // It keeps trying: new connections reach the relay (and vanish in it).
  REQUIRE(hgj::test::waitFor(
      [&] {
        heat.cycle();
        for (int64_t s : queuedSeqs(db)) {
          queued.insert(s);
        }
        return relay.accepted() >= accepted_before + 2;
      },
      30s));
  REQUIRE(!queued.empty());
  relay.setMode(FaultRelay::Mode::Pass);
  const int64_t last = *queued.rbegin();
  REQUIRE(hgj::test::waitFor(
      [&] {
        Received r(platform);
        return r.has(last) && r.unbroken() && uplinkHealth(*gw) == "ok";
      },
      60s));
  Received r(platform);
  for (int64_t s : queued) {
    INFO("seq " << s);
    CHECK(r.has(s));
  }
  CHECK(r.unbroken());
  CHECK(std::is_sorted(r.order.begin(), r.order.end()));
  CHECK(r.same_payload_on_repeat);
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}

TEST_CASE("faults uplink: an outage longer than the outbox holds drops the oldest summaries, "
          "keeps every alert, raises uplink_outbox_full",
          "[faults][uplink]") {
  hgj::test::Broker broker(false);
  hgj::test::Broker upstream(false);
  FaultRelay relay(upstream.port());
  relay.setMode(FaultRelay::Mode::Refuse);  // the platform is down from the start
  hgj::test::TempDir dir;
  const std::string db = dir.file("hgj.db");
  hgj::test::TestClient platform(upstream.url(), "platform");
  platform.subscribe("hgj/#");
  auto sets = gatewaySets(relay);
  // A 20-row outbox, filled by telemetry five times a second and summaries every second.
  sets.insert(sets.end(), {"uplink.outbox.max_rows=20", "uplink.telemetry.enabled=true",
                           "uplink.telemetry.period=200ms"});
  auto gw = hgj::test::startGateway(broker.url(), db, dir.file("gw.log"), sets);
  HeatCycler heat(broker.url());
  std::set<int64_t> alerts_queued;
  auto sampleAlerts = [&] {
    for (const auto& r : hgj::test::queryRows(db, "SELECT seq FROM outbox WHERE kind='alert'")) {
      alerts_queued.insert(std::stoll(r));
    }
  };
  for (int i = 0; i < 4; ++i) {
    heat.cycle();
  }
  REQUIRE(hgj::test::waitFor(
      [&] {
        sampleAlerts();
        return hgj::test::queryInt(
                   db, "SELECT count(*) FROM alerts WHERE rule='uplink_outbox_full'") > 0;
      },
      60s));
  const std::string metrics = gw->get("/metrics").second;
  CHECK(droppedOf(metrics, "alert") == 0);
  CHECK(droppedOf(metrics, "summary") + droppedOf(metrics, "telemetry") > 0);
  CHECK(hgj::test::queryInt(db, "SELECT count(*) FROM outbox") <=
        20 + static_cast<long long>(alerts_queued.size()));
  sampleAlerts();
  REQUIRE(!alerts_queued.empty());

  relay.setMode(FaultRelay::Mode::Pass);
  REQUIRE(hgj::test::waitFor(
      [&] {
        Received r(platform);
        for (int64_t s : alerts_queued) {
          if (!r.has(s)) {
            return false;
          }
        }
        return true;
      },
      60s));
  Received r(platform);
  CHECK(std::is_sorted(r.order.begin(), r.order.end()));
  CHECK(r.same_payload_on_repeat);
  gw->signal(SIGTERM);
  CHECK(gw->wait(30s) == 0);
}
