// Both MQTT clients feed the watchdog (core::Heartbeat, issue #13): their threads beat while
// idle and while the pipeline queue is full (bounded waits), and stop beating when the ingest is
// truly stuck, so that systemd's watchdog sees a wedged ingest and not a busy one.
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/ingest/ingest_rig.h"
#include "tests/support/scripted_broker.h"

using namespace std::chrono_literals;
using hgj::test::waitFor;
using hgj::test::ingest::clientConfig;
using hgj::test::ingest::exampleConfig;
using hgj::test::ingest::parkingPayload;
using hgj::test::ingest::Rig;

namespace {

hgj::drivers::mqtt::MqttConfig configFor(const std::string& client, const std::string& url) {
  auto cfg = clientConfig(url, "gw-watchdog-" + client);
  cfg.client = client == "paho" ? hgj::drivers::mqtt::MqttClient::Paho
                                : hgj::drivers::mqtt::MqttClient::Batched;
  return cfg;
}

/// A sink that never takes anything and, unlike a bounded queue, never returns either: a
/// pipeline that is wedged for good.
class WedgedSink final : public hgj::drivers::SampleSink {
public:
  bool deliver(hgj::drivers::Sample&&) override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return released_; });
    return false;
  }
  Delivery deliverFor(hgj::drivers::Sample& s, std::chrono::milliseconds) override {
    return deliver(std::move(s)) ? Delivery::kTaken : Delivery::kClosed;
  }
  void deliverResult(std::shared_ptr<const hgj::drivers::WriteResult>) override {}
  void release() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

} // namespace

TEST_CASE("mqtt watchdog: the ingest keeps beating while the pipeline queue is full, and "
          "commands still go out",
          "[integration][ingest][mqtt]") {
  const std::string client = GENERATE(as<std::string>{}, "batched", "paho");
  INFO("mqtt.client=" << client);
  hgj::test::Broker broker(false);
  hgj::test::RawSubscriber device(broker.port(), "compound/ebike/+/+/set");
  Rig rig(configFor(client, broker.url()));
  REQUIRE(rig.subscribed());
  rig.sink.setLimit(0);  // the pipeline queue is full from now on
  // Not through Paho: Paho's clients in one process share its locks, which its message
  // callback holds (see PahoIngest).
  std::vector<std::string> payloads;
  for (int i = 0; i < 5; ++i) {
    payloads.push_back(parkingPayload(i));
  }
  REQUIRE(hgj::test::rawPublish(broker.port(), "compound/parking/P-B1-0001/state", payloads));
  // Held back for several bounded waits: the thread keeps beating all along.
  REQUIRE(waitFor([&] { return rig.sink.fullWaits() >= 12; }, 20s));
  for (int i = 0; i < 10; ++i) {
    CHECK_FALSE(rig.liveness.stalled(1'500).has_value());
    const size_t before = rig.sink.fullWaits();
    REQUIRE(waitFor([&] { return rig.sink.fullWaits() > before; }, 5s));
  }
  const auto& compound = *exampleConfig().compound;
  hgj::drivers::WriteRequest req;
  req.id = 5;
  req.device = compound.deviceIndex("S03/P07");
  req.point = *compound.pointId("relay");
  req.value = false;
  req.origin = "rule:test";
  rig.client->write(req);
  if (client == "batched") {
    // A safety cut does not wait for the backlog to drain.
    REQUIRE(waitFor([&] { return device.count() == 1; }, 10s));
    CHECK(rig.sink.count() == 0);
  }
  // Paho sends nothing while its message callback waits for the pipeline (PahoIngest): the
  // command leaves once the pipeline takes the message.
  rig.sink.setLimit(SIZE_MAX);
  REQUIRE(waitFor([&] { return device.count() == 1; }, 10s));
  // The five readings, and the command itself (the client subscribes to compound/#).
  REQUIRE(waitFor([&] { return rig.sink.count() == 6; }, 10s));
}

TEST_CASE("mqtt watchdog: an ingest stuck in the pipeline hand-over stops beating",
          "[integration][ingest][mqtt]") {
  const std::string client = GENERATE(as<std::string>{}, "batched", "paho");
  INFO("mqtt.client=" << client);
  hgj::test::Broker broker(false);
  WedgedSink sink;
  hgj::core::MetricsRegistry metrics;
  hgj::core::Liveness liveness;
  auto ingest = hgj::drivers::mqtt::makeMqttIngest(configFor(client, broker.url()),
                                                   {"compound/#"}, *exampleConfig().compound,
                                                   sink, metrics,
                                                   hgj::core::SystemClock::instance());
  ingest->setLiveness(liveness);
  ingest->start();
  REQUIRE(waitFor([&] { return ingest->subscribed(); }, 10s));
  CHECK_FALSE(liveness.stalled(1'500).has_value());
  REQUIRE(hgj::test::rawPublish(broker.port(), "compound/parking/P-B1-0001/state",
                                {parkingPayload(1)}));
  // The batched thread itself is stuck; Paho's callback is, and our thread stops beating for it
  // after 5 s without progress.
  REQUIRE(waitFor([&] { return liveness.stalled(1'500).has_value(); }, 20s));
  CHECK(liveness.stalled(1'500)->rfind("mqtt ingest", 0) == 0);
  sink.release();
  ingest->stop();
}
