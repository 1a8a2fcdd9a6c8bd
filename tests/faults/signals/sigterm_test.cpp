// docs/reliability.md row 18, first half: SIGTERM under load. The daemon acknowledges a QoS 1
// reading to the broker once its pipeline took it, before the reading is committed, so a stop that
// does not flush loses what it acknowledged in the last commit interval. A clean stop loses
// nothing: with SIGTERMs at three moments of a load run (and restarts), every message of every
// device is stored, the database is intact, every alert committed before a stop is still there, and
// every outbox row reaches the platform. (The second half, SIGHUP with a broken config, is
// tests/integration/reload against the daemon.)
#include <csignal>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/fault_load.h"
#include "tests/support/test_support.h"

using namespace std::chrono_literals;
using hgj::test::queryRows;

namespace {

constexpr int kStops = 3;
constexpr int kDevices = 10;

std::set<int> storedSeqs(const std::string& db, const std::string& device, int64_t base) {
  std::set<int> out;
  for (const auto& r : queryRows(db, "SELECT DISTINCT ts_ms FROM readings WHERE device='" +
                                         device + "' AND point='occupied'")) {
    out.insert(static_cast<int>(std::stoll(r) - base));
  }
  return out;
}

std::set<std::string> column(const std::string& db, const std::string& sql) {
  auto rows = queryRows(db, sql);
  return {rows.begin(), rows.end()};
}

} // namespace

TEST_CASE("faults signals: SIGTERM under load at three moments: exit 0, nothing the gateway "
          "acknowledged is lost, alerts and outbox rows kept",
          "[faults][signals]") {
  hgj::test::Broker broker(true);
  hgj::test::Broker upstream(false);
  hgj::test::TempDir dir;
  const std::string db = dir.file("hgj.db");
  hgj::test::TestClient platform(upstream.url(), "platform");
  platform.subscribe("hgj/#");
  // The longest commit interval allowed, so that each stop has the most acknowledged but not
  // yet committed readings to flush.
  const std::vector<std::string> sets{
      "storage.commit_interval=200ms", "mqtt.reconnect_min=50ms", "mqtt.reconnect_max=200ms",
      "include.rules=" + hgj::test::sourcePath("conf/rules-bench.yaml"), "uplink.enabled=true",
      "uplink.url=" + upstream.url(), "uplink.summaries.parking=1s",
      // msg_ids without gaps prove nothing was lost: no coalescing (it leaves counted gaps).
      "uplink.summaries.coalesce=false"};
  int starts = 0;
  auto start = [&] {
    return hgj::test::startGateway(broker.url(), db,
                                   dir.file("gw" + std::to_string(++starts) + ".log"), sets);
  };
  auto gw = start();

  hgj::test::LoadSpec spec;
  spec.url = broker.url();
  for (int i = 1; i <= kDevices; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "P-B2-%04d", 200 + i);
    spec.devices.push_back(id);
  }
  spec.per_device = 2000;
  spec.rate = 800;  // 25 s of load
  spec.max_time = 120s;
  hgj::test::LoadPublisher load(spec);
  hgj::test::TestClient ebike(broker.url(), "ebike-ports");
  int hot_round = 0;
  auto heatCycle = [&] {
    char port[32];
    std::snprintf(port, sizeof port, "S%02d/P%02d", 1 + hot_round % 37, 1 + (hot_round / 37) % 10);
    ++hot_round;
    const std::string topic = std::string("compound/ebike/") + port + "/telemetry";
    ebike.publish(topic, R"({"current_a":1.8,"power_w":400,"temp_c":72.5})");
    ebike.publish(topic, R"({"current_a":1.8,"power_w":400,"temp_c":30.0})");
  };

  std::set<std::string> committed_alerts;
  std::set<std::string> committed_outbox;
  for (int k = 0; k < kStops; ++k) {
    // Stop when the load is a quarter, a half and three quarters through.
    const size_t mark = static_cast<size_t>(kDevices * spec.per_device) * (k + 1) / (kStops + 1);
    REQUIRE(hgj::test::waitFor(
        [&] {
          heatCycle();  // alerts and outbox rows meanwhile; also paces this loop
          return load.ackedTotal() >= mark;
        },
        90s));
    gw->signal(SIGTERM);
    INFO("stop " << k + 1 << ": " << gw->output());
    REQUIRE(gw->wait(30s) == 0);
    REQUIRE(queryRows(db, "PRAGMA integrity_check") == std::vector<std::string>{"ok"});
    // A clean stop leaves each device's readings gap-free.
    for (int d = 0; d < kDevices; ++d) {
      auto s = storedSeqs(db, spec.devices[d], spec.base_ts);
      INFO(spec.devices[d] << " after stop " << k + 1);
      REQUIRE(!s.empty());
      CHECK(*s.begin() == 1);
      CHECK(*s.rbegin() == static_cast<int>(s.size()));
    }
    for (const auto& a : column(db, "SELECT id FROM alerts")) {
      committed_alerts.insert(a);
    }
    for (const auto& m : column(db, "SELECT msg_id FROM outbox")) {
      committed_outbox.insert(m);
    }
    gw = start();
  }
  REQUIRE(load.waitDone(120s));
  // Nothing lost: every message of every device is stored (the broker kept what the gateway
  // had not acknowledged; what it had acknowledged was flushed at the stop).
  for (int d = 0; d < kDevices; ++d) {
    INFO(spec.devices[d]);
    REQUIRE(hgj::test::waitFor(
        [&] {
          return storedSeqs(db, spec.devices[d], spec.base_ts).size() ==
                 static_cast<size_t>(spec.per_device);
        },
        60s));
  }
  gw->signal(SIGTERM);
  REQUIRE(gw->wait(30s) == 0);
  REQUIRE(queryRows(db, "PRAGMA integrity_check") == std::vector<std::string>{"ok"});
  CHECK(!committed_alerts.empty());
  auto alerts_now = column(db, "SELECT id FROM alerts");
  for (const auto& a : committed_alerts) {
    INFO("alert " << a);
    CHECK(alerts_now.count(a) == 1);
  }
  // Every outbox row committed before a stop reached the platform or is still queued.
  std::set<std::string> delivered;
  REQUIRE(hgj::test::waitFor(
      [&] {
        for (const auto& m : platform.messages()) {
          auto j = nlohmann::json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.contains("msg_id")) {
            delivered.insert(j["msg_id"].get<std::string>());
          }
        }
        auto queued = column(db, "SELECT msg_id FROM outbox");
        for (const auto& m : committed_outbox) {
          if (delivered.count(m) == 0 && queued.count(m) == 0) {
            return false;
          }
        }
        return true;
      },
      30s));
}
