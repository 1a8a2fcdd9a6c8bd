#include <catch2/catch.hpp>

#include <cstdio>

#include "tests/integration/uplink/uplink_common.h"

using namespace hgj;
using namespace hgj::uplink::testing;
using nlohmann::json;

namespace {

/// The floor: a bare Paho async client publishing the same messages at QoS 1 with the same
/// window, no SQLite. Returns messages/s from the first publish to the last PUBACK.
double barePahoRate(const std::string& url, const std::vector<std::string>& payloads, int window) {
  struct Acks : mqtt::iaction_listener {
    std::mutex mu;
    std::condition_variable cv;
    int acked = 0;
    void on_success(const mqtt::token&) override {
      std::lock_guard lock(mu);
      ++acked;
      cv.notify_one();
    }
    void on_failure(const mqtt::token&) override {}
  } acks;
  mqtt::async_client client(url, "bench-bare", mqtt::create_options(MQTTVERSION_3_1_1, window + 64),
                            static_cast<mqtt::iclient_persistence*>(nullptr));
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  client.connect(opts)->wait();
  const auto start = std::chrono::steady_clock::now();
  int sent = 0;
  const int total = static_cast<int>(payloads.size());
  std::unique_lock lock(acks.mu);
  while (acks.acked < total) {
    while (sent < total && sent - acks.acked < window) {
      lock.unlock();
      client.publish(mqtt::make_message("hgj/site1/alerts", payloads[static_cast<size_t>(sent)], 1,
                                        false),
                     nullptr, acks);
      ++sent;
      lock.lock();
    }
    acks.cv.wait_for(lock, std::chrono::milliseconds(100));
  }
  lock.unlock();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  client.disconnect()->wait();
  return total / s;
}

json alertBody(int n) {
  return json{{"id", n},
              {"rule", "ebike_overtemp"},
              {"device", "S03/P07"},
              {"grid", "G2"},
              {"severity", "critical"},
              {"state", "raised"},
              {"message", "port S03/P07 at 75.2 C"},
              {"value", 75.2},
              {"source_ts", 1'700'000'000'000 + n}};
}

} // namespace

// Outbox drain after an outage: 50,000 committed messages, then the broker comes back. Hidden
// (run with `integration_uplink "[.bench]"`); the figures go to docs/uplink.md.
TEST_CASE("uplink bench: outbox drain rate after an outage", "[.bench][uplink]") {
  constexpr int kMessages = 50'000;
  for (int window : {64, 256}) {
    Broker broker;
    Recorder rec(broker.url(), {"hgj/site1/alerts"}, "bench-recorder");
    TempDir dir;
    World w;
    auto cfg = testConfig(broker.url());
    cfg.inflight = window;
    cfg.outbox.max_rows = 1'000'000;
    uplink::Uplink up(cfg, "site1", dir.file("gw.db"), w.read_model, w.sink,
                      core::SystemClock::instance(), w.metrics);
    const auto fill_start = std::chrono::steady_clock::now();
    for (int b = 0; b < kMessages / 1000; ++b) {
      std::vector<uplink::Uplink::Message> batch;
      for (int i = 0; i < 1000; ++i) {
        const int n = b * 1000 + i;
        batch.push_back({uplink::Kind::Alert, "alerts", alertBody(n)});
      }
      REQUIRE(up.enqueueMany(std::move(batch)));
    }
    const double fill_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - fill_start).count();
    REQUIRE(up.outboxStats().rows == kMessages);

    const auto start = std::chrono::steady_clock::now();
    up.start();
    REQUIRE(waitFor([&] { return up.connected(); }));
    const auto connected = std::chrono::steady_clock::now();
    const bool done = waitFor([&] { return up.outboxStats().rows == 0; }, std::chrono::seconds(60));
    INFO("published " << w.metrics.value("hgj_uplink_published_total") << " acked "
                      << w.metrics.value("hgj_uplink_acked_total") << " rows "
                      << up.outboxStats().rows << " received " << rec.count() << "; "
                      << up.health());
    REQUIRE(done);
    const auto drained = std::chrono::steady_clock::now();
    REQUIRE(waitFor([&] { return rec.count() >= kMessages; }, std::chrono::seconds(60)));
    const auto received = std::chrono::steady_clock::now();
    const double drain_s = std::chrono::duration<double>(drained - connected).count();
    const double e2e_s = std::chrono::duration<double>(received - connected).count();
    std::printf("uplink drain: window %d: %d messages committed in %.2f s (%.0f/s, batches of "
                "1000); connect %.2f s; drained (all PUBACKed and deleted) in %.2f s = %.0f "
                "msg/s; all at the subscriber after %.2f s = %.0f msg/s\n",
                window, kMessages, fill_s, kMessages / fill_s,
                std::chrono::duration<double>(connected - start).count(), drain_s,
                kMessages / drain_s, e2e_s, kMessages / e2e_s);
    CHECK(firstSeen(rec, "hgj/site1/alerts").size() == kMessages);

    std::vector<std::string> payloads;
    for (int n = 0; n < kMessages; ++n) {
      json body = alertBody(n);
      body["msg_id"] = "site1:" + std::to_string(n + 1);
      body["ts"] = 1'700'000'000'000;
      payloads.push_back(body.dump());
    }
    std::printf("uplink drain: window %d: bare Paho QoS 1 publisher, same broker and messages: "
                "%.0f msg/s\n",
                window, barePahoRate(broker.url(), payloads, window));
  }
}
